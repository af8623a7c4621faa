"""Samplers for flow models: integrate dx/dt = v(x, t) from noise at t = 1 to data at t = 0.

A velocity model maps ``(x, t) -> v`` with float times t ∈ [0, 1] of shape ``(B,)`` (the package's
convention: t = 0 is data). One Euler step is one network evaluation (NFE), a Heun step two, so
that flow models and diffusion samplers can be compared at equal NFE.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..sde import time_grid
from ._start import initial_noise

VelocityModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@torch.no_grad()
def flow_euler_sample(
    velocity_model: VelocityModel,
    x_1: torch.Tensor | Sequence[int],
    *,
    steps: int = 32,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Euler's method on uniform times 1 = t_0 > ... > t_N = 0: x ← x − v(x, t) Δt; N network calls.

    With a straight flow (Liu et al. 2023) a single step is exact: x_0 = x_1 − v(x_1, 1).

    Returns:
        x_0; with ``return_trajectory``, also the ``(N + 1, B, ...)`` states from t = 1 to t = 0.
    """
    times = time_grid(steps, 0.0)
    x = initial_noise(x_1, generator)
    trajectory = [x] if return_trajectory else None
    for i in range(steps):
        t = times[i].expand(x.shape[0]).to(x.device)
        dt = float(times[i] - times[i + 1])
        # Euler step.
        x = x - velocity_model(x, t).to(x.dtype) * dt
        if trajectory is not None:
            trajectory.append(x)
    return x if trajectory is None else (x, torch.stack(trajectory))


@torch.no_grad()
def flow_heun_sample(
    velocity_model: VelocityModel,
    x_1: torch.Tensor | Sequence[int],
    *,
    steps: int = 16,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Heun's 2nd-order method (Karras et al. 2022, Algorithm 1) on uniform times; 2N network calls."""
    times = time_grid(steps, 0.0)
    x = initial_noise(x_1, generator)
    trajectory = [x] if return_trajectory else None
    for i in range(steps):
        t = times[i].expand(x.shape[0]).to(x.device)
        t_next = times[i + 1].expand(x.shape[0]).to(x.device)
        dt = float(times[i] - times[i + 1])
        # Euler step.
        v = velocity_model(x, t).to(x.dtype)
        x_euler = x - v * dt
        # 2nd-order correction.
        x = x - 0.5 * (v + velocity_model(x_euler, t_next).to(x.dtype)) * dt
        if trajectory is not None:
            trajectory.append(x)
    return x if trajectory is None else (x, torch.stack(trajectory))
