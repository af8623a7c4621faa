"""Langevin dynamics and annealed Langevin dynamics: sampling with a score alone.

=================  ==========  ===========================================================
code               symbol      meaning
=================  ==========  ===========================================================
``score``          ∇ log p     a model ``x -> score`` (plain) or ``(x, σ) -> score`` (annealed)
``step_size``      ε           Langevin step size (the step of annealing level i is α_i)
``sigmas``         σ_1 > … > σ_L  the noise levels of an NCSN, largest first
=================  ==========  ===========================================================

Langevin dynamics x ← x + (ε/2) ∇ log p(x) + √ε z converges to p as ε → 0 and the number of steps
→ ∞ (Welling & Teh 2011; Song & Ermon 2019, Eq. 4). Annealed Langevin runs it on the noised
densities p_σ for a decreasing sequence of σ (Song & Ermon 2019, Algorithm 1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .forward import randn_like
from .samplers._start import initial_noise


def _check_steps(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _check_positive(name: str, value: float) -> float:
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return float(value)


@torch.no_grad()
def langevin_dynamics(
    score: Callable[[torch.Tensor], torch.Tensor],
    x_init: torch.Tensor | Sequence[int],
    *,
    step_size: float,
    n_steps: int,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Unadjusted Langevin dynamics with a score ``x -> ∇ log p(x)`` (Song & Ermon 2019, Eq. 4).

    Args:
        score: the score of the target density; returns a tensor shaped like x.
        x_init: the starting points ``(B, ...)``, or a shape to start from N(0, I).
        step_size: ε; the stationary law is p up to an O(ε) bias.
        n_steps: number of updates.
        return_trajectory: also return every state, shape ``(n_steps + 1, B, ...)``.
    """
    step_size = _check_positive("step_size", step_size)
    x = initial_noise(x_init, generator)
    trajectory = [x] if return_trajectory else None
    for _ in range(_check_steps("n_steps", n_steps)):
        # Langevin step.
        x = x + 0.5 * step_size * score(x) + step_size**0.5 * randn_like(x, generator)
        if trajectory is not None:
            trajectory.append(x)
    if trajectory is None:
        return x
    return x, torch.stack(trajectory)


def geometric_sigmas(sigma_max: float, sigma_min: float, n_levels: int) -> torch.Tensor:
    """σ_1 = σ_max > ... > σ_L = σ_min with a constant ratio (Song & Ermon 2019, Sec. 4.2): ``(L,)`` float64."""
    if not 0.0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min} and {sigma_max}")
    levels = torch.linspace(0.0, 1.0, _check_steps("n_levels", n_levels), dtype=torch.float64)
    return sigma_max * (sigma_min / sigma_max) ** levels


@torch.no_grad()
def annealed_langevin_dynamics(
    score_model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    sigmas: Sequence[float] | torch.Tensor,
    x_init: torch.Tensor | Sequence[int],
    *,
    step_size: float,
    n_steps_each: int,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1).

    For each level σ_i (largest first) run ``n_steps_each`` Langevin steps on p_{σ_i} with step
    α_i = ε σ_i² / σ_L², so that the signal-to-noise ratio of every step is the same.

    Args:
        score_model: ``(x, σ) -> ∇ log p_σ(x)`` with σ of shape ``(B,)``: an NCSN, or the oracle.
        sigmas: the decreasing noise levels σ_1 > ... > σ_L.
        x_init: starting points, or a shape to start from N(0, σ_1² I).
        step_size: ε, the step at the smallest level.
        return_trajectory: also return the state at the end of each level, shape ``(L + 1, B, ...)``
            (entry 0 is the start).
    """
    sigmas = torch.as_tensor(sigmas, dtype=torch.float64)
    if sigmas.ndim != 1 or sigmas.numel() < 1 or torch.any(sigmas <= 0) or torch.any(sigmas[1:] >= sigmas[:-1]):
        raise ValueError("sigmas must be a 1-D tensor of positive, strictly decreasing noise levels")
    step_size = _check_positive("step_size", step_size)
    _check_steps("n_steps_each", n_steps_each)
    x = initial_noise(x_init, generator)
    if not isinstance(x_init, torch.Tensor):
        x = float(sigmas[0]) * x
    trajectory = [x] if return_trajectory else None
    for sigma in sigmas:
        alpha = step_size * float(sigma / sigmas[-1]) ** 2  # α_i = ε σ_i² / σ_L²
        sigma_batch = sigma.expand(x.shape[0]).to(x.device)  # (B,) float64
        for _ in range(n_steps_each):
            # Langevin step at level σ_i.
            x = x + 0.5 * alpha * score_model(x, sigma_batch) + alpha**0.5 * randn_like(x, generator)
        if trajectory is not None:
            trajectory.append(x)
    if trajectory is None:
        return x
    return x, torch.stack(trajectory)
