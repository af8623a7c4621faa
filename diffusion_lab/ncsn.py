"""A noise-conditional score network for low-dimensional data: ``(x, σ) -> s_θ(x, σ) ≈ ∇ log p_σ(x)``.

The same residual blocks as :class:`~diffusion_lab.TimeMLP`, conditioned on log σ through the
sinusoidal embedding instead of a step t. Two choices from the NCSN papers keep one network good at
every σ: the input is scaled to unit variance, x / √(1 + σ²) (data of roughly unit scale), and the
output is divided by σ, since ‖∇ log p_σ‖ ≈ 1/σ (Song & Ermon 2020, Technique 3).
"""

from __future__ import annotations

import torch
from torch import nn

from .broadcast import expand_like
from .mlp import ResidualBlock, sinusoidal_embedding


class NoiseConditionalScoreNet(nn.Module):
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
        super().__init__()
        self.embed_dim, self.embed_scale = embed_dim, embed_scale
        self.noise_mlp = nn.Sequential(nn.Linear(embed_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.input = nn.Linear(data_dim, hidden)
        self.blocks = nn.ModuleList(ResidualBlock(hidden) for _ in range(n_blocks))
        self.output = nn.Sequential(nn.SiLU(), nn.Linear(hidden, data_dim))

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.input.in_features:
            raise ValueError(f"expects x of shape (B, {self.input.in_features}), got {tuple(x.shape)}")
        sigma = torch.as_tensor(sigma, device=x.device).to(x.dtype)
        if sigma.ndim == 0:
            sigma = sigma.expand(x.shape[0])
        if sigma.shape != (x.shape[0],) or torch.any(sigma <= 0):
            raise ValueError(f"expects positive sigma of shape ({x.shape[0]},), got {tuple(sigma.shape)}")
        dtype = self.input.weight.dtype
        feature = self.noise_mlp(sinusoidal_embedding(self.embed_scale * sigma.log(), self.embed_dim))
        h = self.input((x / expand_like((1 + sigma**2).sqrt(), x)).to(dtype))  # (B, hidden)
        for block in self.blocks:
            h = block(h, feature.to(dtype))
        return self.output(h).to(x.dtype) / expand_like(sigma, x)  # (B, D)
