"""Benchmark: the class-conditional 8×8-digits UNet, trained and judged on the CPU.

Bars (image issue): training on 2 CPU cores takes ≤ 5 minutes; the FLD of unconditional samples is
≤ 3× the real-vs-real floor (train vs test, same n); guided samples are classified as the requested
digit ≥ 90% of the time.

    python benchmarks/digits8.py            # train with the shipped recipe, then evaluate
    python benchmarks/digits8.py --shipped  # evaluate the shipped checkpoint (its training time is
                                            # the one recorded when it was trained)

Results go to benchmarks/results/digits8.json, with the machine's load average: the machine this
was first run on was shared, so times there are upper bounds.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

import diffusion_lab as dl
from diffusion_lab.lenet import predict

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "digits8.json"
BARS = dict(max_train_seconds=300.0, max_fld_ratio=3.0, min_guided_accuracy=0.90)
EVAL = dict(n=500, sampling_steps=100, variance="beta_tilde", guidance_scales=[0.0, 2.0], floor_repeats=3)


def recipe() -> dict:
    spec = importlib.util.spec_from_file_location("train_checkpoints", ROOT / "scripts" / "train_checkpoints.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.DIGITS8_UNET


def train() -> tuple[dl.Denoiser, dict]:
    config = dl.ImageTrainConfig(**recipe(), out=tempfile.mkdtemp(prefix="digits8-bench-"), progress=False)
    load_before = os.getloadavg()
    cpu_before = time.process_time()
    summary = dl.train_images(config)
    cpu_seconds = time.process_time() - cpu_before  # CPU time of this process: robust to a shared machine
    loaded = dl.pretrained.load_checkpoint(Path(config.out) / "ema_fp16.pt")
    loaded.info.update(train_seconds=summary["seconds"], train_cpu_seconds=round(cpu_seconds, 1), recipe=recipe(),
                       trained_with="benchmarks/digits8.py --export", device="cpu",
                       torch_threads=torch.get_num_threads(), load_average=list(os.getloadavg()))
    loaded.info["_model_config"] = torch.load(Path(config.out) / "ema_fp16.pt", weights_only=True)["config"]
    return loaded.denoiser, dict(train_seconds=summary["seconds"], steps=summary["step"],
                                 train_cpu_seconds=round(cpu_seconds, 1), load_average_before=list(load_before),
                                 load_average_after=list(os.getloadavg()), source="trained now", info=loaded.info)


def evaluate(denoiser: dl.Denoiser) -> dict:
    """FLD and guided accuracy of DDPM samples from ``denoiser`` (the checkpoint's: x̂₀ clipped to [−1, 1])."""
    judge = dl.pretrained.load("digits8-classifier").model
    train_x, _ = dl.digits_8x8(split="train")
    test_x, _ = dl.digits_8x8(split="test")
    n = EVAL["n"]

    def sample(y, w, seed):
        # DDPM on S respaced steps, with DDPM's clipping of x̂₀ to [−1, 1] (the denoiser's clip), as in the chapter.
        guided = denoiser.replace(labels=y, guidance=w)
        return dl.ddpm_sample(guided, (n, 1, 8, 8), steps=EVAL["sampling_steps"], variance=EVAL["variance"],
                              generator=torch.Generator().manual_seed(seed)).clamp(-1, 1)

    floors = [dl.fld_floor(judge, train_x, test_x, n, generator=torch.Generator().manual_seed(s))
              for s in range(EVAL["floor_repeats"])]
    floor = sum(floors) / len(floors)
    start = time.perf_counter()
    uncond = sample(None, 0.0, seed=100)
    sample_seconds = time.perf_counter() - start
    result = dict(floor=round(floor, 4), floors=[round(f, 4) for f in floors],
                  fld_unconditional=round(dl.fld(judge, uncond, test_x[:n]), 4),
                  seconds_to_sample_500_unconditional=round(sample_seconds, 2), guided={})
    result["fld_ratio_unconditional"] = round(result["fld_unconditional"] / floor, 3)
    asked = torch.arange(10).repeat(n // 10)
    for w in EVAL["guidance_scales"]:
        s = sample(asked, w, seed=200)
        result["guided"][str(w)] = dict(accuracy=round((predict(judge, s) == asked).double().mean().item(), 4),
                                        fld=round(dl.fld(judge, s, test_x[:n]), 4))
        result["guided"][str(w)]["fld_ratio"] = round(result["guided"][str(w)]["fld"] / floor, 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shipped", action="store_true", help="evaluate the shipped checkpoint")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--export", help="also save the trained model (fp16) to this path")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.shipped:
        loaded = dl.pretrained.load("digits8-unet")
        denoiser, info = loaded.denoiser, loaded.info
        # A checkpoint trained on a loaded machine records no representative time: say so, not a number.
        training = dict(train_seconds=info.get("train_seconds"), steps=info["steps"], source="shipped checkpoint",
                        torch_threads_when_trained=info.get("torch_threads"),
                        load_average_when_trained=info.get("load_average"), note_when_trained=info.get("note"))
    else:
        denoiser, training = train()
        training.setdefault("info", {})
        if not args.export:
            training.pop("info")
        if args.export:  # ship exactly the model this benchmark trained and measured
            info = dict(training.pop("info"))
            config = info.pop("_model_config")
            sha = dl.pretrained.save_checkpoint(args.export, denoiser.net, kind="unet", config=config, info=info)
            print("exported", args.export, sha)
    quality = evaluate(denoiser)
    best_w = max(quality["guided"], key=lambda w: quality["guided"][w]["accuracy"])
    result = dict(
        recipe=recipe(), evaluation=EVAL, bars=BARS, training=training, quality=quality,
        meets_time_bar=(None if training["train_seconds"] is None
                        else training["train_seconds"] <= BARS["max_train_seconds"]),
        meets_fld_bar=quality["fld_ratio_unconditional"] <= BARS["max_fld_ratio"],
        meets_guidance_bar=quality["guided"][best_w]["accuracy"] >= BARS["min_guided_accuracy"],
        machine=dict(platform=platform.platform(), cpu_count=os.cpu_count(), torch_threads=torch.get_num_threads(),
                     torch=torch.__version__, load_average_at_end=list(os.getloadavg())),
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("training", "quality", "meets_time_bar", "meets_fld_bar",
                                              "meets_guidance_bar")}, indent=1))


if __name__ == "__main__":
    main()
