"""Where every sampler starts: given noise, or fresh noise of a given shape."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def initial_noise(x_T: torch.Tensor | Sequence[int], generator: torch.Generator | None) -> torch.Tensor:
    """Return ``x_T`` itself, or N(0, I) noise of shape ``x_T`` drawn from ``generator``'s device."""
    if isinstance(x_T, torch.Tensor):
        return x_T
    shape = tuple(x_T)
    if not shape or not all(isinstance(s, int) and s > 0 for s in shape):
        raise ValueError(f"x_T must be a tensor or a shape of positive ints such as (B, 2), got {x_T!r}")
    device = generator.device if generator is not None else torch.device("cpu")
    return torch.randn(shape, generator=generator, device=device)
