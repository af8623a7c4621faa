"""DPM-Solver++(2M): a second-order multistep solver in data prediction (Lu et al. 2022, Algorithm 2).

Lu et al. write x_t = α_t x_0 + σ_t ε, so on our schedule α_t = √ᾱ_t and σ_t = √(1 − ᾱ_t) (not
Karras's σ), and λ_t = log(α_t / σ_t) is half the log-SNR. With the model's x̂₀ and
h_i = λ_{t_i} − λ_{t_{i−1}}, one step is

    x_{t_i} = (σ_{t_i} / σ_{t_{i−1}}) x_{t_{i−1}} − α_{t_i} (e^{−h_i} − 1) D_i,
    D_i = (1 + 1/(2 r_i)) x̂₀(t_{i−1}) − 1/(2 r_i) x̂₀(t_{i−2}),   r_i = h_{i−1} / h_i,

with D_1 = x̂₀(t_0) on the first step (first order: DDIM). One model call per step.

==============  ===================  ===========================================
code            symbol               meaning
==============  ===================  ===========================================
``alpha_t``     α_t = √ᾱ_t            signal coefficient (Lu et al.'s notation)
``sigma_t``     σ_t = √(1 − ᾱ_t)      noise coefficient
``lambda_t``    λ_t = log(α_t/σ_t)    half log-SNR
``x0_hat``      x̂₀                    the model's prediction of x_0
==============  ===================  ===========================================
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from ..schedules import NoiseSchedule
from ._start import initial_noise
from ._steps import sampling_steps


@torch.no_grad()
def dpm_solver_2m_sample(
    eps_model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    schedule: NoiseSchedule,
    x_T: torch.Tensor | Sequence[int],
    *,
    steps: int | Sequence[int] = 20,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Sample with DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2) on the steps τ_S > ... > τ_1 > 0.

    The final step, to t = 0 where σ = 0 and λ = ∞, is first order (x_0 = x̂₀), as in the authors'
    implementation ("lower order final"). S steps cost S model calls.

    Args:
        eps_model: ``(x_t, t) -> ε̂``; its x̂₀ = (x_t − σ_t ε̂) / α_t drives the solver.
        x_T: the starting state x_{τ_S}, or a shape ``(B, ...)`` to draw it from ``generator``.
        steps: an int S or an increasing sequence of steps (see :func:`sampling_steps`).
        return_trajectory: also return the visited states, ``trajectory[i]`` = x_{τ_i}.

    Returns:
        x_0, or ``(x_0, trajectory)`` with the trajectory of shape ``(S + 1, B, ...)``.
    """
    taus = sampling_steps(schedule, steps)
    x = initial_noise(x_T, generator)
    trajectory = [x] if return_trajectory else None

    def coefficients(tau: int) -> tuple[float, float, float]:
        alpha_bar = float(schedule.alpha_bar[tau])
        alpha_t, sigma_t = math.sqrt(alpha_bar), math.sqrt(1.0 - alpha_bar)
        return alpha_t, sigma_t, math.log(alpha_t / sigma_t) if sigma_t > 0 else math.inf

    x0_hat_prev, h_prev = None, None
    for tau, tau_next in zip(taus[::-1], (taus[:-1][::-1] + (0,))):
        alpha_t, sigma_t, lambda_t = coefficients(tau)
        alpha_next, sigma_next, lambda_next = coefficients(tau_next)
        eps_hat = eps_model(x, schedule.timesteps(tau, x.shape[0], x.device))
        x0_hat = (x - sigma_t * eps_hat) / alpha_t
        if tau_next == 0:
            # Final step to σ = 0: first order, x_0 = x̂₀.
            x = x0_hat
        else:
            h = lambda_next - lambda_t
            if x0_hat_prev is None:
                # First step: first order (DPM-Solver++(1) = DDIM).
                D = x0_hat
            else:
                # 2nd-order multistep: extrapolate x̂₀ from the last two steps.
                r = h_prev / h
                D = (1.0 + 1.0 / (2.0 * r)) * x0_hat - 1.0 / (2.0 * r) * x0_hat_prev
            # DPM-Solver++ update (Lu et al. 2022), Eq. 9 with the exponential integrator.
            x = (sigma_next / sigma_t) * x - alpha_next * math.expm1(-h) * D
            x0_hat_prev, h_prev = x0_hat, h
        if trajectory is not None:
            trajectory.append(x)
    if trajectory is None:
        return x
    return x, torch.stack(trajectory[::-1])  # (S + 1, B, ...): index i holds x_{τ_i}
