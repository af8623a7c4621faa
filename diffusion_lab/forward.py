"""The forward (noising) process of DDPM (Ho et al. 2020) and its posterior.

* one step      q(x_t | x_{t−1}) = N(√α_t · x_{t−1}, β_t I)                       (Eq. 2)
* closed form   q(x_t | x_0)     = N(√ᾱ_t · x_0, (1 − ᾱ_t) I)                      (Eq. 4)
* posterior     q(x_{t−1} | x_t, x_0) = N(μ̃_t(x_t, x_0), β̃_t I)                   (Eqs. 6–7)

Every function takes data of shape ``(B, ...)``: ``(B, 2)`` points or ``(B, C, H, W)`` images.
Steps ``t`` are an int or a long tensor of shape ``(B,)``; randomness comes from ``noise=`` or
``generator=`` so that a cell or a test can replay the same draw.
"""

from __future__ import annotations

import torch

from ._validation import check_same_device, check_same_shape, check_tensor
from .schedules import NoiseSchedule


def randn_like(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard normal noise shaped like ``x``, drawn from ``generator`` (which must be on x's device)."""
    if generator is not None and generator.device.type != x.device.type:
        raise ValueError(
            f"the generator is on {generator.device} but the data is on {x.device}; "
            f"create it with torch.Generator(device={x.device.type!r})"
        )
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)


def _noise_for(x: torch.Tensor, noise: torch.Tensor | None, generator: torch.Generator | None) -> torch.Tensor:
    if noise is None:
        return randn_like(x, generator)
    check_tensor("noise", noise)
    check_same_shape("noise", noise, "x", x)
    check_same_device("noise", noise, "x", x)
    return noise


def q_step_sample(
    schedule: NoiseSchedule,
    x_prev: torch.Tensor,
    t: int | torch.Tensor,
    *,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw x_t ~ q(x_t | x_{t−1}) = N(√α_t x_{t−1}, β_t I) for t in 1..T (Ho et al. 2020, Eq. 2)."""
    check_tensor("x_prev", x_prev)
    t = schedule.timesteps(t, x_prev.shape[0], x_prev.device)
    noise = _noise_for(x_prev, noise, generator)
    alpha = schedule.gather("alpha", t, x_prev)  # (B, 1, ..., 1)
    beta = schedule.gather("beta", t, x_prev)
    return alpha.sqrt() * x_prev + beta.sqrt() * noise


def q_mean_std(schedule: NoiseSchedule, x0: torch.Tensor, t: int | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean √ᾱ_t x_0 (shape of x0) and standard deviation √(1 − ᾱ_t) (shape (B, 1, ..., 1)) of q(x_t | x_0).

    t may be 0 (ᾱ_0 = 1: x_t is x_0 itself).
    """
    check_tensor("x0", x0)
    t = schedule.timesteps(t, x0.shape[0], x0.device, min_t=0)
    alpha_bar = schedule.gather("alpha_bar", t, x0)
    return alpha_bar.sqrt() * x0, (1.0 - alpha_bar).sqrt()


def q_sample(
    schedule: NoiseSchedule,
    x0: torch.Tensor,
    t: int | torch.Tensor,
    *,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε, ε ~ N(0, I): the closed form of q(x_t | x_0) (Ho et al. 2020, Eq. 4).

    Args:
        x0: clean data, shape ``(B, ...)``.
        t: steps in 0..T (0 returns x0), an int or a long tensor of shape ``(B,)``.
        noise: the ε to use, shaped like x0 (drawn from ``generator`` if omitted).
    """
    mean, std = q_mean_std(schedule, x0, t)
    return mean + std * _noise_for(x0, noise, generator)


def q_posterior(
    schedule: NoiseSchedule, x_t: torch.Tensor, x0: torch.Tensor, t: int | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean μ̃_t and variance β̃_t of q(x_{t−1} | x_t, x_0) for t in 1..T (Ho et al. 2020, Eqs. 6–7).

    μ̃_t = √ᾱ_{t−1} β_t / (1 − ᾱ_t) · x_0 + √α_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · x_t
    β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t

    Returns:
        ``(mean, variance)``: mean shaped like x_t, variance of shape ``(B, 1, ..., 1)``.
    """
    check_tensor("x_t", x_t)
    check_tensor("x0", x0)
    check_same_shape("x_t", x_t, "x0", x0)
    check_same_device("x_t", x_t, "x0", x0)
    t = schedule.timesteps(t, x_t.shape[0], x_t.device)
    alpha_bar = schedule.gather("alpha_bar", t, x_t)
    alpha_bar_prev = schedule.gather("alpha_bar", t - 1, x_t)
    alpha = schedule.gather("alpha", t, x_t)
    beta = schedule.gather("beta", t, x_t)
    coef_x0 = alpha_bar_prev.sqrt() * beta / (1.0 - alpha_bar)
    coef_xt = alpha.sqrt() * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar)
    return coef_x0 * x0 + coef_xt * x_t, schedule.gather("beta_tilde", t, x_t)
