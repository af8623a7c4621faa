"""Stochastic samplers for the reverse-time SDE (Song et al. 2021): Euler–Maruyama and predictor–corrector.

All take a score model ``(x, t) -> ∇ log p_t(x)`` with continuous times t of shape ``(B,)`` and an
:class:`~diffusion_lab.sde.SDE`, and visit the times of :func:`~diffusion_lab.sde.time_grid`,
1 = t_0 > ... > t_N = eps. Trajectories are in sampling order: ``trajectory[i]`` is x at t_i.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..broadcast import expand_like
from ..forward import randn_like
from ..sde import SDE, time_grid

ScoreModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _start(sde: SDE, x_T: torch.Tensor | Sequence[int], generator: torch.Generator | None) -> torch.Tensor:
    """x_T itself, or a draw from the SDE's prior N(0, σ_T² I) of shape x_T."""
    if isinstance(x_T, torch.Tensor):
        return x_T
    shape = tuple(x_T)
    if not shape or not all(isinstance(s, int) and s > 0 for s in shape):
        raise ValueError(f"x_T must be a tensor or a shape of positive ints such as (B, 2), got {x_T!r}")
    return sde.prior_sample(shape, generator=generator)


@torch.no_grad()
def euler_maruyama_sample(
    score_model: ScoreModel,
    sde: SDE,
    x_T: torch.Tensor | Sequence[int],
    *,
    n_steps: int = 500,
    eps: float = 1e-3,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Euler–Maruyama on the reverse-time SDE dx = [f − g² ∇log p_t] dt + g dw̄ (Song et al. 2021, Eq. 6).

    x ← x − [f(x, t) − g(t)² s(x, t)] Δt + g(t) √Δt z, from t = 1 to ``eps``; the last step adds
    no noise (as DDPM's last step). Returns x_eps ``(B, ...)``, and with ``return_trajectory`` the
    states ``(n_steps + 1, B, ...)``.
    """
    times = time_grid(n_steps, eps)
    x = _start(sde, x_T, generator)
    trajectory = [x] if return_trajectory else None
    for i in range(n_steps):
        t = times[i].expand(x.shape[0]).to(x.device)
        dt = float(times[i] - times[i + 1])
        # Euler step (backwards in time).
        x = x - sde.reverse_drift(x, t, score_model) * dt
        # Add noise (none at the last step).
        if i < n_steps - 1:
            x = x + expand_like(sde.diffusion(t), x) * dt**0.5 * randn_like(x, generator)
        if trajectory is not None:
            trajectory.append(x)
    if trajectory is None:
        return x
    return x, torch.stack(trajectory)


@torch.no_grad()
def pc_sample(
    score_model: ScoreModel,
    sde: SDE,
    x_T: torch.Tensor | Sequence[int],
    *,
    n_steps: int = 500,
    n_corrector: int = 1,
    snr: float = 0.16,
    eps: float = 1e-3,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Predictor–corrector sampling (Song et al. 2021, Algorithms 2 (VE) and 3 (VP)).

    Predictor: one reverse-diffusion step with the SDE's own discretisation x_{i−1} = x_i + f_i + G_i z,
    x' = x − f_i + G_i² s(x, t_i), x ← x' + G_i z (for VP: (2 − √(1 − β_i)) x + β_i s + √β_i z; for VE:
    x + (σ_i² − σ_{i−1}²) s + √(σ_i² − σ_{i−1}²) z). Corrector: ``n_corrector`` Langevin steps at the
    new time, x ← x + ε s + √(2ε) z with ε = 2 α_i (r ‖z‖ / ‖s‖)² (Algorithms 4 and 5), where the
    norms are averaged over the batch as in score_sde. ``n_corrector=0`` is the predictor alone.

    Args:
        snr: r, the signal-to-noise ratio of the corrector step.
    """
    if isinstance(n_corrector, bool) or not isinstance(n_corrector, int) or n_corrector < 0:
        raise ValueError(f"n_corrector must be a non-negative integer, got {n_corrector!r}")
    if not snr > 0:
        raise ValueError(f"snr must be positive, got {snr!r}")
    times = time_grid(n_steps, eps)
    x = _start(sde, x_T, generator)
    trajectory = [x] if return_trajectory else None
    for i in range(n_steps):
        t = times[i].expand(x.shape[0]).to(x.device)
        dt = float(times[i] - times[i + 1])
        # Predictor: reverse diffusion.
        f, G = sde.discretize(x, t, dt)
        G = expand_like(G, x)
        x = x - f + G**2 * score_model(x, t) + G * randn_like(x, generator)
        # Corrector: Langevin steps at t_{i+1}.
        t_next = times[i + 1].expand(x.shape[0]).to(x.device)
        alpha = expand_like(sde.corrector_alpha(t, dt), x)
        for _ in range(n_corrector):
            score = score_model(x, t_next)
            z = randn_like(x, generator)
            ratio = z.flatten(1).norm(dim=1).mean() / score.flatten(1).norm(dim=1).mean()
            step = 2 * alpha * (snr * ratio) ** 2
            x = x + step * score + (2 * step).sqrt() * z
        if trajectory is not None:
            trajectory.append(x)
    if trajectory is None:
        return x
    return x, torch.stack(trajectory)
