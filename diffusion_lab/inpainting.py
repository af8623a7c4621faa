"""Inpainting with an unconditional model: replacement, then RePaint's resampling.

We observe part of an image, y = m ⊙ x_0 (the mask m is 1 where a pixel is known), and want the
missing pixels drawn from p(x_0 | m ⊙ x_0 = y), with nothing but an *unconditional* ε-model.
More generally we observe a linear projection P x_0 = P y (P an orthogonal projection: m ⊙ · for
inpainting, a low-pass filter for super-resolution in :mod:`~diffusion_lab.super_resolution`).

**Replacement** (Sohl-Dickstein et al. 2015, Sec. 3.5; Song et al. 2021, App. I.2): after each
reverse step x_t → x'_{t−1}, overwrite the observed part with a draw of the forward process,

    x_{t−1} = (I − P) x'_{t−1} + P y_{t−1},   y_{t−1} = √ᾱ_{t−1} y + √(1 − ᾱ_{t−1}) ε
    (Lugmayr et al. 2022, Eqs. 8–9).

It ignores how the unknown part *should* depend on the known part at earlier steps (the known
part was never seen by the model until it was replaced), so the two halves often disagree.

**RePaint's resampling** (Lugmayr et al. 2022, Algorithm 1 and Sec. 4.2): after stepping down to
x_{t−1}, go back up with the forward process, x_{t−1+j} ~ q(x_{t−1+j} | x_{t−1}) =
N(√(ᾱ_{t−1+j}/ᾱ_{t−1}) x_{t−1}, (1 − ᾱ_{t−1+j}/ᾱ_{t−1}) I), and denoise those j steps again;
repeat U − 1 times. Each pass lets the model "harmonise" the unknown part with the replaced known
part. :func:`repaint_schedule` lists the steps visited. U = 1 is plain replacement.

=====================  ========  ===============================================
code                   symbol    meaning
=====================  ========  ===============================================
``mask``               m         True (1) where a pixel is observed
``known``              y         data holding the observed pixels (others ignored)
``project``            P         orthogonal projection onto what is observed
``resamplings``        U         passes over each stretch of steps (1: replacement)
``jump_length``        j         how many steps each pass goes back up
=====================  ========  ===============================================

Every function works on points ``(B, D)`` and images ``(B, C, H, W)`` alike.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ._validation import check_choice, check_same_shape
from .broadcast import expand_like
from .forward import q_posterior, randn_like
from .parameterization import x0_from_eps
from .samplers._mask import as_mask, check_known
from .samplers.ddpm import REVERSE_VARIANCES
from .schedules import NoiseSchedule

EpsModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Projection = Callable[[torch.Tensor], torch.Tensor]


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value


def repaint_schedule(T: int, resamplings: int = 1, jump_length: int = 1) -> list[int]:
    """The steps RePaint visits, from T down to 0 (Lugmayr et al. 2022, Sec. 4.2 and their code).

    Going down one step at a time, at every jump point s ∈ {T − j, T − 2j, ...} with s ≥ 1 the sampler
    goes back up j steps and comes down again, U − 1 times. A move down costs one model call; a
    move up costs none (it is the forward process).

    Args:
        T: number of steps of the schedule the sampler runs on.
        resamplings: U ≥ 1, the passes over each stretch (1: no resampling, plain replacement).
        jump_length: j ≥ 1, the number of steps each pass goes back up.

    Returns:
        The visited steps ``[T, ..., 0]``; consecutive entries differ by −1 (a reverse step) or +j.
        Its number of down moves, T + (U − 1) j ⌊(T − 1)/j⌋, is the number of model calls.
    """
    T = _check_positive_int("T", T)
    resamplings = _check_positive_int("resamplings", resamplings)
    jump_length = _check_positive_int("jump_length", jump_length)
    left = {s: resamplings - 1 for s in range(T - jump_length, 0, -jump_length)}
    steps, s = [T], T
    while s > 0:
        # Reverse step.
        s -= 1
        steps.append(s)
        # Jump back up.
        if left.get(s, 0) > 0:
            left[s] -= 1
            s += jump_length
            steps.append(s)
    return steps


@torch.no_grad()
def replacement_sample(
    eps_model: EpsModelFn,
    schedule: NoiseSchedule,
    reference: torch.Tensor,
    project: Projection,
    *,
    resamplings: int = 1,
    jump_length: int = 1,
    variance: str = "beta_tilde",
    x_T: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Sample x_0 with P x_0 = P y by replacement with RePaint's resampling (see the module docstring).

    Each reverse step is DDPM's, x'_{t−1} ~ N(μ̃_t(x_t, x̂₀), σ_t² I) (Ho et al. 2020, Eqs. 6–7 with
    x̂₀ from ε̂); then x_{t−1} = x'_{t−1} − P x'_{t−1} + P y_{t−1} (Lugmayr et al. 2022, Eq. 9).

    Args:
        eps_model: ``(x_t, t) -> ε̂`` on the steps of ``schedule`` (e.g. respaced and clipped).
        reference: y, shape ``(B, ...)``; only P y is used.
        project: x ↦ P x, a linear orthogonal projection (P² = P = Pᵀ) acting on ``(B, ...)``.
        resamplings, jump_length: U and j of :func:`repaint_schedule` (U = 1: plain replacement).
        variance: σ_t² = β̃_t (``"beta_tilde"``, the default: it behaves well on respaced steps) or β_t.
        x_T: the starting noise (drawn from ``generator`` when None).
        return_trajectory: also return every visited state, in the order of :func:`repaint_schedule`.

    Returns:
        x_0 shaped like ``reference``; with ``return_trajectory``, ``(x_0, trajectory)`` of shape
        ``(len(repaint_schedule(...)), B, ...)``.
    """
    reference = check_known(reference)
    check_choice("reverse variance", variance, REVERSE_VARIANCES)
    steps = repaint_schedule(schedule.T, resamplings, jump_length)
    x = randn_like(reference, generator) if x_T is None else x_T
    check_same_shape("x_T", x, "reference", reference)
    observed = project(reference)  # P y
    trajectory = [x] if return_trajectory else None
    for s, s_next in zip(steps[:-1], steps[1:]):
        if s_next > s:
            # Forward jump: x_{s+j} ~ q(x_{s+j} | x_s).
            ratio = float(schedule.alpha_bar[s_next] / schedule.alpha_bar[s])
            x = ratio**0.5 * x + (1.0 - ratio) ** 0.5 * randn_like(x, generator)
        else:
            t = schedule.timesteps(s, x.shape[0], x.device)
            # Reverse step: DDPM's posterior at the model's x̂₀.
            x0_hat = x0_from_eps(x, eps_model(x, t), schedule.gather("alpha_bar", t, x))
            mean, beta_tilde = q_posterior(schedule, x, x0_hat, t)
            x = mean
            if s_next > 0:
                sigma2 = beta_tilde if variance == "beta_tilde" else schedule.gather("beta", t, x)
                x = x + sigma2.sqrt() * randn_like(x, generator)
            # Replace the observed part with a forward draw y_{s−1} (y itself at 0).
            if s_next > 0:
                a = float(schedule.alpha_bar[s_next])
                y_next = a**0.5 * observed + (1.0 - a) ** 0.5 * project(randn_like(x, generator))
            else:
                y_next = observed
            x = x - project(x) + y_next
        if trajectory is not None:
            trajectory.append(x)
    if trajectory is None:
        return x
    return x, torch.stack(trajectory)


