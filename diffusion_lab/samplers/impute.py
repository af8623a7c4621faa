"""Controllable generation: imputation with an unconditional score (Song et al. 2021, App. I.2)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..broadcast import expand_like
from ..forward import randn_like
from ..sde import SDE, time_grid
from ._mask import as_mask, check_known

ScoreModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@torch.no_grad()
def impute_sample(
    score_model: ScoreModel,
    sde: SDE,
    known: torch.Tensor,
    mask: torch.Tensor,
    *,
    n_steps: int = 500,
    eps: float = 1e-3,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Sample the unknown coordinates given the known ones by replacement.

    Each step is a reverse-diffusion predictor step on all coordinates (as in
    :func:`~diffusion_lab.samplers.sde.pc_sample`), after which the known coordinates are replaced by
    a fresh draw of the forward process at the new time, s(t) y + σ(t) z. This approximates sampling
    from p(x_unknown | x_known = y); the approximation ignores how the unknown part should have
    steered the noisy known part, so it is biased
    even for a single correlated Gaussian (see the tests) and can pick the wrong modes of a mixture.

    Args:
        known: ``(B, ...)`` data whose entries where ``mask`` is True are observed (others ignored).
        mask: bool tensor broadcastable to ``known``; True marks observed entries.

    :func:`~diffusion_lab.inpainting.inpaint_sample` is the same replacement idea on a discrete
    schedule (for image models), with RePaint's resampling on top.
    """
    known = check_known(known)
    mask = as_mask(mask, known)
    times = time_grid(n_steps, eps)
    x = sde.prior_sample(known.shape, generator=generator).to(known.dtype)
    x = torch.where(mask, sde.marginal_sample(known, times[0], generator=generator), x)
    trajectory = [x] if return_trajectory else None
    for i in range(n_steps):
        t = times[i].expand(x.shape[0]).to(x.device)
        dt = float(times[i] - times[i + 1])
        # Predictor: reverse diffusion.
        f, G = sde.discretize(x, t, dt)
        G = expand_like(G, x)
        x = x - f + G**2 * score_model(x, t) + G * randn_like(x, generator)
        # Replace the known part with its forward sample at t_{i+1}.
        if i < n_steps - 1:
            x = torch.where(mask, sde.marginal_sample(known, times[i + 1], generator=generator), x)
        else:
            x = torch.where(mask, known, x)
        if trajectory is not None:
            trajectory.append(x)
    if trajectory is None:
        return x
    return x, torch.stack(trajectory)
