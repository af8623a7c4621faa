"""DDIB translation and CCDF's accelerated ILVR at full size: writes benchmarks/results/translation.json.

    python benchmarks/translation.py            # about 4 minutes on 2 cores
    python benchmarks/translation.py --smoke    # seconds: every code path, nothing written

Chapter 16 runs the same comparisons on the first 100 test digits and one seed, to stay within its
time limit; at that size the FLD moves by several units from seed to seed. This script uses all 500
test digits and three seeds for the ILVR x2 rows (pure noise with 5, 10 and 25 steps; CCDF from the
blocky upsampling and from a 5-step ILVR estimate at t0 = 400), and all 500 digits for DDIB (every
digit to the next class, M = 0 and 2 fixed-point iterations) against SDEdit at t0 = 600.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import torch

import diffusion_lab as dl

OUT = Path(__file__).resolve().parent / "results" / "translation.json"
SETTINGS = dict(n=500, seeds=[0, 1, 2], steps=25, t0_ccdf=400, t0_sdedit=600)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def summary(values: list[float]) -> dict:
    return dict(mean=round(sum(values) / len(values), 3), values=[round(v, 3) for v in values])


def ccdf(settings: dict, den, judge, x0, train_x) -> dict:
    low = dl.box_downsample(x0, 2)
    t0 = settings["t0_ccdf"]
    rows: dict[str, dict[str, list[float]]] = {}

    def record(name, out):
        row = rows.setdefault(name, {"psnr": [], "fld": []})
        row["psnr"].append(dl.psnr(out, x0).mean().item())
        row["fld"].append(dl.fld(judge, out, train_x))

    for seed in settings["seeds"]:
        for steps in (5, 10, 25):
            record(f"pure noise, NFE {steps}", dl.ilvr_sample(den, low, 2, steps=steps, generator=gen(100 * seed + steps)))
        rough = dl.ilvr_sample(den, low, 2, steps=5, generator=gen(100 * seed + 50))
        for name, estimate, cost in (("nearest", dl.nearest_upsample(low, 2), 0), ("5-step ILVR", rough, 5)):
            for k in (5, 10):
                start = dl.q_sample(den.process, estimate, t0, noise=torch.randn(x0.shape, generator=gen(100 * seed + 60 + k)))
                out = dl.ilvr_sample(den, low, 2, steps=k, t_start=t0, x_T=start, generator=gen(100 * seed + 70 + k))
                record(f"{name} at t0 = {t0}, NFE {cost + k}", out)
    floor = dl.fld(judge, x0, train_x)
    return dict(floor=round(floor, 3), rows={name: {m: summary(v) for m, v in row.items()} for name, row in rows.items()})


def ddib(settings: dict, den, judge, x0, y0) -> dict:
    target = (y0 + 1) % 10
    steps, t0 = settings["steps"], settings["t0_sdedit"]
    stride = den.process.T // steps
    rows = {}
    for M in (0, 2):
        cycle = dl.ddib_cycle(den, x0, y0, target, steps=steps, fixed_point_iters=M)
        same = dl.ddim_sample(den.replace(labels=y0), cycle.latent, steps=steps)
        rows[f"DDIB, M = {M}"] = dict(target_read=(dl.predict(judge, cycle.translated) == target).double().mean().item(),
                                      psnr_round_trip=dl.psnr(same, x0).mean().item(),
                                      psnr_cycle=dl.psnr(cycle.cycled, x0).mean().item(),
                                      psnr_to_source=dl.psnr(cycle.translated, x0).mean().item())
    there = dl.sdedit_sample(den.replace(labels=target), x0, t0, steps=t0 // stride, generator=gen(1))
    back = dl.sdedit_sample(den.replace(labels=y0), there, t0, steps=t0 // stride, generator=gen(2))
    rows[f"SDEdit, t0 = {t0}"] = dict(target_read=(dl.predict(judge, there) == target).double().mean().item(),
                                      psnr_cycle=dl.psnr(back, x0).mean().item(),
                                      psnr_to_source=dl.psnr(there, x0).mean().item())
    return {name: {k: round(v, 3) for k, v in row.items()} for name, row in rows.items()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny sizes, nothing written")
    args = p.parse_args(argv)
    settings = dict(SETTINGS)
    if args.smoke:
        settings.update(n=16, seeds=[0], steps=5)
    den = dl.pretrained.load("digits8-unet").denoiser
    judge = dl.pretrained.load("digits8-classifier").model
    test_x, test_y = dl.load_images("digits8", split="test")
    train_x, _ = dl.load_images("digits8", split="train")
    x0, y0 = test_x[:settings["n"]], test_y[:settings["n"]]
    result = dict(settings=settings, ilvr_x2=ccdf(settings, den, judge, x0, train_x),
                  ddib=ddib(settings, den, judge, x0, y0),
                  machine=dict(platform=platform.platform(), cpu_count=os.cpu_count(), torch=torch.__version__,
                               threads=torch.get_num_threads(), load_average=os.getloadavg()[0]))
    if args.smoke:
        print(json.dumps(result, indent=1))
    else:
        OUT.write_text(json.dumps(result, indent=1) + "\n")
        print("wrote", OUT)


if __name__ == "__main__":
    main()
