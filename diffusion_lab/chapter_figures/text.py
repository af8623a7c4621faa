"""Small text and geometry helpers shared by the chapter figures."""

from __future__ import annotations

import numpy as np

COLOR_NAMES = ["blue", "orange", "green", "red", "purple", "brown", "pink", "grey", "olive", "cyan"]  # C0..C9


def fmt_g(value: float, digits: int = 3) -> str:
    """A number with at most ``digits`` significant digits, written as a reader expects (no '+' in exponents)."""
    return f"{value:.{digits}g}".replace("e+0", "e").replace("e-0", "e-")


def percent(fraction: float) -> str:
    """A share as a percentage with 3 significant digits (0.0276 % rather than 0.0 %)."""
    return f"{fmt_g(100 * fraction, 3)} %"


def curve(x: np.ndarray, y: np.ndarray, max_points: int = 201) -> np.ndarray:
    """The rows (x, y) of a curve, thinned to at most ``max_points`` (the end points kept)."""
    keep = np.unique(np.linspace(0, len(x) - 1, min(len(x), max_points)).round().astype(int))
    return np.stack([np.asarray(x, dtype=np.float64)[keep], np.asarray(y, dtype=np.float64)[keep]], axis=1)


def sig3(value: float) -> str:
    """3 significant digits, without an exponent where one is not needed: 2132.6 -> 2130, 61.88 -> 61.9."""
    return f"{float(f'{value:.3g}'):g}"