def inpaint_sample(
    eps_model: EpsModelFn,
    schedule: NoiseSchedule,
    known: torch.Tensor,
    mask: torch.Tensor,
    *,
    resamplings: int = 1,
    jump_length: int = 1,
    variance: str = "beta_tilde",
    x_T: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Fill in the unobserved entries of ``known`` with an unconditional ε-model.

    ``resamplings=1`` is the replacement method; ``resamplings=U > 1`` with ``jump_length=j`` is
    RePaint (Lugmayr et al. 2022, Algorithm 1 for j = 1, Sec. 4.2 for j > 1), costing about U times
    as many model calls. The observed entries of the result equal ``known`` exactly.

    Args:
        known: ``(B, ...)`` data whose entries where ``mask`` is True are observed (others ignored).
        mask: bool or 0/1 tensor broadcastable to ``known``; True marks observed entries.
        Others: as in :func:`replacement_sample`.
    """
    known = check_known(known)
    m = as_mask(mask, known).to(known.dtype)
    return replacement_sample(
        eps_model, schedule, known, lambda x: m * x, resamplings=resamplings, jump_length=jump_length,
        variance=variance, x_T=x_T, generator=generator, return_trajectory=return_trajectory,
    )


def harmonic_fill(known: torch.Tensor, mask: torch.Tensor, *, iterations: int = 200) -> torch.Tensor:
    """A classical baseline: fill each missing pixel with the mean of its 4 neighbours, repeatedly.

    The fixed point solves Laplace's equation on the missing region with the known pixels as
    boundary values: the smoothest fill, which cannot invent strokes. Missing pixels start at the
    mean of the known ones (per image); at the border the image is extended by replication.

    Args:
        known: images ``(B, C, H, W)``; mask: broadcastable to them, True where observed.
        iterations: Jacobi sweeps (the error falls geometrically; 200 is plenty at 8×8 or 28×28).
    """
    known = check_known(known)
    if known.ndim != 4:
        raise ValueError(f"harmonic_fill needs images (B, C, H, W), got shape {tuple(known.shape)}")
    m = as_mask(mask, known)
    fill = (known * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp(min=1)  # (B,)
    x = torch.where(m, known, expand_like(fill, known))
    for _ in range(iterations):
        padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate")  # (B, C, H + 2, W + 2)
        up, down = padded[..., :-2, 1:-1], padded[..., 2:, 1:-1]
        left, right = padded[..., 1:-1, :-2], padded[..., 1:-1, 2:]
        neighbours = (up + down + left + right) / 4
        x = torch.where(m, known, neighbours)
    return x


def masked_mse(x: torch.Tensor, target: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the entries where ``region`` is True, per example: shape ``(B,)``.

    With ``region = ~mask`` this is the error on the inpainted (unobserved) part only.
    """
    check_same_shape("x", x, "target", target)
    r = as_mask(region, x).to(x.dtype)
    count = r.flatten(1).sum(1)
    if torch.any(count == 0):
        raise ValueError("the region is empty for some example; nothing to measure")
    return ((x - target) ** 2 * r).flatten(1).sum(1) / count
