"""Stochastic samplers for the reverse-time SDE (Song et al. 2021): Euler–Maruyama and predictor–corrector.

Both take a :class:`~diffusion_lab.Denoiser` whose process is an :class:`~diffusion_lab.SDE` and
visit the times of its ``time_grid``, 1 = t_0 > ... > t_N = ``t_min`` (10⁻³ by default).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..broadcast import expand_like
from ..denoiser import DenoiserBase, check_denoiser
from ..forward import randn_like
from ..sde import SDE
from ..validation import check_float, check_int
from .common import Trajectory, batch_time, start_state
from .langevin import langevin_step


def _sde_denoiser(denoiser: DenoiserBase) -> DenoiserBase:
    denoiser = check_denoiser(denoiser)
    if not isinstance(denoiser.process, SDE):
        raise ValueError(f"this sampler integrates a reverse-time SDE; the denoiser's process is "
                         f"{denoiser.process!r}, not a VPSDE, VESDE or SubVPSDE")
    return denoiser


@torch.no_grad()
def euler_maruyama_sample(denoiser: DenoiserBase, x_T: torch.Tensor | Sequence[int], *, steps: int = 500,
                          t_min: float | None = None, generator: torch.Generator | None = None,
                          return_trajectory: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Euler–Maruyama on the reverse-time SDE dx = [f − g² ∇log p_t] dt + g dw̄ (Song et al. 2021, Eq. 6).

    x ← x − [f(x, t) − g(t)² ŝ(x, t)] Δt + g(t) √Δt z, from t = 1 to ``t_min``; the last step adds
    no noise (as DDPM's last step).
    """
    denoiser = _sde_denoiser(denoiser)
    sde = denoiser.process
    times = sde.time_grid(check_int("steps", steps, 1), t_min=t_min)
    x = start_state(sde, x_T, generator)
    trajectory = Trajectory(x, return_trajectory)
    for i in range(len(times) - 1):
        t = batch_time(times[i], x)
        dt = float(times[i] - times[i + 1])
        # Euler step (backwards in time).
        x = x - sde.reverse_drift(x, t, denoiser.score(x, t)) * dt
        # Add noise (none at the last step).
        if i < len(times) - 2:
            x = x + expand_like(sde.diffusion(t), x) * dt**0.5 * randn_like(x, generator)
        trajectory.add(x)
    return trajectory.result(x)


def reverse_diffusion_step(denoiser: DenoiserBase, x: torch.Tensor, t: torch.Tensor, dt: float,
                           generator: torch.Generator | None = None) -> torch.Tensor:
    """The predictor of Song et al. (2021, Eq. 47): with the forward step x_i = x_{i−1} + f_i + G_i z of
    the SDE's own discretisation, x ← x − f_i + G_i² ŝ + G_i z (for VP, DDPM's step; for VE, NCSN's)."""
    f, G = denoiser.process.discretize(x, t, dt)
    G = expand_like(G, x)
    return x - f + G**2 * denoiser.score(x, t) + G * randn_like(x, generator)


@torch.no_grad()
def pc_sample(denoiser: DenoiserBase, x_T: torch.Tensor | Sequence[int], *, steps: int = 500,
              corrector_steps: int = 1, snr: float = 0.16, t_min: float | None = None,
              generator: torch.Generator | None = None, return_trajectory: bool = False
              ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Predictor–corrector sampling (Song et al. 2021, Algorithms 2 (VE) and 3 (VP)).

    Predictor: :func:`reverse_diffusion_step`. Corrector: ``corrector_steps`` Langevin steps
    (:func:`~diffusion_lab.samplers.langevin.langevin_step`, chapter 5's x + (ε/2) ŝ + √ε z) at the new
    time with ε = 2 · 2 α_i (r ‖z‖ / ‖ŝ‖)², where Song et al.'s α_i is 1 (VE) or 1 − β_i (VP) and the
    norms are averaged over the batch as in score_sde. Song et al. write the same step as
    x + ε' ŝ + √(2ε') z with ε' = 2 α_i (r ‖z‖ / ‖ŝ‖)² = ε / 2. ``corrector_steps=0`` is the predictor alone.

    Args:
        snr: r, the signal-to-noise ratio of the corrector step.
    """
    denoiser = _sde_denoiser(denoiser)
    corrector_steps = check_int("corrector_steps", corrector_steps, 0)
    snr = check_float("snr", snr, 0.0, low_open=True)
    sde = denoiser.process
    times = sde.time_grid(check_int("steps", steps, 1), t_min=t_min)
    x = start_state(sde, x_T, generator)
    trajectory = Trajectory(x, return_trajectory)
    for i in range(len(times) - 1):
        t, t_next = batch_time(times[i], x), batch_time(times[i + 1], x)
        dt = float(times[i] - times[i + 1])
        # Predictor: reverse diffusion.
        x = reverse_diffusion_step(denoiser, x, t, dt, generator)
        # Corrector: Langevin steps at t_{i+1}.
        alpha = expand_like(sde.corrector_alpha(t, dt), x)
        for _ in range(corrector_steps):
            score = denoiser.score(x, t_next)
            z = randn_like(x, generator)
            ratio = z.flatten(1).norm(dim=1).mean() / score.flatten(1).norm(dim=1).mean()
            x = langevin_step(x, score, 4 * alpha * (snr * ratio) ** 2, noise=z)
        trajectory.add(x)
    return trajectory.result(x)
