"""DDIM: deterministic or partly stochastic sampling on a subsequence of steps (Song et al. 2021).

With a_t = ᾱ_t and the model's guesses x̂₀ = (x_t − √(1 − a_t) ε̂) / √a_t, one step from τ_i to
τ_{i−1} (Song et al. 2021, Eq. 12) is

    x_{τ_{i−1}} = √a_{τ_{i−1}} x̂₀ + √(1 − a_{τ_{i−1}} − σ²) ε̂ + σ z,   z ~ N(0, I),

with σ = σ_{τ_i}(η) of :func:`ddim_sigma`. η = 0 is the deterministic DDIM sampler, η = 1 the
DDPM ancestral sampler on the same steps.

=================  ==================  ==================================================
code               symbol              meaning
=================  ==================  ==================================================
``alpha_bar``      ᾱ_{τ_i}             signal kept at the current step
``alpha_bar_prev`` ᾱ_{τ_{i−1}}         signal kept at the next (less noisy) step; 1 at τ_0 = 0
``sigma``          σ_{τ_i}(η)          standard deviation of the fresh noise
``x0_hat``         x̂₀                  the model's prediction of x_0 ("predicted x_0")
=================  ==================  ==================================================
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from .._validation import check_tensor
from ..forward import randn_like
from ..schedules import NoiseSchedule
from ._start import initial_noise
from ._steps import sampling_steps

EpsModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def ddim_sigma(alpha_bar: float, alpha_bar_prev: float, eta: float) -> float:
    """σ_t(η) = η √((1 − ᾱ_{t'}) / (1 − ᾱ_t)) √(1 − ᾱ_t / ᾱ_{t'}) for a step t → t' (Song et al. 2021, Eq. 16).

    With t' = t − 1 and η = 1 this is √β̃_t, DDPM's posterior standard deviation.
    """
    if eta < 0:
        raise ValueError(f"eta must be >= 0 (0: deterministic DDIM, 1: DDPM), got {eta}")
    return eta * math.sqrt((1.0 - alpha_bar_prev) / (1.0 - alpha_bar) * (1.0 - alpha_bar / alpha_bar_prev))


def _ddim_step(x: torch.Tensor, eps_hat: torch.Tensor, alpha_bar: float, alpha_bar_prev: float,
               sigma: float) -> torch.Tensor:
    """The deterministic part of DDIM (Song et al. 2021), Eq. 12: x_{t'} before the σ z term."""
    # Predicted x_0.
    x0_hat = (x - math.sqrt(1.0 - alpha_bar) * eps_hat) / math.sqrt(alpha_bar)
    # Direction pointing to x_t, then the signal at t'.
    return math.sqrt(alpha_bar_prev) * x0_hat + math.sqrt(max(1.0 - alpha_bar_prev - sigma**2, 0.0)) * eps_hat


@torch.no_grad()
def ddim_sample(
    eps_model: EpsModelFn,
    schedule: NoiseSchedule,
    x_T: torch.Tensor | Sequence[int],
    *,
    steps: int | Sequence[int] = 50,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Sample with DDIM (Song et al. 2021, Eq. 12) on the steps τ_S > ... > τ_1 > τ_0 = 0.

    Args:
        eps_model: ``(x_t, t) -> ε̂`` with t long steps of shape ``(B,)``.
        x_T: the starting state x_{τ_S} (noise), or a shape ``(B, ...)`` to draw it from ``generator``.
        steps: an int S (S evenly spaced steps ending at T, see :func:`sampling_steps`) or an explicit
            increasing sequence of steps; the sampler starts at the largest. One model call per step.
        eta: η ≥ 0 scales the fresh noise: 0 is deterministic, 1 is DDPM's ancestral sampler.
        return_trajectory: also return the visited states.

    Returns:
        x_0 of shape ``(B, ...)``; with ``return_trajectory``, ``(x_0, trajectory)`` where the
        trajectory has shape ``(S + 1, B, ...)`` and ``trajectory[i]`` is x_{τ_i} (τ_0 = 0), so
        that with ``steps=T`` it is indexed by t like :func:`ddpm_sample`'s.
    """
    taus = sampling_steps(schedule, steps)
    ddim_sigma(0.5, 1.0, eta)  # validates eta
    x = initial_noise(x_T, generator)
    trajectory = [x] if return_trajectory else None
    for tau, tau_prev in zip(taus[::-1], (taus[:-1][::-1] + (0,))):
        t = schedule.timesteps(tau, x.shape[0], x.device)
        alpha_bar, alpha_bar_prev = float(schedule.alpha_bar[tau]), float(schedule.alpha_bar[tau_prev])
        sigma = ddim_sigma(alpha_bar, alpha_bar_prev, eta)
        eps_hat = eps_model(x, t)
        # DDIM (Song et al. 2021), Eq. 12.
        x = _ddim_step(x, eps_hat, alpha_bar, alpha_bar_prev, sigma)
        # Fresh noise (none when eta = 0).
        if sigma > 0:
            x = x + sigma * randn_like(x, generator)
        if trajectory is not None:
            trajectory.append(x)
    if trajectory is None:
        return x
    return x, torch.stack(trajectory[::-1])  # (S + 1, B, ...): index i holds x_{τ_i}


@torch.no_grad()
def ddim_invert(
    eps_model: EpsModelFn,
    schedule: NoiseSchedule,
    x0: torch.Tensor,
    *,
    steps: int | Sequence[int] = 50,
    fixed_point_iters: int = 0,
    return_trajectory: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Run deterministic DDIM (η = 0) backwards, x_0 → x_{τ_S}: the latent that DDIM maps to x_0.

    The step τ_{i−1} → τ_i solves Eq. 12 of Song et al. (2021) (with σ = 0) for x_{τ_i}:

        x_{τ_i} = √ᾱ_{τ_i} x̂₀ + √(1 − ᾱ_{τ_i}) ε̂,   x̂₀ = (x_{τ_{i−1}} − √(1 − ᾱ_{τ_{i−1}}) ε̂) / √ᾱ_{τ_{i−1}},

    which needs ε̂ at the *unknown* x_{τ_i}. The usual inversion (Song et al. 2021, Sec. 5.4;
    Dhariwal & Nichol 2021, App. F) uses ε̂(x_{τ_{i−1}}, τ_i) instead, which is exact in the limit of
    small steps. ``fixed_point_iters`` > 0 then refines the guess by the fixed-point iteration
    x_{τ_i} ← step(ε̂(x_{τ_i}, τ_i)), which makes inversion followed by :func:`ddim_sample` with the
    same steps exact at convergence (Pan et al. 2023).

    Args:
        x0: data of shape ``(B, ...)``.
        steps: as in :func:`ddim_sample`; use the same value for the generation.
        fixed_point_iters: number of refinement iterations per step (0: the plain inversion).
        return_trajectory: also return the visited states, indexed like :func:`ddim_sample`'s.

    Returns:
        x_{τ_S} shaped like ``x0``; with ``return_trajectory``, ``(x_{τ_S}, trajectory)`` with
        ``trajectory[i]`` = x_{τ_i}, shape ``(S + 1, B, ...)``.
    """
    check_tensor("x0", x0)
    if isinstance(fixed_point_iters, bool) or not isinstance(fixed_point_iters, int) or fixed_point_iters < 0:
        raise ValueError(f"fixed_point_iters must be an int >= 0, got {fixed_point_iters!r}")
    taus = sampling_steps(schedule, steps)
    x = x0
    trajectory = [x] if return_trajectory else None
    for tau_prev, tau in zip((0,) + taus[:-1], taus):
        t = schedule.timesteps(tau, x.shape[0], x.device)
        alpha_bar, alpha_bar_prev = float(schedule.alpha_bar[tau]), float(schedule.alpha_bar[tau_prev])
        # Initial guess: the model at the current state.
        x_next = _ddim_step(x, eps_model(x, t), alpha_bar_prev, alpha_bar, 0.0)
        # Fixed-point refinement.
        for _ in range(fixed_point_iters):
            x_next = _ddim_step(x, eps_model(x_next, t), alpha_bar_prev, alpha_bar, 0.0)
        x = x_next
        if trajectory is not None:
            trajectory.append(x)
    if trajectory is None:
        return x
    return x, torch.stack(trajectory)  # (S + 1, B, ...): index i holds x_{τ_i}


def slerp(z0: torch.Tensor, z1: torch.Tensor, weight: float | torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between latents (Shoemake 1985; used for DDIM latents by Song et al. 2021, Sec. 5.3).

    slerp(z0, z1; λ) = sin((1 − λ) θ) / sin θ · z0 + sin(λ θ) / sin θ · z1, with θ the angle between
    each pair of examples (flattened). Gaussian latents in high dimension live near a sphere of
    radius √D; linear interpolation would cut through its inside, slerp stays near it.

    Args:
        z0, z1: latents of the same shape ``(B, ...)``.
        weight: λ in [0, 1], a float or a tensor of shape ``(B,)``.

    Returns:
        Tensor shaped like ``z0``.
    """
    check_tensor("z0", z0)
    check_tensor("z1", z1)
    if z0.shape != z1.shape:
        raise ValueError(f"z0 and z1 must have the same shape, got {tuple(z0.shape)} and {tuple(z1.shape)}")
    a, b = z0.flatten(1), z1.flatten(1)  # (B, D)
    lam = torch.as_tensor(weight, dtype=a.dtype, device=a.device).reshape(-1, 1)  # (B|1, 1)
    cos = (a * b).sum(1, keepdim=True) / (a.norm(dim=1, keepdim=True) * b.norm(dim=1, keepdim=True))
    theta = torch.arccos(cos.clamp(-1.0, 1.0))  # (B, 1)
    sin = torch.sin(theta)
    # Nearly parallel latents: fall back to linear interpolation, the limit of slerp as θ → 0.
    small = sin.abs() < 1e-6
    safe = torch.where(small, torch.ones_like(sin), sin)
    w0 = torch.where(small, 1.0 - lam, torch.sin((1.0 - lam) * theta) / safe)
    w1 = torch.where(small, lam.expand_as(theta), torch.sin(lam * theta) / safe)
    return (w0 * a + w1 * b).reshape(z0.shape)
