"""The forward (noising) process and its posterior, for any noise process x_t = s(t) x_0 + σ(t) ε.

* closed form   q(x_t | x_0)        = N(s_t x_0, σ_t² I)                    (Ho et al. 2020, Eq. 4)
* transition    q(x_t | x_{t'})     = N(s_{t|t'} x_{t'}, σ²_{t|t'} I),  t' < t
* posterior     q(x_{t'} | x_t, x_0) = N(μ̃, σ̃² I)                          (Ho et al. 2020, Eqs. 6–7)

with s_{t|t'} = s_t / s_{t'} and σ²_{t|t'} = σ_t² − s²_{t|t'} σ_{t'}² (Kingma et al. 2021, Eqs. 33–34):

    μ̃ = (s_{t|t'} σ_{t'}² / σ_t²) x_t + (s_{t'} σ²_{t|t'} / σ_t²) x_0,     σ̃² = σ²_{t|t'} σ_{t'}² / σ_t².

For a discrete schedule with t' = t − 1 these are DDPM's: s²_{t|t−1} = α_t, σ²_{t|t−1} = β_t and
σ̃² = β̃_t. Every function takes data of shape ``(B, ...)``: ``(B, 2)`` points or ``(B, C, H, W)``
images. Times are whatever the process uses (an int step or a long tensor ``(B,)`` for a schedule,
floats for an SDE or path); randomness comes from ``noise=`` or ``generator=``.
"""

from __future__ import annotations

from typing import Any

import torch

from .broadcast import expand_like
from .validation import check_generator, check_same_device, check_same_shape, check_tensor


def randn_like(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard normal noise shaped like ``x``, drawn from ``generator`` (which must be on x's device)."""
    check_generator(generator)
    if generator is not None and generator.device.type != x.device.type:
        raise ValueError(
            f"the generator is on {generator.device} but the data is on {x.device}; "
            f"create it with torch.Generator(device={x.device.type!r})"
        )
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)


def _noise_for(x: torch.Tensor, noise: torch.Tensor | None, generator: torch.Generator | None) -> torch.Tensor:
    if noise is None:
        return randn_like(x, generator)
    check_tensor("noise", noise, floating=True)
    check_same_shape("noise", noise, "x", x)
    check_same_device("noise", noise, "x", x)
    return noise


def _data(name: str, x: object) -> torch.Tensor:
    # Integer data would cast the coefficients to int (ᾱ → 0): refuse it with the fix.
    return check_tensor(name, x, floating=True, ndim_min=2)


def transition(process: Any, t: torch.Tensor, t_prev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(s_{t|t'}, σ²_{t|t'}) of q(x_t | x_{t'}), float64 ``(B,)``, for validated times t' < t."""
    s, sigma = process.scale_std(t)
    s_prev, sigma_prev = process.scale_std(t_prev)
    ratio = s / s_prev
    return ratio, (sigma**2 - ratio**2 * sigma_prev**2).clamp_min(0.0)


def posterior_coefficients(process: Any, t: torch.Tensor, t_prev: torch.Tensor
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The posterior q(x_{t'} | x_t, x_0) as (coefficient of x_t, coefficient of x_0, variance σ̃²), float64 ``(B,)``."""
    _, sigma = process.scale_std(t)
    s_prev, sigma_prev = process.scale_std(t_prev)
    ratio, var_step = transition(process, t, t_prev)
    return ratio * sigma_prev**2 / sigma**2, s_prev * var_step / sigma**2, var_step * sigma_prev**2 / sigma**2


def _previous(process: Any, t: torch.Tensor, t_prev: int | float | torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
    if t_prev is None:
        if not process.discrete:
            raise ValueError("t_prev is required in continuous time (a discrete schedule defaults to t − 1)")
        return t - 1
    t_prev = process.check_time(t_prev, x)
    if bool((t_prev >= t).any()):
        raise ValueError("t_prev must be smaller than t for every example")
    return t_prev


def q_step_sample(process: Any, x_prev: torch.Tensor, t: int | float | torch.Tensor, *,
                  t_prev: int | float | torch.Tensor | None = None, noise: torch.Tensor | None = None,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw x_t ~ q(x_t | x_{t'}) = N(s_{t|t'} x_{t'}, σ²_{t|t'} I); for a schedule t' = t − 1 by default,
    N(√α_t x_{t−1}, β_t I) (Ho et al. 2020, Eq. 2)."""
    x_prev = _data("x_prev", x_prev)
    t = process.check_time(t, x_prev, **({"min_t": 1} if process.discrete else {}))
    ratio, var = transition(process, t, _previous(process, t, t_prev, x_prev))
    return expand_like(ratio, x_prev) * x_prev + expand_like(var.sqrt(), x_prev) * _noise_for(x_prev, noise, generator)


def q_mean_std(process: Any, x0: torch.Tensor, t: int | float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean s_t x_0 (shape of x0) and standard deviation σ_t (shape ``(B, 1, ..., 1)``) of q(x_t | x_0).

    For a schedule, s_t = √ᾱ_t and σ_t = √(1 − ᾱ_t); t may be 0 (ᾱ_0 = 1: x_t is x_0 itself).
    """
    x0 = _data("x0", x0)
    s, sigma = process.scale_std(process.check_time(t, x0))
    return expand_like(s, x0) * x0, expand_like(sigma, x0)


def q_sample(process: Any, x0: torch.Tensor, t: int | float | torch.Tensor, *, noise: torch.Tensor | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw x_t = s_t x_0 + σ_t ε, ε ~ N(0, I): the closed form of q(x_t | x_0) (Ho et al. 2020, Eq. 4).

    Args:
        process: a schedule (steps 0..T; 0 returns x0), an SDE or a path (times in [0, 1]).
        x0: clean data, shape ``(B, ...)``, floating point.
        t: one time for the batch, or a tensor of shape ``(B,)``.
        noise: the ε to use, shaped like x0 (drawn from ``generator`` if omitted).
    """
    mean, std = q_mean_std(process, x0, t)
    return mean + std * _noise_for(x0, noise, generator)


def q_posterior(process: Any, x_t: torch.Tensor, x0: torch.Tensor, t: int | float | torch.Tensor, *,
                t_prev: int | float | torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean μ̃ and variance σ̃² of q(x_{t'} | x_t, x_0) (the module docstring); t' = t − 1 by default.

    For a schedule and t' = t − 1 (Ho et al. 2020, Eqs. 6–7):
    μ̃_t = √ᾱ_{t−1} β_t / (1 − ᾱ_t) · x_0 + √α_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · x_t and σ̃² = β̃_t.

    Returns:
        ``(mean, variance)``: mean shaped like x_t, variance of shape ``(B, 1, ..., 1)``.
    """
    x_t, x0 = _data("x_t", x_t), _data("x0", x0)
    check_same_shape("x_t", x_t, "x0", x0)
    check_same_device("x_t", x_t, "x0", x0)
    t = process.check_time(t, x_t, **({"min_t": 1} if process.discrete else {}))
    coef_xt, coef_x0, var = posterior_coefficients(process, t, _previous(process, t, t_prev, x_t))
    return expand_like(coef_xt, x_t) * x_t + expand_like(coef_x0, x_t) * x0, expand_like(var, x_t)
