"""Which steps a fast sampler visits: an evenly spaced or explicit increasing subsequence of 1..T."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._validation import check_choice
from ..schedules import NoiseSchedule

SPACINGS = ("uniform", "quadratic")


def sampling_steps(
    schedule: NoiseSchedule, steps: int | Sequence[int], spacing: str = "uniform"
) -> tuple[int, ...]:
    """The increasing steps τ_1 < ... < τ_S in 1..T that a sampler visits (Song et al. 2021, Sec. 4.2).

    Args:
        steps: an int S in 1..T, giving S steps ending at τ_S = T, or an explicit increasing
            sequence of integer steps in 1..T (returned as it is).
        spacing: for an int S, ``"uniform"``: τ_i = round(i T / S), evenly spaced; ``"quadratic"``:
            τ_i ≈ T (i / S)², denser at low noise (Song et al. 2021, App. D.2), made strictly
            increasing by taking at least one step between neighbours.

    Returns:
        The tuple ``(τ_1, ..., τ_S)``; a sampler runs x_{τ_S} → x_{τ_{S−1}} → ... → x_{τ_1} → x_0.
    """
    T = schedule.T
    if isinstance(steps, (int, np.integer)) and not isinstance(steps, bool):
        if not 1 <= steps <= T:
            raise ValueError(f"steps = {steps} must lie in 1..T = 1..{T} (the number of sampling steps)")
        check_choice("step spacing", spacing, SPACINGS)
        u = np.linspace(0, 1, int(steps) + 1)[1:]
        if spacing == "uniform":
            # Spacing T/S >= 1, so rounding keeps the steps strictly increasing and >= 1.
            return tuple(int(s) for s in np.round(u * T))
        taus = np.round(u**2 * T).astype(int)
        for i in range(len(taus)):  # at least one step apart, working down from τ_S = T
            taus[len(taus) - 1 - i] = min(taus[len(taus) - 1 - i], T - i)
        for i in range(len(taus)):
            taus[i] = max(taus[i], i + 1, taus[i - 1] + 1 if i else 1)
        return tuple(int(s) for s in taus)
    try:
        values = tuple(steps)
    except TypeError:
        raise TypeError(f"steps must be an int or an increasing sequence of ints in 1..{T}, got {steps!r}") from None
    if not values or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in values):
        raise TypeError(f"steps must be an int or a non-empty increasing sequence of ints in 1..{T}, got {steps!r}")
    values = tuple(int(s) for s in values)
    if any(b <= a for a, b in zip(values, values[1:])):
        raise ValueError(f"an explicit sequence of steps must be strictly increasing, got {values}")
    if values[0] < 1 or values[-1] > T:
        raise ValueError(f"every step must lie in 1..T = 1..{T}, got {values[0]}..{values[-1]}")
    return values
