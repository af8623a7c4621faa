"""Exponential moving average of a model's weights (Polyak averaging), as used by DDPM's sampler."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Keeps ``ema_model``, a frozen copy whose weights follow θ_ema ← d·θ_ema + (1 − d)·θ.

    Args:
        model: the network being trained (it is copied, never modified).
        decay: d in [0, 1); 0 makes the copy equal to the latest weights.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must lie in [0, 1), got {decay}")
        self.decay = decay
        self.ema_model = copy.deepcopy(model).requires_grad_(False)
        self._ema_params = list(self.ema_model.parameters())
        self._ema_buffers = list(self.ema_model.buffers())

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the averaged weights one step towards ``model``'s (buffers are copied as they are)."""
        # One fused call over all tensors: the per-tensor loop dominated small models' step time.
        torch._foreach_lerp_(self._ema_params, list(model.parameters()), 1.0 - self.decay)
        for ema_b, b in zip(self._ema_buffers, model.buffers()):
            ema_b.copy_(b)
