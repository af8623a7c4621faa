"""The training command: exact resume, a killed run resumes within one checkpoint interval,
and two gloo processes under torchrun end with identical weights. Tiny models: seconds each."""

import json
import os
import subprocess
import sys
import time

import pytest
import torch

import diffusion_lab as dl
from diffusion_lab.image_training import CHECKPOINT, EXPORT, LOG

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny UNets; the command-line runs get OMP_NUM_THREADS=1 too

TINY = dict(dataset="digits8", model_size="tiny", batch_size=16, class_conditional=True, T=100,
            warmup=5, log_every=1, progress=False)
FLAGS = ["--dataset", "digits8", "--model-size", "tiny", "--batch-size", "16", "--class-conditional",
         "--T", "100", "--warmup", "5", "--no-progress"]


def cli_env():
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")


def records(out):
    return [json.loads(line) for line in (out / LOG).read_text().splitlines()]


def test_interrupted_then_resumed_run_equals_the_uninterrupted_run(tmp_path):
    whole = dl.train_images(dl.ImageTrainConfig(**TINY, steps=12, checkpoint_every=4, out=str(tmp_path / "a")))
    first = dl.train_images(dl.ImageTrainConfig(**TINY, steps=12, checkpoint_every=4, out=str(tmp_path / "b")),
                            stop_after=6)
    assert first["event"] == "stop" and first["step"] == 6
    second = dl.train_images(dl.ImageTrainConfig(**TINY, steps=12, checkpoint_every=4, out=str(tmp_path / "b")))
    assert second["resumed_from"] == 6 and second["step"] == 12
    assert second["weights_sha256"] == whole["weights_sha256"]
    # The exported EMA model loads through the checked loader and samples images.
    loaded = dl.pretrained.load_checkpoint(tmp_path / "b" / EXPORT)
    den = loaded.denoiser
    assert den.net is loaded.model and den.process.T == 100 and den.process.name == "cosine"
    assert loaded.info["class_conditional"] and den.num_classes == 10 and den.clip == 1.0
    x = dl.ddpm_sample(den.replace(labels=torch.arange(2), guidance=1.0), (2, 1, 8, 8),
                       generator=torch.Generator().manual_seed(0))
    assert x.shape == (2, 1, 8, 8) and torch.isfinite(x).all()
    log = records(tmp_path / "b")
    assert {"loss", "images_per_s", "lr"} <= set(log[1]) and log[-1]["event"] == "done"


def test_resume_refuses_a_checkpoint_with_other_settings(tmp_path):
    dl.train_images(dl.ImageTrainConfig(**TINY, steps=2, out=str(tmp_path)))
    other = dict(TINY, model_size="small")
    with pytest.raises(ValueError, match="different settings.*model_size"):
        dl.train_images(dl.ImageTrainConfig(**other, steps=4, out=str(tmp_path)))


def test_killed_run_loses_at_most_one_checkpoint_interval(tmp_path):
    every = 5
    cmd = [sys.executable, "-m", "diffusion_lab.train", *FLAGS, "--steps", "100000",
           "--checkpoint-every", str(every), "--log-every", "2", "--out", str(tmp_path)]
    proc = subprocess.Popen(cmd, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None:
            log = tmp_path / LOG
            if log.exists() and any(r.get("step", 0) >= 20 for r in records(tmp_path) if "loss" in r):
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()
        proc.kill()  # SIGKILL: no chance to save anything
    finally:
        proc.kill()
        proc.wait()
    reached = max(r["step"] for r in records(tmp_path) if "loss" in r)
    assert (tmp_path / CHECKPOINT).exists()
    resumed = subprocess.run(cmd + ["--time-budget", "0.5"], env=cli_env(), capture_output=True, text=True,
                             timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert summary["resumed_from"] % every == 0
    assert reached - every <= summary["resumed_from"] <= reached
    assert summary["step"] > summary["resumed_from"] and summary["event"] == "stop"


def test_torchrun_two_gloo_processes_hold_identical_weights(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "diffusion_lab.train", *FLAGS, "--steps", "6", "--log-every", "1", "--out", str(tmp_path)]
    result = subprocess.run(cmd, env=cli_env(), capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    final = records(tmp_path)[-1]
    assert final["event"] == "done" and final["step"] == 6
    assert len(final["rank_weights_sha256"]) == 2
    assert final["rank_weights_sha256"][0] == final["rank_weights_sha256"][1]
    # Yet the ranks trained on different batches (otherwise identical weights would prove nothing).
    assert final["rank_last_loss"][0] != final["rank_last_loss"][1]
    assert records(tmp_path)[0]["world_size"] == 2


def test_command_line_flags_map_onto_the_config():
    from diffusion_lab.train import parse_args  # only parse_args: the module is a command

    config = parse_args(["--dataset", "mnist", "--data-dir", "/data", "--model-size", "base", "--steps", "7",
                         "--time-budget", "60", "--lr", "1e-3", "--class-conditional", "--label-dropout", "0.2",
                         "--out", "runs/x", "--compile"])
    assert (config.dataset, config.data_dir, config.model_size, config.steps, config.time_budget) == (
        "mnist", "/data", "base", 7, 60.0)
    assert config.class_conditional and config.label_dropout == 0.2 and config.compile and config.lr == 1e-3
    # Importing the command module must not break the in-memory trainer (a package attribute).
    result = dl.train_diffusion(dl.Denoiser(dl.TimeMLP(hidden=8, n_blocks=1), dl.cosine_schedule(10)),
                                dl.swiss_roll(64), steps=2, batch_size=8, progress=False)
    assert result.loss_history.shape == (2,)


def test_snapshots_keep_the_ema_weights_with_their_time(tmp_path):
    out = tmp_path / "run"
    dl.train_images(dl.ImageTrainConfig(**TINY, steps=6, snapshot_every=3, checkpoint_every=3, out=str(out), seed=2))
    snaps = sorted((out / "snapshots").glob("ema_*.pt"))
    assert [p.name for p in snaps] == ["ema_0000003.pt", "ema_0000006.pt"]
    loaded = [dl.pretrained.load_checkpoint(p) for p in snaps]
    assert [x.info["step"] for x in loaded] == [3, 6]
    assert 0 <= loaded[0].info["elapsed_s"] <= loaded[1].info["elapsed_s"]
    final = dl.pretrained.load_checkpoint(out / EXPORT).model  # the last snapshot is the exported EMA model
    for a, b in zip(final.state_dict().values(), loaded[1].model.state_dict().values()):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="snapshot_every must be >= 0"):
        dl.ImageTrainConfig(**TINY, snapshot_every=-1).check()
