"""Image data that always works offline: scikit-learn's bundled 8×8 digits."""

from __future__ import annotations

import torch
from sklearn.datasets import load_digits


def digits_8x8(*, digit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 1,797 bundled 8×8 handwritten digits (no download).

    Args:
        digit: keep only this class (0–9), or all when None.

    Returns:
        ``(images, labels)``: images float32 of shape ``(N, 1, 8, 8)`` scaled from 0..16 to [−1, 1],
        labels long of shape ``(N,)``.
    """
    if digit is not None and digit not in range(10):
        raise ValueError(f"digit must be one of 0..9 or None, got {digit!r}")
    bunch = load_digits()
    images = torch.from_numpy(bunch.images).float().unsqueeze(1) / 8.0 - 1.0  # (N, 1, 8, 8)
    labels = torch.from_numpy(bunch.target).long()
    if digit is not None:
        keep = labels == digit
        images, labels = images[keep], labels[keep]
    return images, labels
