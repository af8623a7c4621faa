"""The one broadcast helper: per-example coefficients against data of any shape.

A coefficient such as ``sqrt(alpha_bar[t])`` has one value per example, shape ``(B,)``. Data is
``(B, 2)`` for 2D points or ``(B, C, H, W)`` for images. ``expand_like`` appends singleton axes so
that the same line of code serves both, instead of hard-coding ``[:, None, None, None]``.
"""

from __future__ import annotations

import torch


def expand_like(coef: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reshape ``coef`` of shape ``(B,)`` (or a scalar) to ``(B, 1, ..., 1)`` matching ``x.ndim``.

    The result has ``x``'s dtype and device, so float64 schedule values are cast at use.
    """
    coef = torch.as_tensor(coef, device=x.device).to(x.dtype)
    if coef.ndim == 0:
        return coef
    if coef.ndim != 1 or coef.shape[0] != x.shape[0]:
        raise ValueError(
            f"a per-example coefficient must have shape ({x.shape[0]},) to match data of shape "
            f"{tuple(x.shape)}, got {tuple(coef.shape)}"
        )
    return coef.reshape(coef.shape[0], *([1] * (x.ndim - 1)))  # (B, 1, ..., 1)
