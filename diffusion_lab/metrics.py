"""Measurements: sample quality (the energy distance and its floor) and information left in x_t.

The energy distance (Székely & Rizzo 2013) between distributions P and Q is
D²(P, Q) = 2 E|X − Y| − E|X − X'| − E|Y − Y'| ≥ 0, zero only when P = Q. We estimate it with the
V-statistic (all pairs, diagonal included): for two independent samples of the *same* distribution,
of sizes n and m, its expectation is E|X − X'| · (1/n + 1/m) > 0. That is the *floor* — the value a
perfect model would score at this sample size — and results are reported as a ratio to it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from ._validation import check_same_device, check_tensor
from .forward import q_sample
from .schedules import NoiseSchedule


def _mean_distance(a: torch.Tensor, b: torch.Tensor, chunk: int = 4096) -> float:
    """Mean Euclidean distance over all pairs (a_i, b_j), computed in float64 chunks."""
    total = 0.0
    for start in range(0, a.shape[0], chunk):
        total += torch.cdist(a[start:start + chunk], b).sum().item()
    return total / (a.shape[0] * b.shape[0])


def energy_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """V-statistic estimate of the squared energy distance between samples ``x`` (n, D) and ``y`` (m, D)."""
    for name, s in (("x", x), ("y", y)):
        check_tensor(name, s)
        if s.ndim != 2:
            raise ValueError(f"{name} must have shape (n, D), got {tuple(s.shape)}")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dimension D, got {x.shape[1]} and {y.shape[1]}")
    check_same_device("x", x, "y", y)
    x, y = x.double(), y.double()
    return 2.0 * _mean_distance(x, y) - _mean_distance(x, x) - _mean_distance(y, y)


def energy_distance_floor(sample_real: Callable[[int, int], torch.Tensor], n: int, *, repeats: int = 3) -> float:
    """Mean energy distance between two independent real samples of size ``n``.

    Args:
        sample_real: ``(n, seed) -> (n, D)`` tensor of real data.
        repeats: number of independent pairs averaged.
    """
    values = []
    for r in range(repeats):
        # Both halves come from one draw: samples from nearby seeds of one generator can be
        # correlated (seen with torch's CPU generator), which would bias the floor low.
        both = sample_real(2 * n, 1_000 + r)
        values.append(energy_distance(both[:n], both[n:]))
    return float(np.mean(values))


def energy_ratio(samples: torch.Tensor, sample_real: Callable[[int, int], torch.Tensor], *, seed: int = 12345,
                 floor: float | None = None) -> float:
    """Energy distance of ``samples`` to a fresh real sample of the same size, divided by the floor.

    A ratio near 1 means the samples are as close to the data as another real sample would be.
    """
    n = samples.shape[0]
    reference = sample_real(n, seed).to(samples.device)
    if floor is None:
        floor = energy_distance_floor(sample_real, n)
    return energy_distance(samples, reference) / floor


def identification_accuracy(
    schedule: NoiseSchedule,
    data: torch.Tensor,
    steps: Sequence[int],
    *,
    n_queries: int = 256,
    generator: torch.Generator | None = None,
) -> np.ndarray:
    """How much of x_0's identity survives in x_t, for each t in ``steps``.

    For ``n_queries`` points x_0 of ``data`` (shape ``(N, ...)``), draw x_t ~ q(x_t | x_0) and ask
    which element of ``data`` most likely produced it: the maximiser of q(x_t | x_0⁽ⁱ⁾), i.e. the
    nearest √ᾱ_t x_0⁽ⁱ⁾. Returns the fraction identified correctly per step, shape ``(len(steps),)``:
    1 while x_t still pins down its source, 1/N (chance) once the signal is gone.
    """
    check_tensor("data", data)
    flat = data.flatten(1).double()  # (N, D)
    n = flat.shape[0]
    queries = torch.randperm(n, generator=generator)[: min(n_queries, n)]
    accuracy = []
    for t in steps:
        x_t = q_sample(schedule, data[queries], t, generator=generator).flatten(1).double()  # (Q, D)
        # log q(x_t | x_0^(i)) = −|x_t − √ᾱ_t x_0^(i)|² / (2(1 − ᾱ_t)) + const: the nearest scaled point wins.
        nearest = torch.cdist(x_t, math.sqrt(schedule.alpha_bar[t]) * flat).argmin(1)
        accuracy.append((nearest == queries).double().mean().item())
    return np.array(accuracy)
