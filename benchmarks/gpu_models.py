"""The GPU models of the book: train, evaluate and ship them; the results file behind the results page.

Four runs, each with the project's own training command (``python -m diffusion_lab.train``) and a
wall-clock budget: MNIST and Fashion-MNIST, unconditional and class-conditional (classifier-free
guidance). On the GPU machine (see ``scripts/gpu/README.md`` for the exact device commands):

    python benchmarks/gpu_models.py train    --data-root .carry/data --runs runs/gpu   # the 4 runs, concurrently
    python benchmarks/gpu_models.py evaluate --data-root .carry/data --runs runs/gpu   # FLD per sampler, accuracy
    python benchmarks/gpu_models.py pack     --runs runs/gpu --dest $OUT                # bring the runs back
    python benchmarks/gpu_models.py ship     --runs runs/gpu                            # checkpoints + registry lines

``evaluate`` writes ``benchmarks/results/gpu_models.json``; ``python benchmarks/results_table.py``
turns it into the book's results page. A CPU smoke run of the whole harness (the unit test does
this on the 8×8 digits): ``--runs-spec smoke``.

What is measured, per run: parameters, device, training seconds, images/s, the loss curve (from
the JSON-lines log), FLD (LeNet features, :mod:`diffusion_lab.image_metrics`) of ``--n`` samples
against the test set with the real-vs-real floor, for DDPM with 1000 steps, DDIM with 50 and
DPM-Solver++(2M) with 10 and 20; the FLD of EMA snapshots against wall-clock time; and for the
class-conditional runs the class accuracy of guided samples across guidance scales. Sampling and
scoring go through :mod:`diffusion_lab.evaluation` (``sample_images``, ``fld_report``,
``guided_accuracy``) with each checkpoint's own denoiser, which clips x̂₀ to the data range [−1, 1]:
every sampler (DDPM, DDIM, DPM-Solver++) takes its steps from the clipped x̂₀.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import torch

import diffusion_lab as dl
from diffusion_lab.evaluation import fld_report, guided_accuracy, nfe, sample_images
from diffusion_lab.image_training import EXPORT, LOG, SNAPSHOTS

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "gpu_models.json"
FINAL = "final_fp16.pt"  # per run: the final EMA weights, evaluated and shipped
MAX_SNAPSHOTS_PACKED = 5

_COMMON = dict(model_size="small", batch_size=256, lr=2e-4, warmup=500, T=1000, schedule="cosine", dropout=0.1,
               ema_decay=0.9995, checkpoint_every=2000, snapshot_every=2000, log_every=200)
RUN_SPECS = {
    # name: (dataset, class-conditional, extra training settings); steps is an upper bound, the
    # budget decides (the learning-rate decay spans `steps`).
    "gpu": {
        "mnist-unet": ("mnist", False, dict(_COMMON, steps=60_000)),
        "mnist-cfg-unet": ("mnist", True, dict(_COMMON, steps=60_000, label_dropout=0.1)),
        "fashion-mnist-unet": ("fashion-mnist", False, dict(_COMMON, steps=60_000)),
        "fashion-mnist-cfg-unet": ("fashion-mnist", True, dict(_COMMON, steps=60_000, label_dropout=0.1)),
    },
    # A CPU smoke run of the harness on the offline digits (tests/test_gpu_harness.py).
    "smoke": {
        "digits8-smoke-unet": ("digits8", False, dict(model_size="tiny", batch_size=16, T=50, warmup=2, steps=4,
                                                       checkpoint_every=2, snapshot_every=2, log_every=1)),
        "digits8-smoke-cfg-unet": ("digits8", True, dict(model_size="tiny", batch_size=16, T=50, warmup=2, steps=4,
                                                          checkpoint_every=2, snapshot_every=2, log_every=1)),
    },
}
SAMPLER_SPECS = {"gpu": [("ddpm", 1000), ("ddim", 50), ("dpm++2m", 10), ("dpm++2m", 20)],
                 "smoke": [("ddpm", 10), ("ddim", 5), ("dpm++2m", 3)]}
GUIDANCE_SCALES = [0.0, 0.5, 1.0, 2.0, 4.0]
CLASSIFIERS = {"mnist": "mnist-classifier", "fashion-mnist": "fashion-mnist-classifier",
               "digits8": "digits8-classifier"}
BARS = dict(mnist_fld_ratio=2.0, fashion_mnist_fld_ratio=3.0, max_train_minutes=10.0,
            fast_vs_ddpm1000_relative=0.10, mnist_guided_accuracy=0.98)


def _data_dir(root: str | None, dataset: str) -> str | None:
    return None if dataset == "digits8" else str(Path(root) / dataset)


def train(args) -> None:
    """Start every run of the spec at once (one GPU holds all four), each with its own budget."""
    runs = Path(args.runs)
    procs = {}
    for name, (dataset, conditional, settings) in RUN_SPECS[args.runs_spec].items():
        flags = ["--dataset", dataset, "--out", str(runs / name), "--no-progress"]
        data_dir = _data_dir(args.data_root, dataset)
        if data_dir:
            flags += ["--data-dir", data_dir]
        if conditional:
            flags.append("--class-conditional")
        if args.budget:
            flags += ["--time-budget", str(args.budget)]
        for key, value in settings.items():
            flags += [f"--{key.replace('_', '-')}", str(value)]
        (runs / name).mkdir(parents=True, exist_ok=True)
        log = open(runs / name / "stdout.txt", "w")
        procs[name] = (subprocess.Popen([sys.executable, "-m", "diffusion_lab.train", *flags], stdout=log,
                                        stderr=subprocess.STDOUT), log)
    failed = []
    for name, (proc, log) in procs.items():
        if proc.wait():
            failed.append(name)
        log.close()
    if failed:
        raise SystemExit(f"training failed for {failed}; see {runs}/<name>/stdout.txt")
    for name, (dataset, conditional, _) in RUN_SPECS[args.runs_spec].items():
        export_final(runs / name, name, dataset, conditional)


def export_final(run: Path, name: str, dataset: str, conditional: bool) -> str:
    """Save the run's final EMA weights in float16 as ``run/final_fp16.pt``: the file that is
    evaluated and shipped (so the measured model is bit for bit the shipped one)."""
    model, _, stop, model_config = _final_model(run)
    record = _training_record(run)
    info = dict(dataset=dataset, schedule=record["config"]["schedule"], T=record["config"]["T"],
                steps=record["steps"], class_conditional=conditional, train_seconds=record["train_seconds"],
                device=record["device"], trained_with=f"benchmarks/gpu_models.py train ({name})", **stop)
    return dl.pretrained.save_checkpoint(run / FINAL, model, kind="unet", config=model_config, info=info)


def _final_model(run: Path) -> tuple[torch.nn.Module, dl.NoiseSchedule, dict, dict]:
    """The EMA weights at the end (float32, eval mode), the schedule, how the run stopped, and the
    UNet's constructor settings. The last checkpoint always holds the final EMA weights: a run
    stopped by its time budget checkpoints before it exits."""
    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
    model = dl.UNet(**state["model_config"])
    model.load_state_dict(state["ema"])
    schedule = dl.make_schedule(state["config"]["schedule"], state["config"]["T"])
    stopped_by = "steps" if (run / EXPORT).exists() else "time budget"
    return model.eval(), schedule, dict(stopped_by=stopped_by, final_step=int(state["step"])), state["model_config"]


def _training_record(run: Path) -> dict:
    lines = [json.loads(line) for line in (run / LOG).read_text().splitlines()]
    start = next(r for r in lines if r.get("event") == "start")
    end = [r for r in lines if r.get("event") in ("stop", "done")][-1]
    curve = [dict(step=r["step"], loss=r["loss"], elapsed_s=r["elapsed_s"], images_per_s=r["images_per_s"])
             for r in lines if "loss" in r]
    rates = [r["images_per_s"] for r in curve[1:]] or [r["images_per_s"] for r in curve]
    return dict(parameters=start["parameters"], device=start["device"], steps=end["step"], train_seconds=end["seconds"],
                images_per_s=round(sorted(rates)[len(rates) // 2], 1), batch_size=start["config"]["batch_size"],
                config=start["config"], loss_curve=curve)


def evaluate(args) -> None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    runs, results = Path(args.runs), {}
    for name, (dataset, conditional, _) in RUN_SPECS[args.runs_spec].items():
        run = runs / name
        judge = dl.pretrained.load(CLASSIFIERS[dataset]).model
        train_x, _ = dl.load_images(dataset, _data_dir(args.data_root, dataset), split="train")
        test_x, test_y = dl.load_images(dataset, _data_dir(args.data_root, dataset), split="test")
        n = min(args.n, len(test_x))
        final = dl.pretrained.load_checkpoint(run / FINAL, device=device)
        denoiser = final.denoiser  # the UNet with its schedule, x̂₀ clipped to [−1, 1]
        stop = {k: final.info[k] for k in ("stopped_by", "final_step")}
        record = dict(dataset=dataset, class_conditional=conditional, **_training_record(run), **stop,
                      gpu=torch.cuda.get_device_name() if device.type == "cuda" else None, samplers=[])
        for sampler, steps in SAMPLER_SPECS[args.runs_spec]:
            start = time.perf_counter()
            samples = sample_images(denoiser, n, sampler=sampler, steps=steps, batch_size=args.batch_size,
                                    generator=torch.Generator().manual_seed(1))
            seconds = time.perf_counter() - start
            report = fld_report(judge, samples, train_x, test_x, generator=torch.Generator().manual_seed(2))
            record["samplers"].append(dict(sampler=sampler, steps=steps, nfe=nfe(denoiser, sampler, steps),
                                           sample_seconds=round(seconds, 2), **report))
            print(name, record["samplers"][-1], flush=True)
        if conditional:
            # The samplers again with the test digits' own labels (w = 0): the class-conditional branch,
            # which the network learns from all its examples; the null label above saw only label_dropout
            # of them, and a deterministic sampler carries that branch's error to the end (chapter 9).
            record["samplers_with_labels"] = []
            for sampler, steps in SAMPLER_SPECS[args.runs_spec]:
                samples = sample_images(denoiser, n, sampler=sampler, steps=steps, labels=test_y[:n],
                                        batch_size=args.batch_size, generator=torch.Generator().manual_seed(1))
                report = fld_report(judge, samples, train_x, test_x, generator=torch.Generator().manual_seed(2))
                record["samplers_with_labels"].append(dict(sampler=sampler, steps=steps, **report))
        record["quality_vs_time"] = []
        for snap in sorted((run / SNAPSHOTS).glob("ema_*.pt")):
            loaded = dl.pretrained.load_checkpoint(snap, device=device)
            samples = sample_images(loaded.denoiser, min(n, args.n_snapshot),
                                    sampler="dpm++2m", steps=20, batch_size=args.batch_size,
                                    generator=torch.Generator().manual_seed(3))
            report = fld_report(judge, samples, train_x, test_x, generator=torch.Generator().manual_seed(2))
            record["quality_vs_time"].append(dict(step=loaded.info["step"], elapsed_s=loaded.info["elapsed_s"],
                                                  sampler="dpm++2m", steps=20, fld=report["fld"],
                                                  floor=report["floor"], ratio=report["ratio"], n=report["n"]))
        if conditional:
            record["guided"] = guided_accuracy(denoiser, judge, GUIDANCE_SCALES, n_per_class=args.n_per_class,
                                               sampler="dpm++2m", steps=20, batch_size=args.batch_size, seed=4)
        results[name] = record
    out = Path(args.results)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dict(
        runs=results, bars=BARS, runs_spec=args.runs_spec, n=args.n,
        machine=dict(platform=platform.platform(), cpu_count=os.cpu_count(), torch=torch.__version__,
                     gpu=torch.cuda.get_device_name() if torch.cuda.is_available() else None),
    ), indent=1) + "\n")
    print("wrote", out)


def ship(args) -> None:
    """Copy each run's ``final_fp16.pt`` into ``--dest`` and print the registry lines."""
    dest = Path(args.dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name, (dataset, conditional, _) in RUN_SPECS[args.runs_spec].items():
        run = Path(args.runs) / name
        path = dest / f"{name.replace('-', '_')}.pt"
        shutil.copyfile(run / FINAL, path)
        info = dl.pretrained.load_checkpoint(path).info  # also checks that it loads
        record = _training_record(run)
        kind = "class-conditional (CFG) " if conditional else ""
        print(f'    "{name}": Entry("{path.name}", "{dl.pretrained.sha256_of(path)}",\n        "{kind}UNet '
              f'({record["config"]["model_size"]}) on {dataset}, trained on a GPU in {info["train_seconds"] / 60:.1f} min"),')


def pack(args) -> None:
    """One ``<run>.tgz`` per run in ``--dest`` with what evaluate and ship need (log, final weights,
    at most a few snapshots): small enough to bring back from the GPU machine."""
    dest = Path(args.dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in RUN_SPECS[args.runs_spec]:
        run = Path(args.runs) / name
        snaps = sorted((run / SNAPSHOTS).glob("ema_*.pt"))
        keep = snaps if len(snaps) <= MAX_SNAPSHOTS_PACKED else [
            snaps[round(i * (len(snaps) - 1) / (MAX_SNAPSHOTS_PACKED - 1))] for i in range(MAX_SNAPSHOTS_PACKED)]
        with tarfile.open(dest / f"{name}.tgz", "w:gz") as tar:
            for path in [run / LOG, run / "stdout.txt", run / FINAL, *keep]:
                tar.add(path, arcname=str(path.relative_to(run.parent)))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["train", "evaluate", "ship", "pack"])
    p.add_argument("--runs", default="runs/gpu", help="directory holding one sub-directory per run")
    p.add_argument("--runs-spec", choices=list(RUN_SPECS), default="gpu")
    p.add_argument("--data-root", help="directory with mnist/ and fashion-mnist/ (the standard IDX files)")
    p.add_argument("--budget", type=float, default=540.0, help="training seconds per run (train)")
    p.add_argument("--n", type=int, default=10_000, help="samples per FLD (evaluate)")
    p.add_argument("--n-snapshot", type=int, default=2000, help="samples per snapshot FLD (evaluate)")
    p.add_argument("--n-per-class", type=int, default=500, help="guided samples per class (evaluate)")
    p.add_argument("--batch-size", type=int, default=2500, help="images per sampler call (evaluate)")
    p.add_argument("--results", default=str(RESULTS), help="results file (evaluate)")
    p.add_argument("--dest", default=str(dl.pretrained.CHECKPOINT_DIR),
                   help="checkpoint directory (ship) or where the archives go (pack)")
    args = p.parse_args(argv)
    {"train": train, "evaluate": evaluate, "ship": ship, "pack": pack}[args.command](args)


if __name__ == "__main__":
    main()
