"""A time-conditioned MLP for low-dimensional data: ``(x, t[, y]) -> tensor shaped like x``."""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Transformer-style sinusoidal features of the steps ``t`` (Vaswani et al. 2017; Ho et al. 2020, App. B).

    Args:
        t: shape ``(B,)``, integer or real steps.
        dim: an even number of features.

    Returns:
        Tensor of shape ``(B, dim)``: ``[cos(t·f_i), sin(t·f_i)]`` with f_i = max_period^(−i / (dim/2)).
    """
    if dim % 2:
        raise ValueError(f"the embedding dimension must be even, got {dim}")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float().unsqueeze(1) * freqs.unsqueeze(0)  # (B, half)
    return torch.cat([angles.cos(), angles.sin()], dim=1)  # (B, dim)


class ResidualBlock(nn.Module):
    """h + W₂ SiLU(W₁ SiLU(h + time feature)): a pre-activation residual block."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, h: torch.Tensor, time_feature: torch.Tensor) -> torch.Tensor:
        return h + self.net(h + time_feature)  # (B, hidden)


class TimeMLP(nn.Module):
    """A residual MLP conditioned on the diffusion step.

    Args:
        data_dim: D, the size of each data point (2 for the toys).
        hidden: width of the hidden layers.
        n_blocks: number of residual blocks.
        time_dim: size of the sinusoidal step embedding.
        num_classes: K for a class-conditional model (None: unconditional). Labels 0..K−1 are the
            classes and ``null_label`` = K is the "no class" label of classifier-free guidance
            (Ho & Salimans 2022); its learned embedding is added to the time feature.

    ``forward(x, t)`` takes x of shape ``(B, D)`` and steps t of shape ``(B,)`` and returns
    ``(B, D)``; a conditional model also takes labels ``y`` of shape ``(B,)`` (y = None means the
    null label for every example). What the output means (ε, x₀, v or the score) is decided by the
    loss it is trained with; see :mod:`diffusion_lab.parameterization`.
    """

    def __init__(
        self,
        data_dim: int = 2,
        hidden: int = 128,
        n_blocks: int = 3,
        time_dim: int = 32,
        num_classes: int | None = None,
    ) -> None:
        super().__init__()
        self.time_dim = time_dim
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.input = nn.Linear(data_dim, hidden)
        self.blocks = nn.ModuleList(ResidualBlock(hidden) for _ in range(n_blocks))
        self.output = nn.Sequential(nn.SiLU(), nn.Linear(hidden, data_dim))
        # Created last, so an unconditional model's initialisation is unchanged.
        self.num_classes = _check_num_classes(num_classes)
        if self.num_classes is not None:
            self.label_embedding = nn.Embedding(self.num_classes + 1, hidden)  # row K: the null label

    @property
    def null_label(self) -> int | None:
        """The label meaning "no class" (K), or None for an unconditional model."""
        return self.num_classes

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.input.in_features:
            raise ValueError(f"TimeMLP expects x of shape (B, {self.input.in_features}), got {tuple(x.shape)}")
        if t.shape != (x.shape[0],):
            raise ValueError(f"TimeMLP expects t of shape ({x.shape[0]},), got {tuple(t.shape)}")
        time_feature = self.time_mlp(sinusoidal_embedding(t, self.time_dim))  # (B, hidden)
        if self.num_classes is not None:
            time_feature = time_feature + self.label_embedding(self._labels(y, x))  # (B, hidden)
        elif y is not None:
            raise ValueError("this TimeMLP is unconditional (num_classes=None); call it without y")
        h = self.input(x)  # (B, hidden)
        for block in self.blocks:
            h = block(h, time_feature)
        return self.output(h)  # (B, D)

    def _labels(self, y: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
        """Labels as a long tensor (B,) in 0..K (K: null); y = None means the null label."""
        if y is None:
            return torch.full((x.shape[0],), self.num_classes, dtype=torch.long, device=x.device)
        if not isinstance(y, torch.Tensor) or y.dtype.is_floating_point or y.dtype == torch.bool:
            raise TypeError(f"y must be an integer tensor of labels of shape ({x.shape[0]},) or None")
        if y.shape != (x.shape[0],):
            raise ValueError(f"TimeMLP expects y of shape ({x.shape[0]},), got {tuple(y.shape)}")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) > self.num_classes):
            raise ValueError(
                f"labels must lie in 0..{self.num_classes - 1}, or be {self.num_classes} (the null label)"
            )
        return y.long()


def _check_num_classes(num_classes: int | None) -> int | None:
    if num_classes is None:
        return None
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int or None, got {num_classes!r}")
    return num_classes
