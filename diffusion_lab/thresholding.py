"""Keeping the predicted x̂₀ inside the data range: clipping and thresholding (a :class:`Denoiser` option).

DDPM's reference sampler clips x̂₀ to [−1, 1] before forming the posterior mean (Ho et al. 2020,
their released code). It matters most at the first reverse steps of a cosine schedule, where √ᾱ_T
is tiny and a small error in ε̂ is a huge error in x̂₀ = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t. Imagen's
dynamic thresholding (Saharia et al. 2022, Sec. 2.3) instead picks, per example, s = the
``percentile`` quantile of |x̂₀|; if s > b it clips x̂₀ to [−s, s] and divides by s/b, which pulls
saturated pixels inwards instead of piling them up on the boundary.

The denoiser applies the clip and then recomputes ε̂ = (x_t − s x̂₀) / σ, so every sampler takes
exactly the step it would take from the clipped x̂₀.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .validation import check_float

Clip = Callable[[torch.Tensor], torch.Tensor]


def static_threshold(x0_hat: torch.Tensor, bound: float = 1.0) -> torch.Tensor:
    """Clip x̂₀ to [−bound, bound] (Ho et al. 2020's clipping; Saharia et al. 2022, Sec. 2.3)."""
    bound = check_float("bound", bound, 0.0, low_open=True)
    return x0_hat.clamp(-bound, bound)


def dynamic_threshold(x0_hat: torch.Tensor, percentile: float = 0.995, bound: float = 1.0) -> torch.Tensor:
    """Dynamic thresholding (Saharia et al. 2022, Sec. 2.3), per example of ``x0_hat`` ``(B, ...)``.

    s = max(quantile(|x̂₀|, percentile), bound); x̂₀ ← clip(x̂₀, −s, s) · bound / s.
    """
    bound = check_float("bound", bound, 0.0, low_open=True)
    percentile = check_float("percentile", percentile, 0.0, 1.0, low_open=True)
    flat = x0_hat.abs().flatten(1)  # (B, D)
    # torch.quantile needs float32 or float64: keep float64 data in float64.
    s = torch.quantile(flat if flat.dtype == torch.float64 else flat.float(), percentile, dim=1)
    s = s.to(x0_hat.dtype).clamp(min=bound).reshape(-1, *([1] * (x0_hat.ndim - 1)))  # (B, 1, ..., 1)
    return x0_hat.clamp(-s, s) * (bound / s)


def make_clip(clip: object) -> Clip | None:
    """None, a bound b (clip x̂₀ to [−b, b]), a pair (low, high), or a function x̂₀ ↦ x̂₀ (a threshold)."""
    if clip is None or callable(clip):
        return clip
    if isinstance(clip, (tuple, list)) and len(clip) == 2:
        low, high = (check_float("clip bound", b) for b in clip)
        if not low < high:
            raise ValueError(f"clip must be a pair (low, high) with low < high, got {clip}")
    else:
        high = check_float("clip", clip, 0.0, low_open=True)
        low = -high
    return lambda x0: x0.clamp(low, high)
