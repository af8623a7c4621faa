"""Conditional generation with an unconditional model: replacement, RePaint, ILVR and SDEdit.

We observe a linear projection P x_0 = P y of the data (P an orthogonal projection: m ⊙ · for
inpainting, the low-pass filter φ_N for super-resolution; :mod:`diffusion_lab.observations`) and
want x_0 drawn from p(x_0 | P x_0 = P y), with nothing but an *unconditional* denoiser.

**Replacement** (Sohl-Dickstein et al. 2015, Sec. 3.5; Song et al. 2021, App. I.2): after each
reverse step x_t → x'_{t'} (DDPM's, :func:`~diffusion_lab.samplers.discrete.ddpm_step`), overwrite the
observed part with a draw of the forward process,

    x_{t'} = (I − P) x'_{t'} + P y_{t'},   y_{t'} = s_{t'} y + σ_{t'} ε   (Lugmayr et al. 2022, Eqs. 8–9).

It ignores how the unknown part *should* depend on the known part at earlier steps, so the two
halves often disagree. **RePaint's resampling** (Lugmayr et al. 2022, Algorithm 1 and Sec. 4.2):
after stepping down, go back up j steps with the forward process q(x_{t+j} | x_t) and denoise them
again, U − 1 times; each pass lets the model harmonise the unknown part with the known one.
**ILVR** (Choi et al. 2021, Eq. 8) is replacement with P = φ_N. **SDEdit** (Meng et al. 2022,
Algorithm 1): noise a guide to t₀ and run the reverse process from there. **CCDF** (Chung et al.
2022) does the same for replacement and ILVR (``t_start=t₀``): starting from a forward-noised
estimate at t₀ < T needs fewer steps, because the reverse steps contract the start's error.

=====================  ========  ===============================================
code                   symbol    meaning
=====================  ========  ===============================================
``mask``               m         True (1) where an entry is observed
``known``              y         data holding the observed entries (others ignored)
``project``            P         orthogonal projection onto what is observed
``resamplings``        U         passes over each stretch of steps (1: replacement)
``jump_length``        j         how many steps each pass goes back up
=====================  ========  ===============================================
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..broadcast import expand_like
from ..denoiser import DenoiserBase, check_denoiser
from ..forward import q_sample, randn_like, transition
from ..observations import as_mask, low_pass, nearest_upsample
from ..validation import check_float, check_int, check_same_shape, check_tensor
from ..variances import check_variance
from .common import Trajectory, batch_time, sampling_grid, start_state
from .discrete import ddpm_sample, ddpm_step

Projection = Callable[[torch.Tensor], torch.Tensor]


def repaint_schedule(steps: int, resamplings: int = 1, jump_length: int = 1) -> list[int]:
    """The grid indices RePaint visits, from ``steps`` down to 0 (Lugmayr et al. 2022, Sec. 4.2 and their code).

    Index i stands for the i-th time from the end of the sampler's grid (0: the data end). Going
    down one index at a time, at every jump point s ∈ {S − j, S − 2j, ...} with s ≥ 1 the sampler goes
    back up j indices and comes down again, U − 1 times. A move down costs one model call; a move
    up costs none (it is the forward process).

    Returns:
        The visited indices ``[S, ..., 0]``; consecutive entries differ by −1 (a reverse step) or +j.
        Its number of down moves, S + (U − 1) j ⌊(S − 1)/j⌋, is the number of model calls.
    """
    steps = check_int("steps", steps, 1)
    resamplings = check_int("resamplings", resamplings, 1)
    jump_length = check_int("jump_length", jump_length, 1)
    left = {s: resamplings - 1 for s in range(steps - jump_length, 0, -jump_length)}
    visited, s = [steps], steps
    while s > 0:
        # Reverse step.
        s -= 1
        visited.append(s)
        # Jump back up.
        if left.get(s, 0) > 0:
            left[s] -= 1
            s += jump_length
            visited.append(s)
    return visited


@torch.no_grad()
def replacement_sample(denoiser: DenoiserBase, reference: torch.Tensor, project: Projection, *,
                       steps: int | Sequence[int] | None = None, resamplings: int = 1, jump_length: int = 1,
                       variance: str | float = "beta_tilde", x_T: torch.Tensor | None = None,
                       t_start: int | float | None = None, generator: torch.Generator | None = None,
                       return_trajectory: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Sample x_0 with P x_0 = P y by replacement with RePaint's resampling (see the module docstring).

    Args:
        reference: y, shape ``(B, ...)``; only P y is used.
        project: x ↦ P x, a linear orthogonal projection (P² = P = Pᵀ) acting on ``(B, ...)``.
        steps: the reverse steps (as for :func:`~diffusion_lab.ddpm_sample`; None: every step).
        resamplings, jump_length: U and j of :func:`repaint_schedule` (U = 1: plain replacement).
        variance: ω² = β̃ (``"beta_tilde"``, the default: it behaves well on few steps), β, ν or ``"learned"``
            (as :func:`~diffusion_lab.ddpm_sample`).
        x_T: the starting state at the top of the grid (drawn from ``generator`` when None).
        t_start: start at t₀ below the top (Chung et al. 2022, "come closer, diffuse faster"): the
            grid runs from t₀ down, and when ``x_T`` is None the start is the forward-noised
            observation, x_{t₀} = s_{t₀} P y + σ_{t₀} ε. Pass a better estimate x̂ as
            ``x_T = q_sample(process, x̂, t₀)``.
        return_trajectory: also return every visited state, in the order of :func:`repaint_schedule`.
    """
    denoiser = check_denoiser(denoiser)
    check_tensor("reference", reference, floating=True, ndim_min=2, finite=True)
    variance = check_variance(variance)
    grid = sampling_grid(denoiser, steps, t_start).flip(0)  # grid[i]: the time of index i, grid[0] = the data end
    observed = project(reference)  # P y
    if x_T is not None:
        x = start_state(denoiser.process, x_T, generator)
    elif t_start is None:
        x = denoiser.process.prior_std * randn_like(reference, generator)
    else:
        # CCDF's start (Chung et al. 2022): the observation, forward-noised to t₀.
        x = q_sample(denoiser.process, observed, grid[-1].item(), noise=randn_like(reference, generator))
    check_same_shape("x_T", x, "reference", reference)
    visited = repaint_schedule(len(grid) - 1, resamplings, jump_length)
    trajectory = Trajectory(x, return_trajectory)
    for i, j in zip(visited[:-1], visited[1:]):
        t, t_next = batch_time(grid[i], x), batch_time(grid[j], x)
        if j > i:
            # Forward jump: x_{t'} ~ q(x_{t'} | x_t).
            ratio, var = transition(denoiser.process, t_next, t)
            x = expand_like(ratio, x) * x + expand_like(var.sqrt(), x) * randn_like(x, generator)
        else:
            # Reverse step, then replace the observed part with a forward draw (y itself at the end).
            x = ddpm_step(denoiser, x, t, t_next, variance=variance, noise=j > 0, generator=generator)
            y_next = observed if j == 0 else q_sample(denoiser.process, observed, t_next,
                                                      noise=project(randn_like(x, generator)))
            x = x - project(x) + y_next
        trajectory.add(x)
    return trajectory.result(x)


