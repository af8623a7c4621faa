"""Benchmark: the swiss-roll DDPM, trained and sampled on the CPU.

Bar (foundation issue): energy distance ≤ 2× the real-vs-real floor (5,000 points, mean of 3 seeds),
with training plus sampling in ≤ 20 s on 2 CPU cores. Results go to benchmarks/results/swiss_roll.json.

    python benchmarks/swiss_roll.py
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import torch

import diffusion_lab as dl

# The recipe the "ε-prediction and training" chapter uses on the CPU.
CONFIG = dict(schedule="cosine", T=100, hidden=64, n_blocks=3, steps=1500, batch_size=256, lr=3e-3,
              n_train=20_000, n_eval=5_000)
BARS = dict(max_ratio_to_floor=2.0, max_seconds=20.0)
OUT = Path(__file__).resolve().parent / "results" / "swiss_roll.json"


def real(n: int, seed: int) -> torch.Tensor:
    return dl.swiss_roll(n, seed=seed)


def run(seed: int, floor: float) -> dict:
    c = CONFIG
    schedule = dl.make_schedule(c["schedule"], c["T"])
    data = real(c["n_train"], 0)
    start = time.perf_counter()
    torch.manual_seed(seed)
    denoiser = dl.Denoiser(dl.TimeMLP(hidden=c["hidden"], n_blocks=c["n_blocks"]), schedule, predicts="eps")
    result = dl.train_diffusion(denoiser, data, steps=c["steps"], batch_size=c["batch_size"], lr=c["lr"],
                                seed=seed, progress=False)
    trained = time.perf_counter()
    samples = dl.ddpm_sample(result.denoiser, (c["n_eval"], 2), generator=torch.Generator().manual_seed(seed))
    done = time.perf_counter()
    return dict(seed=seed, train_seconds=round(trained - start, 2), sample_seconds=round(done - trained, 2),
                total_seconds=round(done - start, 2),
                energy_distance=dl.energy_distance(samples, real(c["n_eval"], 12_345 + seed)),
                ratio_to_floor=round(dl.energy_ratio(samples, real, seed=12_345 + seed, floor=floor), 3))


def main() -> None:
    torch.set_num_threads(min(2, os.cpu_count() or 1))  # the book's target: 2 CPU cores
    floor = dl.energy_distance_floor(real, CONFIG["n_eval"], repeats=5)
    runs = []
    for seed in range(3):
        runs.append(run(seed, floor))
        print(runs[-1], flush=True)
    mean_ratio = sum(r["ratio_to_floor"] for r in runs) / len(runs)
    mean_seconds = sum(r["total_seconds"] for r in runs) / len(runs)
    result = dict(
        config=CONFIG, bars=BARS, floor_energy_distance=floor, runs=runs,
        mean_ratio_to_floor=round(mean_ratio, 3), mean_total_seconds=round(mean_seconds, 2),
        meets_quality_bar=mean_ratio <= BARS["max_ratio_to_floor"],
        meets_time_bar=mean_seconds <= BARS["max_seconds"],
        machine=dict(platform=platform.platform(), processor=platform.processor(), cpu_count=os.cpu_count(),
                     torch_threads=torch.get_num_threads(), torch=torch.__version__),
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("mean_ratio_to_floor", "mean_total_seconds",
                                              "meets_quality_bar", "meets_time_bar")}))


if __name__ == "__main__":
    main()
