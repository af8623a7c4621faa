"""Sampling a T-step model with fewer steps by respacing its schedule (Nichol & Dhariwal 2021, Sec. 4).

Keep S of the T steps, τ_1 < … < τ_S = T. The forward process restricted to them is again a
Markov chain with the same marginals ᾱ_{τ_i}; its per-step noise is

    β'_i = 1 − ᾱ_{τ_i} / ᾱ_{τ_{i−1}}   (ᾱ_{τ_0} = 1).

Any discrete sampler (e.g. :func:`~diffusion_lab.ddpm_sample`) then runs on the respaced schedule
with the network called at the original step τ_i.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .schedules import NoiseSchedule, from_betas


def respace(schedule: NoiseSchedule, steps: int) -> tuple[NoiseSchedule, torch.Tensor]:
    """A schedule of ``steps`` evenly spaced steps of ``schedule``, and the kept steps τ.

    Returns:
        ``(respaced, tau)`` where ``respaced.T == steps`` and ``tau`` is a long tensor of shape
        ``(steps + 1,)`` with ``tau[0] = 0`` and ``tau[i]`` the original step of new step i.
    """
    if not isinstance(steps, int) or not 1 <= steps <= schedule.T:
        raise ValueError(f"steps must be an int in 1..{schedule.T} (the schedule's T), got {steps!r}")
    tau = np.unique(np.round(np.linspace(0, schedule.T, steps + 1)).astype(np.int64))  # (steps + 1,)
    alpha_bar = schedule.alpha_bar[tau]
    betas = 1.0 - alpha_bar[1:] / alpha_bar[:-1]
    return from_betas(betas, name=f"{schedule.name} respaced to {steps}"), torch.from_numpy(tau)


class RespacedModel:
    """``(x, t') -> model(x, τ[t'])``: call a network trained on the full schedule at respaced steps."""

    def __init__(self, model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], tau: torch.Tensor) -> None:
        self.model, self.tau = model, tau

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.model(x_t, self.tau.to(t.device)[t])
