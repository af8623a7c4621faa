"""DDPM ancestral sampling (Ho et al. 2020, Algorithm 2)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .._validation import check_choice
from ..forward import randn_like
from ..schedules import NoiseSchedule
from ._start import initial_noise

REVERSE_VARIANCES = ("beta", "beta_tilde")


@torch.no_grad()
def ddpm_sample(
    eps_model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    schedule: NoiseSchedule,
    x_T: torch.Tensor | Sequence[int],
    *,
    generator: torch.Generator | None = None,
    variance: str = "beta",
    return_trajectory: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Run the reverse chain x_T → x_0 with the ε-model (Ho et al. 2020, Algorithm 2).

    x_{t−1} = (1/√α_t) (x_t − β_t/√(1 − ᾱ_t) · ε̂(x_t, t)) + σ_t z,  z ~ N(0, I) for t > 1, z = 0 at t = 1.

    Args:
        eps_model: ``(x_t, t) -> ε̂`` (wrap x₀/v/score networks in :class:`~diffusion_lab.EpsModel`).
        x_T: the starting noise, or a shape ``(B, ...)`` to draw it from ``generator``.
        variance: σ_t² = β_t (``"beta"``) or β̃_t (``"beta_tilde"``), the two choices of Ho et al., Sec. 3.2.
        return_trajectory: also return every state, stacked so that ``trajectory[t]`` is x_t.

    Returns:
        x_0 of shape ``(B, ...)``; with ``return_trajectory``, ``(x_0, trajectory)`` where the
        trajectory has shape ``(T + 1, B, ...)``.
    """
    check_choice("reverse variance", variance, REVERSE_VARIANCES)
    x = initial_noise(x_T, generator)
    trajectory = [x] if return_trajectory else None
    for step in range(schedule.T, 0, -1):
        t = schedule.timesteps(step, x.shape[0], x.device)
        eps_hat = eps_model(x, t)
        alpha = schedule.gather("alpha", t, x)
        alpha_bar = schedule.gather("alpha_bar", t, x)
        beta = schedule.gather("beta", t, x)
        # Posterior mean in ε form (Ho et al. 2020, Eq. 11).
        x = (x - beta / (1.0 - alpha_bar).sqrt() * eps_hat) / alpha.sqrt()
        # Add noise (none at the last step).
        if step > 1:
            x = x + schedule.gather(variance, t, x).sqrt() * randn_like(x, generator)
        if trajectory is not None:
            trajectory.append(x)
    if trajectory is None:
        return x
    return x, torch.stack(trajectory[::-1])  # (T + 1, B, ...): index t holds x_t
