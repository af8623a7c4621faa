"""The training command's guarantees: range-checked options (usage errors, no traceback), files a
kill or a failed write cannot damage, a clear message for a damaged checkpoint, and a log without
repeated steps after a resume. Tiny models on the 8x8 digits: seconds each."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import diffusion_lab as dl
from diffusion_lab import image_training
from diffusion_lab.image_training import CHECKPOINT, EXPORT, LOG, SNAPSHOTS, DamagedCheckpointError, RANGES
from diffusion_lab.train import main, parse_args

TINY = dict(dataset="digits8", model_size="tiny", batch_size=16, class_conditional=True, T=100, warmup=5,
            log_every=1, progress=False)
FLAGS = ["--dataset", "digits8", "--model-size", "tiny", "--batch-size", "16", "--class-conditional",
         "--T", "100", "--warmup", "5", "--no-progress"]

BAD_OPTIONS = [
    ("--grad-clip", "-1", ">= 0"), ("--grad-clip", "nan", ">= 0"), ("--warmup", "-5", ">= 0"),
    ("--time-budget", "-1", "> 0"), ("--time-budget", "0", "> 0"), ("--time-budget", "inf", "> 0"),
    ("--steps", "0", ">= 1"), ("--steps", "2.5", "an integer"), ("--batch-size", "0", ">= 1"),
    ("--lr", "0", "> 0"), ("--lr", "-0.001", "> 0"), ("--label-dropout", "1", "[0, 1)"),
    ("--label-dropout", "-0.1", "[0, 1)"), ("--dropout", "1.5", "[0, 1)"), ("--ema-decay", "1", "[0, 1)"),
    ("--T", "0", ">= 1"), ("--checkpoint-every", "0", ">= 1"), ("--snapshot-every", "-1", ">= 0"),
    ("--log-every", "0", ">= 1"), ("--seed", "-1", "[0,"), ("--seed", "x", "an integer"),
]


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / LOG).read_text().splitlines()]


def loss_steps(out: Path) -> list[int]:
    return [r["step"] for r in records(out) if "loss" in r]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cli_env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")


# ------------------------------------------------------------------------------------------------
# Options.

@pytest.mark.parametrize(("flag", "value", "words"), BAD_OPTIONS, ids=[f"{f}={v}" for f, v, _ in BAD_OPTIONS])
def test_an_out_of_range_option_is_a_usage_error(flag, value, words, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args([flag, value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m diffusion_lab.train")
    assert f"argument {flag}: " in err and words in err and "Traceback" not in err


def test_every_numeric_setting_has_a_checked_range():
    numeric = {f.name for f in image_training.fields(dl.ImageTrainConfig)
               if f.type in ("int", "float", "float | None")}
    assert numeric == set(RANGES)
    flags = {flag.lstrip("-").replace("-", "_") for flag, _, _ in BAD_OPTIONS}
    assert flags == set(RANGES)  # every range is exercised above


@pytest.mark.parametrize(("name", "value", "error"), [
    ("grad_clip", -1, ValueError), ("warmup", -5, ValueError), ("time_budget", -1.0, ValueError),
    ("time_budget", float("nan"), ValueError), ("steps", 2.5, TypeError), ("steps", True, TypeError),
    ("lr", float("inf"), ValueError), ("ema_decay", 1.0, ValueError), ("seed", -1, ValueError),
    ("class_conditional", 1, TypeError),
])
def test_the_config_names_the_bad_setting(name, value, error):
    with pytest.raises(error, match=name):
        dl.ImageTrainConfig(**{name: value}).check()
    dl.ImageTrainConfig().check()  # the defaults are valid


def test_the_command_shows_usage_and_no_traceback():
    done = subprocess.run([sys.executable, "-m", "diffusion_lab.train", "--grad-clip", "-1"], env=cli_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stdout == ""
    assert "usage:" in done.stderr and "argument --grad-clip: must be >= 0" in done.stderr
    assert "Traceback" not in done.stderr


# ------------------------------------------------------------------------------------------------
# Files.

@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A 4-step run with a checkpoint, two snapshots, the export and the log (copied per test)."""
    out = tmp_path_factory.mktemp("finished")
    dl.train_images(dl.ImageTrainConfig(**TINY, steps=4, checkpoint_every=2, snapshot_every=2, out=str(out)))
    assert {p.name for p in out.iterdir()} == {CHECKPOINT, EXPORT, LOG, SNAPSHOTS}
    return out


