"""Which steps a fast sampler visits, and the respaced schedule that visiting them implies.

A sampler given ``steps=S`` on a T-step schedule visits an increasing subsequence τ_1 < ... < τ_S
of 1..T (evenly spaced, or quadratic: denser at low noise; Song et al. 2021, Sec. 4.2 and App. D.2)
and then 0. Keeping only those steps is again a Markov chain with the same marginals ᾱ_{τ_i}, whose
per-step noise is β'_i = 1 − ᾱ_{τ_i} / ᾱ_{τ_{i−1}} (Nichol & Dhariwal 2021, Sec. 4): :func:`respace`
builds that schedule, to show what the samplers do implicitly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from .validation import check_choice, check_int

if TYPE_CHECKING:  # schedules.py imports this module
    from .schedules import NoiseSchedule

SPACINGS = ("uniform", "quadratic")


def sampling_steps(schedule: NoiseSchedule, steps: int | Sequence[int], spacing: str = "uniform", *,
                   start: int | None = None) -> tuple[int, ...]:
    """The increasing steps τ_1 < ... < τ_S in 1..start that a sampler visits (Song et al. 2021, Sec. 4.2).

    Args:
        steps: an int S in 1..start, giving S steps ending at τ_S = start (default T), or an explicit
            increasing sequence of integer steps in 1..start (returned as it is).
        spacing: for an int S, ``"uniform"``: τ_i = round(i·start / S), evenly spaced; ``"quadratic"``:
            τ_i ≈ start·(i / S)², denser at low noise (Song et al. 2021, App. D.2), made strictly
            increasing by taking at least one step between neighbours.

    Returns:
        The tuple ``(τ_1, ..., τ_S)``; a sampler runs x_{τ_S} → x_{τ_{S−1}} → ... → x_{τ_1} → x_0.
    """
    top = schedule.T if start is None else check_int("start", start, 1, schedule.T)
    if isinstance(steps, (int, np.integer)) and not isinstance(steps, bool):
        steps = check_int("steps", steps, 1, top)
        check_choice("step spacing", spacing, SPACINGS)
        u = np.linspace(0, 1, steps + 1)[1:]
        if spacing == "uniform":
            # Spacing top/S >= 1, so rounding keeps the steps strictly increasing and >= 1.
            return tuple(int(s) for s in np.round(u * top))
        taus = np.round(u**2 * top).astype(int)
        for i in range(len(taus)):  # at least one step apart, working down from τ_S = top
            taus[len(taus) - 1 - i] = min(taus[len(taus) - 1 - i], top - i)
        for i in range(len(taus)):
            taus[i] = max(taus[i], i + 1, taus[i - 1] + 1 if i else 1)
        return tuple(int(s) for s in taus)
    try:
        values = tuple(steps)
    except TypeError:
        raise TypeError(f"steps must be an int or an increasing sequence of ints in 1..{top}, got {steps!r}") from None
    if not values or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in values):
        raise TypeError(f"steps must be an int or a non-empty increasing sequence of ints in 1..{top}, got {steps!r}")
    values = tuple(int(s) for s in values)
    if any(b <= a for a, b in zip(values, values[1:])):
        raise ValueError(f"an explicit sequence of steps must be strictly increasing, got {values}")
    if values[0] < 1 or values[-1] > top:
        raise ValueError(f"every step must lie in 1..{top}, got {values[0]}..{values[-1]}")
    return values


def respace(schedule: NoiseSchedule, steps: int) -> tuple[NoiseSchedule, torch.Tensor]:
    """A schedule of ``steps`` evenly spaced steps of ``schedule``, and the kept steps τ (a teaching tool).

    Keeping S of the T steps, τ_1 < … < τ_S = T, gives again a Markov chain with the same marginals
    ᾱ_{τ_i}, whose per-step noise is β'_i = 1 − ᾱ_{τ_i} / ᾱ_{τ_{i−1}} (Nichol & Dhariwal 2021, Sec. 4).
    The samplers do this by themselves when given ``steps=S``; this function shows the schedule
    they implicitly run on.

    Returns:
        ``(respaced, tau)`` where ``respaced.T == steps`` and ``tau`` is a long tensor of shape
        ``(steps + 1,)`` with ``tau[0] = 0`` and ``tau[i]`` the original step of new step i.
    """
    from .schedules import from_betas

    steps = check_int("steps", steps, 1, schedule.T)
    tau = np.array((0,) + sampling_steps(schedule, steps), dtype=np.int64)  # (steps + 1,)
    alpha_bar = schedule.alpha_bar[tau]
    betas = 1.0 - alpha_bar[1:] / alpha_bar[:-1]
    return from_betas(betas, name=f"{schedule.name} respaced to {steps}"), torch.from_numpy(tau)
