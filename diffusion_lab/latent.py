"""Latent diffusion (Rombach et al. 2022): sample latents with any sampler, then decode them.

The diffusion model is an ordinary ε-model on latent vectors ``(B, d)`` (e.g. a
:class:`~diffusion_lab.TimeMLP` with ``data_dim=d``) trained with :func:`~diffusion_lab.train` on
``autoencoder.to_latent(images)``; nothing in the samplers changes. The cost of one sample is
the sampler's network calls on d numbers plus one decoder call, instead of network calls on all
pixels.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch
from torch import nn

from .autoencoder import Autoencoder
from .samplers.ddim import ddim_sample
from .schedules import NoiseSchedule


@torch.no_grad()
def latent_sample(eps_model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], schedule: NoiseSchedule,
                  autoencoder: Autoencoder, n: int, *, steps: int | Sequence[int] = 50, eta: float = 0.0,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """n images: DDIM (Song et al. 2021) in latent space, then the decoder, clamped to [−1, 1].

    Returns:
        Images of shape ``(n, C, H, W)``.
    """
    z = ddim_sample(eps_model, schedule, (n, autoencoder.latent_dim), steps=steps, eta=eta, generator=generator)
    return autoencoder.from_latent(z).clamp(-1.0, 1.0)


def parameter_count(*modules: nn.Module) -> int:
    """Total number of parameters of the given modules."""
    return sum(p.numel() for m in modules for p in m.parameters())


def seconds_per_sample(sample: Callable[[], torch.Tensor], *, repeats: int = 3) -> float:
    """Best-of-``repeats`` wall-clock time of ``sample()`` divided by the number of samples it returns."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = sample()
        best = min(best, (time.perf_counter() - start) / out.shape[0])
    return best