def inpaint_sample(denoiser: DenoiserBase, known: torch.Tensor, mask: torch.Tensor, **options
                   ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Fill in the unobserved entries of ``known`` with an unconditional denoiser.

    ``resamplings=1`` is the replacement method; ``resamplings=U > 1`` with ``jump_length=j`` is
    RePaint (Lugmayr et al. 2022, Algorithm 1 for j = 1, Sec. 4.2 for j > 1), costing about U times
    as many model calls. The observed entries of the result equal ``known`` exactly.

    Args:
        known: ``(B, ...)`` data whose entries where ``mask`` is True are observed (others ignored).
        mask: bool or 0/1 tensor broadcastable to ``known``; True marks observed entries.
        options: ``steps``, ``resamplings``, ``jump_length``, ``variance``, ``x_T``, ``t_start``,
            ``generator``, ``return_trajectory``, as in :func:`replacement_sample`.
    """
    check_tensor("known", known, floating=True, ndim_min=2)
    m = as_mask(mask, known).to(known.dtype)
    return replacement_sample(denoiser, known, lambda x: m * x, **options)


def ilvr_sample(denoiser: DenoiserBase, low: torch.Tensor, factor: int, **options
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """ILVR super-resolution (Choi et al. 2021, Algorithm 1) of ``low`` ``(B, C, h, w)`` by ``factor``.

    Every sample is *consistent*: ``box_downsample(result, factor) == low`` up to float rounding.
    ``options`` as in :func:`replacement_sample` (U = 1: plain ILVR).
    """
    reference = nearest_upsample(low, factor)  # y = D⁺ ℓ, so that φ_N(y) = y
    return replacement_sample(denoiser, reference, lambda x: low_pass(x, factor), **options)


def sdedit_sample(denoiser: DenoiserBase, guide: torch.Tensor, t0: int | float, *,
                  steps: int | Sequence[int] | None = None, variance: str | float = "beta_tilde",
                  generator: torch.Generator | None = None, return_trajectory: bool = False
                  ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """SDEdit (Meng et al. 2022, Algorithm 1): x_{t₀} ~ q(x_{t₀} | guide), then DDPM from t₀ to 0.

    t₀ sets the trade-off: small t₀ keeps the output close to the guide (faithful) but keeps its
    flaws; large t₀ gives realistic samples that forget it; t₀ = T is unconditional sampling.

    Args:
        guide: the image to edit, ``(B, ...)``.
        t0: the starting time (a step of the schedule, or a time in (0, 1]).
        steps: reverse steps between t₀ and 0 (None on a schedule: all t₀ of them).
    """
    denoiser = check_denoiser(denoiser)
    check_tensor("guide", guide, floating=True, ndim_min=2, finite=True)
    process = denoiser.process
    if process.discrete:  # t₀ = 0 would be no edit at all
        t0 = check_int("t0", t0, 1, process.T)
    else:
        t0 = check_float("t0", t0, process.t_end, process.t_high, low_open=True)
    # Perturb the guide, then the reverse process from t₀.
    x_t0 = q_sample(denoiser.process, guide, t0, generator=generator)
    return ddpm_sample(denoiser, x_t0, steps=steps, t_start=t0, variance=variance, generator=generator,
                       return_trajectory=return_trajectory)
