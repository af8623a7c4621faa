"""Deterministic samplers: the probability-flow ODE dx/dt = f(x, t) − ½ g(t)² ∇log p_t(x) (Song et al. 2021, Eq. 13).

Integrated backwards from t = 1 to ``eps`` with a fixed-step Euler or Heun method on the times of
:func:`~diffusion_lab.sde.time_grid`, or with scipy's adaptive RK45 (Dormand–Prince). Given x_1 the
result is deterministic; with ``return_trajectory`` the states come in sampling order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from ..sde import SDE, time_grid
from .sde import _start

ScoreModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@torch.no_grad()
def euler_ode_sample(
    score_model: ScoreModel,
    sde: SDE,
    x_T: torch.Tensor | Sequence[int],
    *,
    n_steps: int = 100,
    eps: float = 1e-3,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Euler's method on the probability-flow ODE: x ← x − v(x, t) Δt with v = f − ½ g² s."""
    times = time_grid(n_steps, eps)
    x = _start(sde, x_T, generator)
    trajectory = [x] if return_trajectory else None
    for i in range(n_steps):
        t = times[i].expand(x.shape[0]).to(x.device)
        dt = float(times[i] - times[i + 1])
        # Euler step.
        x = x - sde.ode_drift(x, t, score_model) * dt
        if trajectory is not None:
            trajectory.append(x)
    if trajectory is None:
        return x
    return x, torch.stack(trajectory)


@torch.no_grad()
def heun_ode_sample(
    score_model: ScoreModel,
    sde: SDE,
    x_T: torch.Tensor | Sequence[int],
    *,
    n_steps: int = 50,
    eps: float = 1e-3,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Heun's method (the trapezoidal 2nd-order method of Karras et al. 2022, Algorithm 1): two
    evaluations per step, global error O(Δt²)."""
    times = time_grid(n_steps, eps)
    x = _start(sde, x_T, generator)
    trajectory = [x] if return_trajectory else None
    for i in range(n_steps):
        t = times[i].expand(x.shape[0]).to(x.device)
        t_next = times[i + 1].expand(x.shape[0]).to(x.device)
        dt = float(times[i] - times[i + 1])
        # Euler step.
        v = sde.ode_drift(x, t, score_model)
        x_euler = x - v * dt
        # 2nd-order correction.
        x = x - 0.5 * (v + sde.ode_drift(x_euler, t_next, score_model)) * dt
        if trajectory is not None:
            trajectory.append(x)
    if trajectory is None:
        return x
    return x, torch.stack(trajectory)


@torch.no_grad()
def rk45_ode_sample(
    score_model: ScoreModel,
    sde: SDE,
    x_T: torch.Tensor | Sequence[int],
    *,
    eps: float = 1e-3,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """scipy's adaptive RK45 on the probability-flow ODE, the whole batch as one state vector
    (as score_sde's ``ode_sampler``). The trajectory holds the solver's accepted steps."""
    from scipy.integrate import solve_ivp

    x = _start(sde, x_T, generator)
    shape, dtype, device = x.shape, x.dtype, x.device

    def velocity(t: float, y: np.ndarray) -> np.ndarray:
        state = torch.from_numpy(y).reshape(shape).to(device=device, dtype=dtype)
        t_batch = torch.full((shape[0],), t, dtype=torch.float64, device=device)
        return sde.ode_drift(state, t_batch, score_model).double().cpu().numpy().ravel()

    solution = solve_ivp(velocity, (1.0, eps), x.double().cpu().numpy().ravel(), method="RK45", rtol=rtol, atol=atol)
    if not solution.success:
        raise RuntimeError(f"RK45 failed: {solution.message}")
    states = torch.from_numpy(solution.y.T.copy()).reshape(-1, *shape).to(device=device, dtype=dtype)
    if not return_trajectory:
        return states[-1]
    return states[-1], states
