"""Training losses. Every loss returns per-example values of shape ``(B,)``; the caller reduces."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ._validation import check_tensor
from .forward import q_sample, randn_like
from .parameterization import training_target
from .schedules import NoiseSchedule


def ddpm_loss(
    model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    schedule: NoiseSchedule,
    x0: torch.Tensor,
    *,
    parameterization: str = "eps",
    t: int | torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The simplified DDPM loss ‖target − model(x_t, t)‖², averaged over each example's dimensions.

    With ``parameterization="eps"`` this is L_simple (Ho et al. 2020, Eq. 14, Algorithm 1):
    t ~ Uniform{1..T}, ε ~ N(0, I), x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε, target ε. With ``"x0"``,
    ``"v"`` or ``"score"`` the network regresses that target instead, which reweights the terms over t.

    Args:
        x0: clean data, shape ``(B, ...)``.
        t: steps to use (default: uniform draws from ``generator``).
        noise: the ε to use (default: drawn from ``generator``).

    Returns:
        Tensor of shape ``(B,)``.
    """
    check_tensor("x0", x0)
    batch = x0.shape[0]
    if t is None:
        t = torch.randint(1, schedule.T + 1, (batch,), generator=generator, device=x0.device)
    t = schedule.timesteps(t, batch, x0.device)
    if noise is None:
        noise = randn_like(x0, generator)
    x_t = q_sample(schedule, x0, t, noise=noise)
    target = training_target(parameterization, x0, noise, schedule.gather("alpha_bar", t, x0))
    output = model(x_t, t)
    if output.shape != x0.shape:
        raise ValueError(f"the model must return a tensor shaped like x, {tuple(x0.shape)}, got {tuple(output.shape)}")
    return (output - target).pow(2).flatten(1).mean(1)  # (B,)
