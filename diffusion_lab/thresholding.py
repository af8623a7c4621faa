"""Keeping the predicted x̂₀ inside the data range: DDPM's ``clip_denoised`` as an ε-model wrapper.

DDPM's reference sampler (Ho et al. 2020, their released code) clips the predicted clean image
x̂₀ = (x_t − √(1 − ᾱ_t) ε̂)/√ᾱ_t to [−1, 1] before forming the posterior mean. The wrapper below
returns the ε̂ that corresponds to the clipped x̂₀,

    ε̂_clip = (x_t − √ᾱ_t · clip(x̂₀)) / √(1 − ᾱ_t),

so *any* ε-form sampler takes exactly the step it would take from the clipped x̂₀. It matters most
at the first reverse steps of a cosine schedule, where √ᾱ_T is tiny and a small error in ε̂ is a
huge error in x̂₀.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .parameterization import eps_from_x0, x0_from_eps
from .schedules import NoiseSchedule


class ClippedEps:
    """``(x_t, t) -> ε̂`` whose implied x̂₀ is clipped to ``[low, high]`` (the data range).

    Args:
        eps_model: an ε-model ``(x_t, t) -> ε̂`` on the steps of ``schedule``.
        schedule: the schedule the sampler runs on (e.g. a respaced one).
    """

    def __init__(self, eps_model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], schedule: NoiseSchedule,
                 low: float = -1.0, high: float = 1.0) -> None:
        if not low < high:
            raise ValueError(f"need low < high, got {low} and {high}")
        self.eps_model, self.schedule, self.low, self.high = eps_model, schedule, low, high

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        alpha_bar = self.schedule.gather("alpha_bar", t, x_t)
        x0_hat = x0_from_eps(x_t, self.eps_model(x_t, t), alpha_bar).clamp(self.low, self.high)
        return eps_from_x0(x_t, x0_hat, alpha_bar)