def _copy(run: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(run, out)
    return out


@pytest.mark.parametrize("target", [CHECKPOINT, EXPORT, "ema_0000006.pt"])
def test_a_write_that_fails_halfway_leaves_no_broken_file(finished, tmp_path, monkeypatch, target):
    out = _copy(finished, tmp_path)
    before = {p: digest(p) for p in out.rglob("*.pt")}
    real_save = torch.save

    def failing_save(obj, f, *args, **kwargs):  # writes part of the file, then the disk is "full"
        if target in Path(f).name:
            Path(f).write_bytes(b"PK\x03\x04 half a file")
            raise OSError(28, "No space left on device (simulated)")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="simulated"):
        dl.train_images(dl.ImageTrainConfig(**TINY, steps=6, checkpoint_every=2, snapshot_every=2, out=str(out)))
    monkeypatch.undo()
    for path, sha in before.items():  # what existed is untouched unless it was written completely
        if target in path.name:
            assert digest(path) == sha
    assert not (out / SNAPSHOTS / "ema_0000006.pt").exists() or target != "ema_0000006.pt"
    assert not list(out.rglob("*.tmp"))  # the failed temporary file was removed
    assert image_training.load_training_checkpoint(out / CHECKPOINT)["step"] in (4, 6)
    for path in [out / EXPORT, *sorted((out / SNAPSHOTS).glob("*.pt"))]:
        dl.pretrained.load_checkpoint(path)  # every file in place loads


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage", "not a checkpoint"])
def test_a_damaged_checkpoint_names_the_file_and_what_to_do(finished, tmp_path, damage, capsys):
    out = _copy(finished, tmp_path)
    path = out / CHECKPOINT
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "garbage":
        path.write_bytes(bytes(random.Random(0).getrandbits(8) for _ in range(4096)))
    else:
        torch.save({"step": 3, "weights": torch.zeros(2)}, path)
    config = dl.ImageTrainConfig(**TINY, steps=6, checkpoint_every=2, out=str(out))
    with pytest.raises(DamagedCheckpointError) as info:
        dl.train_images(config)
    message = str(info.value)
    assert str(path) in message and "damaged" in message
    assert f"mv {path} {path}.damaged" in message and "start this run again from step 0" in message
    # The command prints the same message on one line, without a traceback.
    assert main([*FLAGS, "--steps", "6", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("python -m diffusion_lab.train: error: the checkpoint") and "Traceback" not in err
    # Following the advice works: with the file moved away the run starts again.
    path.rename(path.with_name(f"{CHECKPOINT}.damaged"))
    assert dl.train_images(dl.ImageTrainConfig(**TINY, steps=1, out=str(out)))["resumed_from"] == 0


def test_after_a_crash_the_resumed_log_has_every_step_once(tmp_path, monkeypatch):
    out = tmp_path / "run"
    config = dl.ImageTrainConfig(**TINY, steps=10, checkpoint_every=4, out=str(out))
    real_lr = image_training._lr_at

    def crash_at_step_6(cfg, step):
        if step == 6:
            raise RuntimeError("simulated crash (no checkpoint is written)")
        return real_lr(cfg, step)

    monkeypatch.setattr(image_training, "_lr_at", crash_at_step_6)
    with pytest.raises(RuntimeError, match="simulated crash"):
        dl.train_images(config)
    monkeypatch.undo()
    assert loss_steps(out) == [1, 2, 3, 4, 5, 6]  # logged past the checkpoint at step 4
    with (out / LOG).open("a") as f:
        f.write('{"step": 7, "lo')  # and a record cut short by the crash
    summary = dl.train_images(config)
    assert summary["resumed_from"] == 4 and summary["step"] == 10
    assert loss_steps(out) == list(range(1, 11))  # each step once, in order
    assert [r.get("event") for r in records(out) if "event" in r] == ["start", "resume", "done"]


def test_a_killed_run_leaves_only_loadable_files(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "diffusion_lab.train", *FLAGS, "--checkpoint-every", "1", "--snapshot-every", "1",
           "--log-every", "1", "--out", str(out)]
    proc = subprocess.Popen([*cmd, "--steps", "100000"], env=cli_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:  # writing three files at every step
            if (out / LOG).exists() and len((out / LOG).read_text().splitlines()) >= 6:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(random.Random().uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    state = image_training.load_training_checkpoint(out / CHECKPOINT)
    snapshots = sorted((out / SNAPSHOTS).glob("ema_*.pt"))
    assert snapshots and all(dl.pretrained.load_checkpoint(p).info["step"] >= 1 for p in snapshots)
    assert all(isinstance(json.loads(line), dict) for line in (out / LOG).read_text().splitlines())
    resumed = subprocess.run([*cmd, "--steps", str(state["step"] + 2)], env=cli_env(), capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads(resumed.stdout.splitlines()[-1])["resumed_from"] == state["step"]
    steps = loss_steps(out)
    assert steps == sorted(set(steps)) and steps[-1] == state["step"] + 2  # no step logged twice
    assert not list(out.rglob("*.tmp"))
    dl.pretrained.load_checkpoint(out / EXPORT)
