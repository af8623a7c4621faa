"""Residual MLPs for low-dimensional data (the 2D toys, latent vectors), all built from one block.

* :class:`TimeMLP`: ``(x, t[, y]) -> tensor shaped like x``, the diffusion network of the toys;
* :class:`NoiseConditionalScoreNet`: ``(x, σ) -> score``, Song & Ermon's NCSN idea sized for 2D;
* :class:`NoisyClassifier`: ``(x_t, t) -> logits``, the classifier of classifier guidance.

The NCSN is conditioned on log σ through the sinusoidal embedding instead of a step t. Two choices
from the NCSN papers keep one network good at every σ: the input is scaled to unit variance,
x / √(1 + σ²) (data of roughly unit scale), and the output is divided by σ, since
‖∇ log p_σ‖ ≈ 1/σ (Song & Ermon 2020, Technique 3). The classifier is trained on *noisy* inputs
x_t ~ q(x_t | x_0) at random steps t, because guidance needs ∇_x log p_φ(y | x_t, t) all along the
reverse chain, not only at clean data (Dhariwal & Nichol 2021).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .broadcast import expand_like
from .validation import check_int, check_labels, check_tensor


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
    check_tensor("t", t)
    if t.ndim != 1:
        raise ValueError(f"t must have shape (B,), one time per example, got {tuple(t.shape)}")
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


class ResidualMLP(nn.Module):
    """The trunk shared by the three networks below: input layer, residual blocks fed a conditioning
    feature (an embedded time or noise level), output layer. Inputs of another float dtype (e.g.
    float64) are cast to the weights' dtype and the output back to the input's."""

    def __init__(self, data_dim: int, out_dim: int, hidden: int, n_blocks: int, embed_dim: int) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.time_mlp = nn.Sequential(nn.Linear(embed_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.input = nn.Linear(data_dim, hidden)
        self.blocks = nn.ModuleList(ResidualBlock(hidden) for _ in range(n_blocks))
        self.output = nn.Sequential(nn.SiLU(), nn.Linear(hidden, out_dim))

    def check_inputs(self, x: torch.Tensor, t: torch.Tensor) -> None:
        """x must be floating ``(B, D)`` and t ``(B,)``."""
        name = type(self).__name__
        check_tensor("x", x, floating=True)
        if x.ndim != 2 or x.shape[1] != self.input.in_features:
            raise ValueError(f"{name} expects x of shape (B, {self.input.in_features}), got {tuple(x.shape)}")
        check_tensor("t", t)
        if t.shape != (x.shape[0],):
            raise ValueError(f"{name} expects t of shape ({x.shape[0]},), got {tuple(t.shape)}")

    def trunk(self, x: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
        """The output for inputs x ``(B, D)`` and a conditioning feature ``(B, hidden)``."""
        dtype = self.input.weight.dtype
        h = self.input(x.to(dtype))  # (B, hidden)
        for block in self.blocks:
            h = block(h, feature.to(dtype))
        return self.output(h).to(x.dtype)


class TimeMLP(ResidualMLP):
    """A residual MLP conditioned on the diffusion step: ``(x, t[, y]) -> (B, D)``.

    Args:
        data_dim: D, the size of each data point (2 for the toys).
        hidden: width of the hidden layers.
        n_blocks: number of residual blocks.
        time_dim: size of the sinusoidal step embedding.
        num_classes: K for a class-conditional model (None: unconditional). Labels 0..K−1 are the
            classes and ``null_label`` = K is the "no class" label of classifier-free guidance
            (Ho & Salimans 2022); its learned embedding is added to the time feature.
        learns_variance: also output D numbers r for the reverse variance's weight ν = (r + 1)/2
            (Nichol & Dhariwal 2021): the output is then ``(B, 2D)``, the prediction first.

    ``forward(x, t)`` takes x of shape ``(B, D)`` and steps t of shape ``(B,)``; a conditional model
    also takes labels ``y`` of shape ``(B,)`` (y = None means the null label for every example).
    What the output means (ε, x₀, v, the score or a velocity) is decided by the
    :class:`~diffusion_lab.Denoiser` it is trained in.
    """

    def __init__(self, data_dim: int = 2, hidden: int = 128, n_blocks: int = 3, time_dim: int = 32,
                 num_classes: int | None = None, learns_variance: bool = False) -> None:
        super().__init__(data_dim, 2 * data_dim if learns_variance else data_dim, hidden, n_blocks, time_dim)
        self.learns_variance = bool(learns_variance)
        self.time_dim = time_dim
        # Created last, so an unconditional model's initialisation is unchanged.
        self.num_classes = None if num_classes is None else check_int("num_classes", num_classes, 1)
        if self.num_classes is not None:
            self.label_embedding = nn.Embedding(self.num_classes + 1, hidden)  # row K: the null label

    @property
    def null_label(self) -> int | None:
        """The label meaning "no class" (K), or None for an unconditional model."""
        return self.num_classes

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        self.check_inputs(x, t)
        time_feature = self.time_mlp(sinusoidal_embedding(t, self.time_dim))  # (B, hidden)
        if self.num_classes is not None:
            y = self.num_classes if y is None else y  # None: the null label
            y = check_labels("y", y, x.shape[0], self.num_classes).to(x.device)
            time_feature = time_feature + self.label_embedding(y)  # (B, hidden)
        elif y is not None:
            raise ValueError("this TimeMLP is unconditional (num_classes=None); call it without y")
        return self.trunk(x, time_feature)  # (B, D)


class NoiseConditionalScoreNet(ResidualMLP):
    """A residual MLP s_θ(x, σ) (Song & Ermon 2019's NCSN idea, sized for 2D data).

    Args:
        data_dim: D.
        hidden: width of the hidden layers.
        n_blocks: number of residual blocks.
        embed_dim: size of the sinusoidal embedding of ``embed_scale · log σ``.

    ``forward(x, sigma)`` takes x ``(B, D)`` and noise levels σ ``(B,)`` (positive floats) and
    returns the score estimate ``(B, D)``.
    """

    def __init__(self, data_dim: int = 2, hidden: int = 128, n_blocks: int = 3, embed_dim: int = 32,
                 embed_scale: float = 4.0) -> None:
        super().__init__(data_dim, data_dim, hidden, n_blocks, embed_dim)
        self.embed_scale = embed_scale

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, device=x.device).to(x.dtype)
        if sigma.ndim == 0:
            sigma = sigma.expand(x.shape[0])
        self.check_inputs(x, sigma)
        if torch.any(sigma <= 0):
            raise ValueError("sigma must be positive")
        feature = self.time_mlp(sinusoidal_embedding(self.embed_scale * sigma.log(), self.embed_dim))
        return self.trunk(x / expand_like((1 + sigma**2).sqrt(), x), feature) / expand_like(sigma, x)  # (B, D)


class NoisyClassifier(ResidualMLP):
    """A residual MLP ``(x_t, t) -> logits`` of shape ``(B, K)``, conditioned on the step like :class:`TimeMLP`.

    Args:
        data_dim: D, the size of each data point.
        num_classes: K.
        hidden, n_blocks, time_dim: as in :class:`~diffusion_lab.TimeMLP`.
    """

    def __init__(self, data_dim: int = 2, num_classes: int = 2, hidden: int = 64, n_blocks: int = 2,
                 time_dim: int = 32) -> None:
        super().__init__(data_dim, check_int("num_classes", num_classes, 2), hidden, n_blocks, time_dim)
        self.time_dim, self.num_classes = time_dim, num_classes

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.check_inputs(x, t)
        return self.trunk(x, self.time_mlp(sinusoidal_embedding(t, self.time_dim)))  # (B, K)
