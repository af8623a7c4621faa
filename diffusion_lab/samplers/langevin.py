"""Langevin dynamics and annealed Langevin dynamics: sampling with a score alone.

=================  ==========  ===========================================================
code               symbol      meaning
=================  ==========  ===========================================================
``score``          ∇ log p     the score of the target density
``step_size``      ε           Langevin step size (the step at annealing level i is ε_i)
``times``          σ_1 > … > σ_L  the noise levels visited (an NCSN's; the times of the process)
=================  ==========  ===========================================================

One Langevin step is x ← x + (ε/2) ∇ log p(x) + √ε z (Welling & Teh 2011; Song & Ermon 2019, Eq. 4),
and it is written once, here: the corrector of the predictor–corrector sampler uses it too. Its
chain converges to p as ε → 0 and the number of steps → ∞. Annealed Langevin runs it on the noised
densities p_σ for a decreasing sequence of σ (Song & Ermon 2019, Algorithm 1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..denoiser import DenoiserBase, check_denoiser
from ..forward import randn_like
from ..validation import check_float, check_int
from .common import Trajectory, batch_time, start_state


def langevin_step(x: torch.Tensor, score: torch.Tensor, step_size: float | torch.Tensor,
                  generator: torch.Generator | None = None, *, noise: torch.Tensor | None = None) -> torch.Tensor:
    """x + (ε/2) score + √ε z, z ~ N(0, I) (or ``noise``); ``step_size`` ε is a float or ``(B, 1, ..., 1)``."""
    z = randn_like(x, generator) if noise is None else noise
    # Langevin step.
    return x + 0.5 * step_size * score + step_size**0.5 * z


@torch.no_grad()
def langevin_dynamics(score: Callable[[torch.Tensor], torch.Tensor], x_T: torch.Tensor | Sequence[int], *,
                      step_size: float, steps: int, generator: torch.Generator | None = None,
                      return_trajectory: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Unadjusted Langevin dynamics on a density given by its score ``x -> ∇ log p(x)`` (Song & Ermon 2019, Eq. 4).

    Args:
        score: the score of the target density, e.g. ``mixture.score``; returns a tensor shaped like x.
        x_T: the starting points ``(B, ...)``, or a shape to start from N(0, I).
        step_size: ε; the stationary law is p up to an O(ε) bias.
        steps: number of updates.
    """
    if not callable(score):
        raise TypeError(f"score must be a function x -> score, got {type(score).__name__}")
    step_size = check_float("step_size", step_size, 0.0, low_open=True)
    steps = check_int("steps", steps, 1)
    x = start_state(_UNIT, x_T, generator)
    trajectory = Trajectory(x, return_trajectory)
    for _ in range(steps):
        x = langevin_step(x, score(x), step_size, generator)
        trajectory.add(x)
    return trajectory.result(x)


class _Unit:
    prior_std = 1.0


_UNIT = _Unit()


@torch.no_grad()
def annealed_langevin_dynamics(denoiser: DenoiserBase, x_T: torch.Tensor | Sequence[int], *,
                               times: Sequence[float] | torch.Tensor, step_size: float, steps_each: int,
                               generator: torch.Generator | None = None, return_trajectory: bool = False
                               ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1) with a denoiser's score.

    For each time t_i of ``times`` (decreasing noise; for :class:`~diffusion_lab.NoiseLevels` the
    times are the levels σ_i themselves) run ``steps_each`` Langevin steps on p_{t_i} with step
    ε_i = ε σ_i² / σ_L², so that every step has the same signal-to-noise ratio.

    Args:
        x_T: starting points, or a shape to start from the process's prior N(0, σ_max² I).
        step_size: ε, the step at the smallest level.
        return_trajectory: the state at the end of each level, ``(L + 1, B, ...)`` (entry 0: the start).
    """
    denoiser = check_denoiser(denoiser)
    times = torch.as_tensor(times, dtype=torch.float64)
    if times.ndim != 1 or times.numel() < 1 or bool((times[1:] >= times[:-1]).any()):
        raise ValueError("times must be a 1-D sequence of strictly decreasing noise levels (largest first)")
    step_size = check_float("step_size", step_size, 0.0, low_open=True)
    steps_each = check_int("steps_each", steps_each, 1)
    sigmas = denoiser.process.scale_std(times)[1]
    if bool((sigmas <= 0).any()):
        raise ValueError("annealed Langevin needs noise std > 0 at every level")
    x = start_state(denoiser.process, x_T, generator)
    trajectory = Trajectory(x, return_trajectory)
    for t, sigma in zip(times, sigmas):
        step = step_size * float(sigma / sigmas[-1]) ** 2  # ε_i = ε σ_i² / σ_L²
        t_batch = batch_time(t, x)
        for _ in range(steps_each):
            # Langevin step at level σ_i.
            x = langevin_step(x, denoiser.score(x, t_batch), step, generator)
        trajectory.add(x)
    return trajectory.result(x)

