"""Thresholding of the predicted x̂₀ (Saharia et al. 2022, Imagen, Sec. 2.3), as an ε-model wrapper.

Samplers see only ε̂. :class:`ThresholdedEpsModel` converts ε̂ to x̂₀ = (x_t − √(1 − ᾱ_t) ε̂)/√ᾱ_t,
applies a threshold function to x̂₀, and converts back, so *every* sampler (DDPM, DDIM, Heun,
DPM-Solver++) can use thresholding without a flag of its own:

* static thresholding clips x̂₀ to [−b, b], the range of the data;
* dynamic thresholding picks, per example, s = the ``percentile`` quantile of |x̂₀|; if s > b it
  clips x̂₀ to [−s, s] and divides by s/b, which pulls saturated pixels inwards instead of piling
  them up on the boundary.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..parameterization import eps_from_x0, x0_from_eps
from ..schedules import NoiseSchedule


def _check_bound(bound: float) -> float:
    if not bound > 0:
        raise ValueError(f"bound must be positive (the data lie in [-bound, bound]), got {bound}")
    return float(bound)


def static_threshold(x0_hat: torch.Tensor, bound: float = 1.0) -> torch.Tensor:
    """Clip x̂₀ to [−bound, bound] (Ho et al. 2020's clipping; Saharia et al. 2022, Sec. 2.3)."""
    bound = _check_bound(bound)
    return x0_hat.clamp(-bound, bound)


def dynamic_threshold(x0_hat: torch.Tensor, percentile: float = 0.995, bound: float = 1.0) -> torch.Tensor:
    """Dynamic thresholding (Saharia et al. 2022, Sec. 2.3), per example of ``x0_hat`` ``(B, ...)``.

    s = max(quantile(|x̂₀|, percentile), bound); x̂₀ ← clip(x̂₀, −s, s) · bound / s.
    """
    bound = _check_bound(bound)
    if not 0.0 < percentile <= 1.0:
        raise ValueError(f"percentile must lie in (0, 1], got {percentile}")
    flat = x0_hat.abs().flatten(1)  # (B, D)
    s = torch.quantile(flat.float(), percentile, dim=1).to(x0_hat.dtype).clamp(min=bound)  # (B,)
    s = s.reshape(-1, *([1] * (x0_hat.ndim - 1)))  # (B, 1, ..., 1)
    return x0_hat.clamp(-s, s) * (bound / s)


class ThresholdedEpsModel:
    """An ε-model whose implied x̂₀ is passed through ``threshold`` (e.g. :func:`static_threshold`).

    ``ThresholdedEpsModel(eps_model, schedule, dynamic_threshold)(x_t, t)`` returns
    ε̃ = (x_t − √ᾱ_t · threshold(x̂₀)) / √(1 − ᾱ_t), the ε consistent with the thresholded x̂₀.
    Use ``functools.partial`` to set a threshold's options (``partial(static_threshold, bound=2)``).
    """

    def __init__(
        self,
        eps_model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        schedule: NoiseSchedule,
        threshold: Callable[[torch.Tensor], torch.Tensor] = static_threshold,
    ) -> None:
        if not callable(threshold):
            raise TypeError(f"threshold must be a function x0_hat -> x0_hat, got {type(threshold).__name__}")
        self.eps_model = eps_model
        self.schedule = schedule
        self.threshold = threshold

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        alpha_bar = self.schedule.gather("alpha_bar", t, x_t)  # (B, 1, ..., 1)
        x0_hat = x0_from_eps(x_t, self.eps_model(x_t, t), alpha_bar)
        return eps_from_x0(x_t, self.threshold(x0_hat), alpha_bar)
