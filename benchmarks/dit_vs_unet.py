"""Benchmark: a DiT against a UNet of the same size and training budget on the 8×8 digits (chapter 15).

Both models come from scripts/train_dit.py (same recipe: 3,000 steps of 128 images, one CPU thread,
seed 0); ``--train-seeds 1 2`` also retrains both with other seeds (about 10 minutes per seed on one
thread) so that the spread between training runs is measured, not only the spread between sampling
seeds. For each model and each training seed:

- quality: FLD of 500 samples against the first 500 test digits, as a ratio to the real-vs-real floor
  (training vs test digits, averaged over 3 draws), for DDIM with 50 steps and DDPM with 100 steps
  (σ² = β̃), unconditional (the null class) and conditional on the labels of those 500 test digits
  (w = 0), DDIM over three sampling seeds (the retrained models: DDIM, one seed);
- cost: seconds per training step (back to back, alternating the two models, 3 × 50 steps of 128
  images) and samples per second of DDIM with 50 steps (500 images in one batch, best of 3),
  all on one thread.

    python benchmarks/dit_vs_unet.py                      # the shipped checkpoints (a few minutes)
    python benchmarks/dit_vs_unet.py --train-seeds 1 2    # and two more training seeds of each
    python benchmarks/dit_vs_unet.py --time-matched       # then: retrain the model that is cheaper per
                                                          # step for the other's time (more steps)

``--time-matched`` reads the seconds per training step already in the results file, retrains the
cheaper model (seed 0) for 3,000 × (slower / faster seconds per step) steps, the slower model's
training time, evaluates it with DDIM (one sampling seed) and adds it to the file as ``time_matched``.

Results go to benchmarks/results/dit_vs_unet.json with the machine's load average: on a shared
machine the times are upper bounds, and only the ratios between the two models measured back to back
are meaningful.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import sys
from pathlib import Path

import torch

import diffusion_lab as dl

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "dit_vs_unet.json"
NAMES = {"DiT": "digits8-dit", "UNet": "digits8-unet-matched"}
EVAL = dict(n=500, samplers={"ddim": 50, "ddpm": 100}, sampling_seeds={"ddim": [0, 1, 2], "ddpm": [0]}, floor_repeats=3,
            retrained=dict(samplers={"ddim": 50}, sampling_seeds={"ddim": [0]}),
            timing=dict(sampler="ddim", steps=50, batch=500, repeats=3, train_steps=50, train_repeats=3))


def training_script():
    sys.path.insert(0, str(ROOT / "scripts"))  # train_dit.py imports checkpoint_cli from beside it
    spec = importlib.util.spec_from_file_location("train_dit", ROOT / "scripts" / "train_dit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(name: str) -> torch.nn.Module:
    kind, config, _ = training_script().MODELS[NAMES[name]]
    return dl.DiT(**config) if kind == "dit" else dl.UNet(**config)


def retrain(name: str, seed: int) -> tuple[dl.Denoiser, float]:
    recipe = training_script().RECIPE
    images, labels = dl.load_images("digits8", split="train")
    torch.manual_seed(seed)
    net = build(name)
    result = dl.train_diffusion(dl.Denoiser(net, dl.cosine_schedule(1000)), images, labels=labels, seed=seed,
                                progress=False, **recipe)
    return result.denoiser.replace(clip=1.0), result.seconds


def quality(denoiser: dl.Denoiser, judge, train_x, test_x, test_y, floor: float, setting: dict = EVAL) -> dict:
    n, out = EVAL["n"], {}
    for sampler, steps in setting["samplers"].items():
        for mode, labels in (("unconditional", None), ("conditional", test_y[:n])):
            ratios = []
            for seed in setting["sampling_seeds"][sampler]:
                x = dl.sample_images(denoiser, n, sampler=sampler, steps=steps, labels=labels, guidance=0.0,
                                     generator=torch.Generator().manual_seed(seed))
                ratios.append(dl.fld(judge, x, test_x[:n]) / floor)
            out[f"{sampler}{steps} {mode}"] = dict(fld_ratio_mean=round(statistics.mean(ratios), 3),
                                                   fld_ratio_per_seed=[round(r, 3) for r in ratios])
    return out


def costs() -> dict:
    """Seconds per training step and samples per second, the two models alternating back to back."""
    images, labels = dl.load_images("digits8", split="train")
    recipe = dict(training_script().RECIPE, steps=EVAL["timing"]["train_steps"], warmup=0)
    step_seconds = {name: [] for name in NAMES}
    for _ in range(EVAL["timing"]["train_repeats"]):
        for name in NAMES:
            torch.manual_seed(0)
            result = dl.train_diffusion(dl.Denoiser(build(name), dl.cosine_schedule(1000)), images, labels=labels,
                                        progress=False, **recipe)
            step_seconds[name].append(result.seconds / recipe["steps"])
    per_sample = {name: [] for name in NAMES}
    timing = EVAL["timing"]
    for _ in range(2):
        for name, registered in NAMES.items():
            den = dl.pretrained.load(registered).denoiser
            per_sample[name].append(dl.seconds_per_sample(
                lambda: dl.sample_images(den, timing["batch"], sampler=timing["sampler"], steps=timing["steps"]),
                repeats=timing["repeats"]))
    return {name: dict(seconds_per_train_step=round(min(step_seconds[name]), 4),
                       samples_per_second=round(1 / min(per_sample[name]), 1)) for name in NAMES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-seeds", type=int, nargs="*", default=[])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--time-matched", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.time_matched:
        return time_matched()
    load_before = list(os.getloadavg())
    judge = dl.pretrained.load("digits8-classifier").model
    train_x, _ = dl.load_images("digits8", split="train")
    test_x, test_y = dl.load_images("digits8", split="test")
    floors = [dl.fld_floor(judge, train_x, test_x, EVAL["n"], generator=torch.Generator().manual_seed(s))
              for s in range(EVAL["floor_repeats"])]
    floor = sum(floors) / len(floors)
    models = {}
    for name, registered in NAMES.items():
        loaded = dl.pretrained.load(registered)
        runs = {"0": dict(train_seconds=loaded.info["train_seconds"], final_loss=loaded.info["final_loss"],
                          load_average_when_trained=loaded.info["load_average"],
                          quality=quality(loaded.denoiser, judge, train_x, test_x, test_y, floor))}
        models[name] = dict(checkpoint=registered, n_params=dl.parameter_count(loaded.model), training_runs=runs)
    for name, cost in costs().items():
        models[name].update(cost)
    write(models, floor, floors, load_before)  # the shipped models first, then each retraining as it ends
    for seed in args.train_seeds:
        for name in NAMES:
            denoiser, seconds = retrain(name, seed)
            models[name]["training_runs"][str(seed)] = dict(
                train_seconds=round(seconds, 1),
                quality=quality(denoiser, judge, train_x, test_x, test_y, floor, EVAL["retrained"]))
            print(name, seed, json.dumps(models[name]["training_runs"][str(seed)]), flush=True)
        write(models, floor, floors, load_before)


def time_matched() -> None:
    result = json.loads(OUT.read_text())
    step = {name: m["seconds_per_train_step"] for name, m in result["models"].items()}
    fast, slow = sorted(step, key=step.get)
    recipe = dict(training_script().RECIPE)
    steps = round(recipe["steps"] * step[slow] / step[fast])
    judge = dl.pretrained.load("digits8-classifier").model
    train_x, train_y = dl.load_images("digits8", split="train")
    test_x, test_y = dl.load_images("digits8", split="test")
    torch.manual_seed(0)
    run = dl.train_diffusion(dl.Denoiser(build(fast), dl.cosine_schedule(1000)), train_x, labels=train_y, seed=0,
                             progress=False, **dict(recipe, steps=steps))
    quality_ = quality(run.denoiser.replace(clip=1.0), judge, train_x, test_x, test_y, result["floor"], EVAL["retrained"])
    result["time_matched"] = dict(model=fast, steps=steps, matched_to=slow, seconds_per_step=step,
                                  train_seconds=round(run.seconds, 1), quality=quality_,
                                  load_average_after=list(os.getloadavg()))
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["time_matched"], indent=1))


def write(models: dict, floor: float, floors: list, load_before: list) -> None:
    for m in models.values():
        runs = m["training_runs"]
        m["ddim50_fld_ratio_over_training_seeds"] = {
            mode: dict(seeds=sorted(runs, key=int), mean=round(statistics.mean(
                r["quality"][f"ddim50 {mode}"]["fld_ratio_per_seed"][0] for r in runs.values()), 3),
                per_training_seed=[r["quality"][f"ddim50 {mode}"]["fld_ratio_per_seed"][0] for r in runs.values()])
            for mode in ("unconditional", "conditional")}
    result = dict(evaluation=EVAL, floor=round(floor, 4), floors=[round(f, 4) for f in floors],
                  recipe=training_script().RECIPE, models=models,
                  machine=dict(platform=platform.platform(), cpu_count=os.cpu_count(),
                               torch_threads=torch.get_num_threads(), torch=torch.__version__,
                               load_average_before=load_before, load_average_after=list(os.getloadavg())))
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({name: {k: v for k, v in m.items() if k != "training_runs"} for name, m in models.items()},
                     indent=1), flush=True)

if __name__ == "__main__":
    main()
