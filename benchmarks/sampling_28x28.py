"""Benchmark: sampling 64 images of 28×28 from a shipped checkpoint on 2 CPU cores.

Bar (image issue): ≤ 10 s with 20–50 steps. Uses the MNIST CPU-preview UNet with respaced DDPM
(Nichol & Dhariwal 2021), unguided (null class) and with classifier-free guidance (which doubles
the batch). Each setting is timed three times; the median is reported, with the load average.

    python benchmarks/sampling_28x28.py
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

import diffusion_lab as dl

OUT = Path(__file__).resolve().parent / "results" / "sampling_28x28.json"
BAR_SECONDS = 10.0


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, nargs="+", default=[25, 50])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    denoiser = dl.pretrained.load("mnist-cpu-preview-unet").denoiser  # x̂₀ clipped to [−1, 1]
    rows = []
    for steps in args.steps:
        for w in (None, 2.0):
            y = torch.arange(64) % 10 if w is not None else None
            guided = denoiser.replace(labels=y, guidance=w or 0.0)
            times = []
            for repeat in range(args.repeats):
                start = time.perf_counter()
                dl.ddpm_sample(guided, (64, 1, 28, 28), steps=steps, variance="beta_tilde",
                               generator=torch.Generator().manual_seed(repeat))
                times.append(time.perf_counter() - start)
            rows.append(dict(steps=steps, guidance=w, seconds=[round(t, 2) for t in times],
                             median_seconds=round(statistics.median(times), 2), load_average=list(os.getloadavg())))
            print(rows[-1], flush=True)
    result = dict(checkpoint="mnist-cpu-preview-unet", images=64, bar_seconds=BAR_SECONDS, runs=rows,
                  meets_bar_unguided=min(r["median_seconds"] for r in rows if r["guidance"] is None) <= BAR_SECONDS,
                  meets_bar_guided=min(r["median_seconds"] for r in rows if r["guidance"]) <= BAR_SECONDS,
                  machine=dict(platform=platform.platform(), cpu_count=os.cpu_count(),
                               torch_threads=torch.get_num_threads(), torch=torch.__version__))
    OUT.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
