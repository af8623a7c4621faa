"""Heun's second-order solver for the probability-flow ODE (Karras et al. 2022, Algorithm 1).

On a discrete schedule, divide x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε by √ᾱ_t: x̃ = x_t / √ᾱ_t is x_0 plus
noise of standard deviation σ_t = √((1 − ᾱ_t) / ᾱ_t) (the variance-exploding form). In (x̃, σ) the
probability-flow ODE is simply dx̃/dσ = ε̂(x, t) (Song et al. 2021, DDIM, Eq. 14; Karras et al.
2022, Eq. 4 with s = 1). Euler on it is DDIM with η = 0; Heun adds a trapezoidal correction with a
second model call at the end of the step.

=========  ================================  ==========================================
code       symbol                            meaning
=========  ================================  ==========================================
``sigma``  σ_t = √((1 − ᾱ_t)/ᾱ_t)            noise level of x̃ (Karras et al. 2022)
``x_tilde`` x̃ = x_t / √ᾱ_t                   the state in the variance-exploding form
``d``      dx̃/dσ = ε̂                        the ODE's slope
=========  ================================  ==========================================
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from ..schedules import NoiseSchedule
from ._start import initial_noise
from ._steps import sampling_steps


def karras_sigma(schedule: NoiseSchedule, t: int) -> float:
    """σ_t = √((1 − ᾱ_t) / ᾱ_t): the noise level of x_t / √ᾱ_t (0 at t = 0)."""
    alpha_bar = float(schedule.alpha_bar[t])
    return math.sqrt((1.0 - alpha_bar) / alpha_bar)


@torch.no_grad()
def heun_sample(
    eps_model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    schedule: NoiseSchedule,
    x_T: torch.Tensor | Sequence[int],
    *,
    steps: int | Sequence[int] = 25,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Solve the probability-flow ODE with Heun's method (Karras et al. 2022, Algorithm 1).

    The solver visits the same steps τ_S > ... > τ_1 > 0 as :func:`ddim_sample`. Each step costs
    two model calls (Euler step, then the 2nd-order correction), except two plain Euler steps:
    the last, to σ = 0, as in Algorithm 1; and the first, from σ_T. Karras et al. start at
    σ_max = 80, but a VP schedule's σ_T is far larger (2·10⁴ for the cosine schedule with T = 1000),
    and the trapezoid rule's error grows with the step length σ_T − σ_{τ_{S−1}}, while Euler's
    slope at σ_T is exact to O(1/σ_T²) (x̃ ≈ x_0 + σ z there). S ≥ 2 steps cost 2S − 2 model calls.

    Args:
        eps_model: ``(x_t, t) -> ε̂`` with t long steps of shape ``(B,)``.
        x_T: the starting state x_{τ_S}, or a shape ``(B, ...)`` to draw it from ``generator``.
        steps: an int S or an increasing sequence of steps (see :func:`sampling_steps`).
        return_trajectory: also return the visited states, ``trajectory[i]`` = x_{τ_i}.

    Returns:
        x_0, or ``(x_0, trajectory)`` with the trajectory of shape ``(S + 1, B, ...)``.
    """
    taus = sampling_steps(schedule, steps)
    x = initial_noise(x_T, generator)
    trajectory = [x] if return_trajectory else None
    for tau, tau_next in zip(taus[::-1], (taus[:-1][::-1] + (0,))):
        t = schedule.timesteps(tau, x.shape[0], x.device)
        sigma, sigma_next = karras_sigma(schedule, tau), karras_sigma(schedule, tau_next)
        x_tilde = x / math.sqrt(float(schedule.alpha_bar[tau]))
        d = eps_model(x, t)
        # Euler step.
        x_tilde_next = x_tilde + (sigma_next - sigma) * d
        # 2nd-order correction (not on the first or the last step).
        if 0 < tau_next and tau < taus[-1]:
            t_next = schedule.timesteps(tau_next, x.shape[0], x.device)
            d_next = eps_model(x_tilde_next * math.sqrt(float(schedule.alpha_bar[tau_next])), t_next)
            x_tilde_next = x_tilde + (sigma_next - sigma) * 0.5 * (d + d_next)
        x = x_tilde_next * math.sqrt(float(schedule.alpha_bar[tau_next]))
        if trajectory is not None:
            trajectory.append(x)
    if trajectory is None:
        return x
    return x, torch.stack(trajectory[::-1])  # (S + 1, B, ...): index i holds x_{τ_i}
