"""Deterministic samplers: the probability-flow ODE, integrated once by Euler, Heun or RK45.

Every Gaussian process has a probability-flow ODE whose solutions keep the marginals p_t
(Song et al. 2021, Eq. 13); a denoiser's velocity ṡ x̂₀ + σ̇ ε̂ is its drift. It is integrated in
one of two coordinate systems, chosen by the process:

* **continuous time** (SDEs, flow paths): dx/dt = u(x, t), from t = 1 down to ``t_min``;
* **Karras' form** (discrete schedules, which have no dt): with y = x / s and κ = σ / s (Karras
  et al. 2022's σ, the noise level of y), the ODE is dy/dκ = ε̂ (Song et al. 2021, DDIM, Eq. 14;
  Karras et al. 2022, Eq. 4). Euler on it is exactly DDIM with η = 0.

Heun's method (Karras et al. 2022, Algorithm 1) adds a trapezoidal correction with a second
model call at the end of each step; in Karras' form it skips the correction on the last step,
to κ = 0 (as Algorithm 1 does), and on the first, from κ_T: a VP schedule's κ_T is huge (2·10⁴
for the cosine schedule with T = 1000), the trapezoid's error grows with the step length, and
Euler's slope at κ_T is exact to O(1/κ_T²). Network evaluations: Euler S, Heun 2S (2S − 2 in
Karras' form), RK45 adaptive.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from ..denoiser import DenoiserBase, check_denoiser
from ..validation import check_float, check_int
from .common import Trajectory, batch_time, start_state

Slope = Callable[[torch.Tensor, int], torch.Tensor]


def integrate(slope: Slope, state: torch.Tensor, nodes: torch.Tensor, *, second_order: Callable[[int], bool],
              trajectory: Trajectory) -> torch.Tensor:
    """Euler steps over ``nodes`` (values of the integration variable), with Heun's correction where
    ``second_order(i)``: ``slope(state, i)`` is d state / d variable at node i."""
    for i in range(len(nodes) - 1):
        h = float(nodes[i + 1] - nodes[i])
        d = slope(state, i)
        # Euler step.
        state_next = state + h * d
        # 2nd-order correction.
        if second_order(i):
            state_next = state + 0.5 * h * (d + slope(state_next, i + 1))
        state = state_next
        trajectory.add(state)
    return state


def _solve(denoiser: DenoiserBase, x_T, steps: int, *, heun: bool, t_min: float | None,
           generator: torch.Generator | None, return_trajectory: bool):
    denoiser = check_denoiser(denoiser)
    process = denoiser.process
    steps = check_int("steps", steps, 1)
    x = start_state(process, x_T, generator)
    if not process.discrete:
        times = process.time_grid(steps, t_min=t_min)
        trajectory = Trajectory(x, return_trajectory)
        x = integrate(lambda z, i: denoiser.velocity(z, batch_time(times[i], z)), x, times,
                      second_order=lambda i: heun, trajectory=trajectory)
        return trajectory.result(x)
    if t_min is not None:
        raise ValueError("t_min is for continuous time; a schedule's samplers end at step 0")
    times = process.time_grid(steps)  # τ_S > ... > τ_1 > 0
    scales, sigmas = process.scale_std(times)  # float64 (S + 1,)
    kappas = sigmas / scales  # Karras' σ: 0 at t = 0

    def slope(y: torch.Tensor, i: int) -> torch.Tensor:
        return denoiser.eps(float(scales[i]) * y, batch_time(times[i], y))  # dy/dκ = ε̂

    trajectory = Trajectory(x, return_trajectory)
    y = integrate(slope, x / float(scales[0]), kappas, trajectory=trajectory,
                  second_order=lambda i: heun and 0 < i and kappas[i + 1] > 0)
    if trajectory.states is not None:  # back from y = x / s to x at every node
        trajectory.states = [trajectory.states[0]] + [float(scales[i]) * s for i, s in enumerate(trajectory.states[1:], 1)]
    return trajectory.result(float(scales[-1]) * y)


@torch.no_grad()
def euler_sample(denoiser: DenoiserBase, x_T: torch.Tensor | Sequence[int], *, steps: int = 100,
                 t_min: float | None = None, generator: torch.Generator | None = None,
                 return_trajectory: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Euler's method on the probability-flow ODE, ``steps`` model calls (DDIM with η = 0 on a schedule).

    With a straight flow (Liu et al. 2023) a single step is exact: x_0 = x_1 − u(x_1, 1).
    ``t_min`` is where continuous time stops (default: the process's end, 10⁻³ for SDEs, 0 for paths).
    """
    return _solve(denoiser, x_T, steps, heun=False, t_min=t_min, generator=generator,
                  return_trajectory=return_trajectory)


@torch.no_grad()
def heun_sample(denoiser: DenoiserBase, x_T: torch.Tensor | Sequence[int], *, steps: int = 25,
                t_min: float | None = None, generator: torch.Generator | None = None,
                return_trajectory: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Heun's 2nd-order method (Karras et al. 2022, Algorithm 1) on the probability-flow ODE."""
    return _solve(denoiser, x_T, steps, heun=True, t_min=t_min, generator=generator,
                  return_trajectory=return_trajectory)


def ode_nfe(process, method: str, steps: int) -> int:
    """Network evaluations of :func:`euler_sample` (``"euler"``) or :func:`heun_sample` (``"heun"``) with
    ``steps`` steps on ``process`` (one per Euler step; Heun's correction skipped as the module says)."""
    if method == "euler":
        return steps
    return max(2 * steps - 2, steps) if process.discrete else 2 * steps


@torch.no_grad()
def rk45_sample(denoiser: DenoiserBase, x_T: torch.Tensor | Sequence[int], *, t_min: float | None = None,
                rtol: float = 1e-5, atol: float = 1e-5, generator: torch.Generator | None = None,
                return_trajectory: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """scipy's adaptive RK45 (Dormand–Prince) on dx/dt = u(x, t), the whole batch as one state vector
    (as score_sde's ``ode_sampler``); continuous time only. The trajectory holds the accepted steps."""
    from scipy.integrate import solve_ivp

    denoiser = check_denoiser(denoiser)
    process = denoiser.process
    if process.discrete:
        raise ValueError("rk45_sample needs a continuous-time process (an SDE or a flow path); on a schedule use "
                         "heun_sample")
    rtol, atol = check_float("rtol", rtol, 0.0, low_open=True), check_float("atol", atol, 0.0, low_open=True)
    times = process.time_grid(1, t_min=t_min)
    x = start_state(process, x_T, generator)
    shape, dtype, device = x.shape, x.dtype, x.device

    def velocity(t: float, y: np.ndarray) -> np.ndarray:
        state = torch.from_numpy(y).reshape(shape).to(device=device, dtype=dtype)
        return denoiser.velocity(state, t).double().cpu().numpy().ravel()

    solution = solve_ivp(velocity, (float(times[0]), float(times[-1])), x.double().cpu().numpy().ravel(),
                         method="RK45", rtol=rtol, atol=atol)
    if not solution.success:
        raise RuntimeError(f"RK45 failed: {solution.message}")
    states = torch.from_numpy(solution.y.T.copy()).reshape(-1, *shape).to(device=device, dtype=dtype)
    return (states[-1], states) if return_trajectory else states[-1]

