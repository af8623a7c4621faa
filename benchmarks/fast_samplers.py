"""Benchmark: fast samplers against DDPM with 1000 steps, with the exact Gaussian-mixture denoiser.

Bar (issue 5): DPM-Solver++(2M) at 10–20 NFE and DDIM (η = 0) at 50 steps reach an energy distance
within 10 % of DDPM with 1000 steps. "Energy distance" is that of n = 2,000 samples to the data
law, whose expectation is E[V_n] = D² + E_P|X − X'| / n: the sampler's true squared distance D²
plus a floor (0.96e-3 for the ring). Its single-batch estimates scatter by about ±60 % of the floor at
every n, so batches of 2,000 cannot resolve 10 %. Here:

* the deterministic samplers start from scrambled-Sobol noise (dl.sobol_normal, randomised
  quasi-Monte Carlo), so D² = dl.energy_distance_to_mixture(samples, ring, unbiased=False) is
  measured with almost no floor; four independent scrambles give its standard error;
* DDPM (stochastic at every step) draws N independent points; its D² is the unbiased estimate,
  with standard error c · E|Y − Y'| / N (c measured on samples of the data law itself);
* E[V_2000] = D² + W / 2000, with W the sample's mean pairwise distance, for every sampler.

Results go to benchmarks/results/fast_samplers.json.

    python benchmarks/fast_samplers.py [--n-ddpm 40000] [--n-qmc 16384] [--std 0.15]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

import diffusion_lab as dl

OUT = Path(__file__).resolve().parent / "results" / "fast_samplers.json"
BAR_N = 2000  # the sample size at which "within 10 %" is judged
BAR_SAMPLERS = ("ddim_50", "dpm_solver_2m_10", "dpm_solver_2m_20")


def mean_pairwise(x: torch.Tensor, chunk: int = 4096) -> float:
    x = x.double()
    return sum(torch.cdist(x[i:i + chunk], x).sum().item() for i in range(0, len(x), chunk)) / (len(x) * (len(x) - 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-ddpm", type=int, default=40_000)
    parser.add_argument("--n-qmc", type=int, default=2**14)
    parser.add_argument("--scrambles", type=int, default=4)
    parser.add_argument("--std", type=float, default=0.15)
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    gmm = dl.GaussianMixture.ring(n_components=8, radius=1.5, std=args.std)
    s = dl.cosine_schedule(1000)
    exact = gmm.denoiser(s)  # the mixture's exact denoiser
    spread = dl.mixture_mean_distance(gmm)  # E|Y − Y'|
    floor = spread / BAR_N
    quadratic = partial(dl.sampling_steps, s, spacing="quadratic")
    ode = {
        "ddim_1000": lambda x: dl.ddim_sample(exact, x, steps=1000),
        "ddim_50": lambda x: dl.ddim_sample(exact, x, steps=50),
        "ddim_10": lambda x: dl.ddim_sample(exact, x, steps=10),
        "dpm_solver_2m_10": lambda x: dl.dpm_solver_2m_sample(exact, x, steps=quadratic(10)),
        "dpm_solver_2m_20": lambda x: dl.dpm_solver_2m_sample(exact, x, steps=quadratic(20)),
        "dpm_solver_2m_10_uniform_steps": lambda x: dl.dpm_solver_2m_sample(exact, x, steps=10),
        # 10 Heun steps on the schedule's uniform grid (no explicit grid): 18 NFE, see dl.nfe.
        f"heun_{dl.nfe(exact, 'heun', 10)}_nfe": lambda x: dl.heun_sample(exact, x, steps=10),
    }
    results: dict[str, dict] = {}
    for name, run in ode.items():
        d2, w = [], []
        for scramble in range(args.scrambles):
            x = run(dl.sobol_normal(args.n_qmc, seed=scramble))
            d2.append(dl.energy_distance_to_mixture(x, gmm, unbiased=False))
            w.append(mean_pairwise(x))
        results[name] = {"D2": float(np.mean(d2)), "D2_standard_error": float(np.std(d2, ddof=1) / np.sqrt(len(d2))),
                         "mean_pairwise_distance": float(np.mean(w)), "noise": f"{args.scrambles} scrambles of {args.n_qmc} Sobol points"}
        print(name, results[name], flush=True)
    # Quasi-Monte Carlo floor: the data law itself from 3D Sobol points (component, then two normals).
    null = []
    for scramble in range(args.scrambles):
        u = torch.quasirandom.SobolEngine(3, scramble=True, seed=100 + scramble).draw(args.n_qmc, dtype=torch.float64)
        k = (u[:, 0] * gmm.n_components).long()
        x = gmm.means[k] + args.std * torch.special.ndtri(u[:, 1:].clamp(1e-12, 1 - 1e-12))
        null.append(dl.energy_distance_to_mixture(x, gmm, unbiased=False))
    # DDPM: independent draws, the unbiased estimate and its standard error from the null spread.
    g = torch.Generator().manual_seed(500)
    c = float(np.std([dl.energy_distance_to_mixture(gmm.sample(4000, generator=g), gmm) for _ in range(20)], ddof=1)) * 4000 / spread
    t0 = time.perf_counter()
    x = dl.ddpm_sample(exact, torch.randn(args.n_ddpm, 2, generator=torch.Generator().manual_seed(8), dtype=torch.float64),
                       generator=torch.Generator().manual_seed(9))
    w = mean_pairwise(x)
    results["ddpm_1000"] = {"D2": dl.energy_distance_to_mixture(x, gmm), "D2_standard_error": c * spread / args.n_ddpm,
                            "mean_pairwise_distance": w,
                            "mean_pairwise_distance_standard_error": float(2 * dl.mixture_mean_distance(gmm, x).std() / np.sqrt(args.n_ddpm)),
                            "noise": f"{args.n_ddpm} independent draws", "sampling_seconds": round(time.perf_counter() - t0, 1)}
    print("ddpm_1000", results["ddpm_1000"], flush=True)
    ddpm = results["ddpm_1000"]
    ddpm_ev = ddpm["D2"] + ddpm["mean_pairwise_distance"] / BAR_N
    ddpm_ev_lower = ddpm["mean_pairwise_distance"] / BAR_N  # D² ≥ 0: DDPM's expected energy distance is at least this
    for name, r in results.items():
        r["expected_ED_at_2000"] = r["D2"] + r["mean_pairwise_distance"] / BAR_N
        r["D2_in_percent_of_floor_2000"] = 100 * r["D2"] / floor
        r["ratio_to_ddpm_1000"] = r["expected_ED_at_2000"] / ddpm_ev
        r["ratio_to_ddpm_1000_upper_bound"] = r["expected_ED_at_2000"] / ddpm_ev_lower  # DDPM's D² ≥ 0
    summary = {
        "bar": "E[energy distance of 2,000 samples to the data law] within 10 % of DDPM-1000's",
        "bar_met": all(results[k]["ratio_to_ddpm_1000_upper_bound"] <= 1.10 for k in BAR_SAMPLERS),
        "bar_met_note": "judged by the ratio's upper bound: DDPM's expected energy distance is at least W/2000 (its D² ≥ 0), so noise in DDPM's own D² estimate cannot help",
        "floor_2000": floor, "E|Y-Y'|": spread, "null_noise_constant_c": c,
        "qmc_floor_of_the_data_law": float(np.mean(null)),
        "data": f"ring of 8 components, radius 1.5, std {args.std}; cosine schedule, T = 1000",
        "seconds": round(time.perf_counter() - start, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, one thread, load average {os.getloadavg()[0]:.1f}",
        "samplers": results,
    }
    OUT.parent.mkdir(exist_ok=True)
    existing = json.loads(OUT.read_text()) if OUT.exists() else {}
    existing[f"ring_std_{args.std}"] = summary
    OUT.write_text(json.dumps(existing, indent=1) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "samplers"}, indent=1))
    for name, r in results.items():
        print(f"{name:32s} D2 {r['D2']:.2e} ± {r['D2_standard_error']:.1e} ({r['D2_in_percent_of_floor_2000']:5.1f} % of floor)"
              f"  ratio to DDPM {r['ratio_to_ddpm_1000']:.3f} (upper bound {r['ratio_to_ddpm_1000_upper_bound']:.3f})")


if __name__ == "__main__":
    main()
