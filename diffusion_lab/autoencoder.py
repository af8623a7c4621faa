"""A small autoencoder for latent diffusion (Rombach et al. 2022): images ↔ short latent vectors.

Latent diffusion first compresses images with an autoencoder, then runs diffusion on the latents,
so the expensive iterative sampler works in a space with far fewer dimensions. Rombach et al.
regularise the latent space lightly, with a small KL term towards N(0, I) ("KL-reg", Sec. 3.1), so
that it has no holes, and rescale the latents to unit variance before diffusion (their App. G).
This module does both for 1×8×8 digits with an MLP:

==================  ============  ==========================================================
code                symbol        meaning
==================  ============  ==========================================================
``encode(x)``       μ_φ, log σ²_φ  mean and log-variance of q_φ(z | x), ``(B, d)`` each
``decode(z)``       D_θ(z)        the image decoded from a raw latent, ``(B, C, H, W)``
``latent_scale``    c             1 / (std of μ_φ over the data), so that c·μ_φ has unit variance
``to_latent(x)``    c · μ_φ(x)    what the diffusion model is trained on
``from_latent(z)``  D_θ(z / c)    back to pixels
==================  ============  ==========================================================
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .validation import check_tensor
from .fitting import fit, minibatch
from .forward import randn_like
from .training import TrainResult


class Autoencoder(nn.Module):
    """MLP encoder and decoder between images ``(B, C, H, W)`` in [−1, 1] and latents ``(B, latent_dim)``.

    Args:
        image_shape: (C, H, W) of the images.
        latent_dim: d, the size of a latent vector (8 for digits: 8× fewer numbers than pixels).
        hidden: width of the two hidden layers on each side.
    """

    def __init__(self, image_shape: Sequence[int] = (1, 8, 8), latent_dim: int = 8, hidden: int = 256) -> None:
        super().__init__()
        self.image_shape = tuple(int(s) for s in image_shape)
        if len(self.image_shape) != 3 or latent_dim < 1 or hidden < 1:
            raise ValueError(f"need image_shape (C, H, W), latent_dim >= 1 and hidden >= 1, got "
                             f"{image_shape!r}, {latent_dim!r}, {hidden!r}")
        self.latent_dim = latent_dim
        pixels = self.image_shape[0] * self.image_shape[1] * self.image_shape[2]
        self.encoder = nn.Sequential(nn.Linear(pixels, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                     nn.Linear(hidden, 2 * latent_dim))
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                     nn.Linear(hidden, pixels), nn.Tanh())
        self.register_buffer("latent_scale", torch.ones(()))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ, log σ²) of q(z | x), each ``(B, latent_dim)``."""
        if x.ndim != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(f"Autoencoder expects images of shape (B, {', '.join(map(str, self.image_shape))}), "
                             f"got {tuple(x.shape)}")
        mean, log_var = self.encoder(x.flatten(1)).chunk(2, dim=1)  # (B, d) each
        return mean, log_var.clamp(-12.0, 6.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, H, W)`` in [−1, 1] from raw latents ``(B, latent_dim)``."""
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"Autoencoder.decode expects latents of shape (B, {self.latent_dim}), got {tuple(z.shape)}")
        return self.decoder(z).reshape(z.shape[0], *self.image_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The deterministic reconstruction D(μ(x))."""
        return self.decode(self.encode(x)[0])

    def to_latent(self, x: torch.Tensor) -> torch.Tensor:
        """c · μ(x): the scaled latents that diffusion runs on, ``(B, latent_dim)``."""
        return self.encode(x)[0] * self.latent_scale

    def from_latent(self, z: torch.Tensor) -> torch.Tensor:
        """Decode scaled latents: D(z / c), ``(B, C, H, W)``."""
        return self.decode(z / self.latent_scale)


def autoencoder_loss(autoencoder: Autoencoder, x: torch.Tensor, *, kl_weight: float = 1e-3,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-example ‖x − D(z)‖²/P + β·KL(q(z | x) ‖ N(0, I)), z = μ + σ ε (Kingma & Welling 2014): ``(B,)``.

    A small β (Rombach et al. 2022's KL-reg) keeps reconstructions sharp while the latents stay
    close to a standard normal.
    """
    check_tensor("x", x)
    mean, log_var = autoencoder.encode(x)
    z = mean + (0.5 * log_var).exp() * randn_like(mean, generator)
    reconstruction = autoencoder.decode(z)
    mse = (reconstruction - x).pow(2).flatten(1).mean(1)
    kl = 0.5 * (mean.pow(2) + log_var.exp() - 1.0 - log_var).sum(1)
    return mse + kl_weight * kl


def train_autoencoder(autoencoder: Autoencoder, images: torch.Tensor, *, steps: int, batch_size: int = 128,
                      lr: float = 2e-3, kl_weight: float = 1e-3, ema_decay: float = 0.99, seed: int = 0,
                      progress: bool = False) -> TrainResult:
    """Train ``autoencoder`` in place with :func:`autoencoder_loss`; then call :func:`fit_latent_scale`."""
    check_tensor("images", images)

    def batch_loss(generator: torch.Generator) -> torch.Tensor:
        x, = minibatch(images, batch_size, generator)
        return autoencoder_loss(autoencoder, x, kl_weight=kl_weight, generator=generator)

    return fit(autoencoder, batch_loss, steps=steps, lr=lr, ema_decay=ema_decay, grad_clip=1.0, seed=seed,
               progress=progress, desc="autoencoder")


@torch.no_grad()
def fit_latent_scale(autoencoder: Autoencoder, images: torch.Tensor) -> float:
    """Set c = 1 / std(μ(x)) over ``images`` (all latent coordinates pooled) and return it."""
    std = autoencoder.encode(images)[0].std()
    autoencoder.latent_scale.fill_(1.0 / float(std))
    return float(autoencoder.latent_scale)
