"""Learned against fixed reverse variances at the scale of the paper's table (Nichol & Dhariwal 2021, Tables 1-2),
on the book's models: writes benchmarks/results/learned_variance.json.

    python benchmarks/learned_variance.py            # about 10 minutes on 2 cores
    python benchmarks/learned_variance.py --smoke    # seconds: every code path, nothing written

Chapter 14 computes the same table on fewer examples and one seed, to stay within its time limit;
this script uses every test digit (n = 500), 200 strata of the bound (all T terms on the swiss roll),
5,000 swiss-roll points, the step counts 10, 25, 50 and 100, and three sampling seeds, and
reports the mean and the spread over seeds. The models are the shipped ``swiss-variance-*`` and
``digits8-variance-*`` checkpoints (scripts/train_learned_variance.py).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
from pathlib import Path

import torch

import diffusion_lab as dl

OUT = Path(__file__).resolve().parent / "results" / "learned_variance.json"
SETTINGS = dict(step_counts=[10, 25, 50, 100], seeds=[1, 2, 3], strata=200, swiss_n=5000, digits_n=500)
SWISS_CLIP = 3.0  # x̂₀ clipped to the box [−3, 3]² around the data when sampling, as the chapter does
SETUPS = {"L_simple, beta": ("simple", "beta"), "L_simple, beta_tilde": ("simple", "beta_tilde"),
          "L_hybrid, learned": ("hybrid", "learned")}


def summary(values: list[float]) -> dict:
    mean = sum(values) / len(values)
    return dict(mean=round(mean, 4), values=[round(v, 4) for v in values])


def swiss(settings: dict) -> dict:
    models = {k: dl.pretrained.load(f"swiss-variance-{k}") for k in ("simple", "hybrid", "vlb")}
    setups = dict(SETUPS, **{"L_vlb, learned": ("vlb", "learned")})

    def real(n, seed):
        return dl.swiss_roll(n, seed=seed)

    n = settings["swiss_n"]
    floor = dl.energy_distance_floor(real, n)
    held_out = real(n, 11)
    rows = {}
    for name, (model, variance) in setups.items():
        denoiser = models[model].denoiser
        bound = dl.elbo_terms(denoiser, held_out, variance=variance, generator=torch.Generator().manual_seed(1)).total
        rows[name] = dict(bound_nats_per_point=round(float(bound.mean()), 4),
                          bound_standard_error=round(float(bound.std()) / math.sqrt(n), 4), energy_ratio={})
        for S in settings["step_counts"]:
            clipped = denoiser.replace(clip=SWISS_CLIP)
            ratios = [dl.energy_ratio(dl.ddpm_sample(clipped, (n, 2), steps=S, variance=variance,
                                                     generator=torch.Generator().manual_seed(seed)), real, floor=floor)
                      for seed in settings["seeds"]]
            rows[name]["energy_ratio"][str(S)] = summary(ratios)
        print("swiss", name, rows[name], flush=True)
    return dict(n=n, floor=round(floor, 6), rows=rows)


def digits(settings: dict) -> dict:
    models = {k: dl.pretrained.load(f"digits8-variance-{k}") for k in ("simple", "hybrid")}
    judge = dl.pretrained.load("digits8-classifier").model
    train_x, _ = dl.load_images("digits8", split="train")
    test_x, _ = dl.load_images("digits8", split="test")
    n = min(settings["digits_n"], len(test_x))
    rows, floor = {}, None
    for name, (model, variance) in SETUPS.items():
        denoiser = models[model].denoiser
        nats = dl.stratified_bound(denoiser, test_x[:n], strata=settings["strata"], variance=variance,
                                   decoder="discretized", bin_width=2 / 16, generator=torch.Generator().manual_seed(1))
        bits = dl.bits_per_dim(nats, 64)
        rows[name] = dict(bits_per_dim=round(float(bits.mean()), 4),
                          bits_standard_error=round(float(bits.std()) / math.sqrt(n), 4), fld={})
        for S in settings["step_counts"]:
            reports = [dl.fld_report(judge, dl.ddpm_sample(denoiser, (n, 1, 8, 8), steps=S, variance=variance,
                                                           generator=torch.Generator().manual_seed(seed)),
                                     train_x, test_x[:n], generator=torch.Generator().manual_seed(0))
                       for seed in settings["seeds"]]
            floor = reports[0]["floor"]
            rows[name]["fld"][str(S)] = summary([r["fld"] for r in reports])
        print("digits", name, rows[name], flush=True)
    return dict(n=n, floor=round(floor, 4), rows=rows)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny sizes, nothing written")
    args = p.parse_args(argv)
    settings = dict(SETTINGS)
    if args.smoke:
        settings.update(step_counts=[5], seeds=[1], strata=3, swiss_n=64, digits_n=16)
    result = dict(settings=settings, swiss_roll=swiss(settings), digits8=digits(settings),
                  machine=dict(platform=platform.platform(), cpu_count=os.cpu_count(), torch=torch.__version__,
                               threads=torch.get_num_threads()))
    if not args.smoke:
        OUT.write_text(json.dumps(result, indent=1) + "\n")
        print("wrote", OUT)


if __name__ == "__main__":
    main()
