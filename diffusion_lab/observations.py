"""What conditional samplers observe, and the classical baselines they are compared with.

* **Masks** (inpainting): y = m ⊙ x_0, with m = 1 where a pixel is known; :func:`as_mask`.
* **Block means** (super-resolution): ℓ = D x_0, each N×N block replaced by its mean
  (:func:`box_downsample`). Repeating each pixel into a block (:func:`nearest_upsample`) is D's
  pseudo-inverse D⁺ (D D⁺ = I), and the low-pass filter φ_N = D⁺ D (:func:`low_pass`) is the
  orthogonal projection onto block-constant images (Choi et al. 2021 filter with bicubic resizing;
  box filters make φ_N an exact projection).
* **Baselines**: :func:`harmonic_fill` for inpainting, :func:`bicubic_upsample` for super-resolution.
* :func:`ascii_image`: a stroke painting from text, the guide of SDEdit.

Everything works on points ``(B, D)`` and images ``(B, C, H, W)`` where that makes sense.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .broadcast import expand_like
from .validation import check_int, check_tensor


def as_mask(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``mask`` as a bool tensor of ``like``'s shape on its device; True marks observed entries.

    ``mask`` may be bool or 0/1 and must broadcast to ``like`` (e.g. ``(D,)`` for points
    ``(B, D)``, ``(1, H, W)`` or ``(B, 1, H, W)`` for images ``(B, 1, H, W)``).
    """
    mask = torch.as_tensor(mask, device=like.device)
    if mask.dtype != torch.bool:
        if not torch.all((mask == 0) | (mask == 1)):
            raise ValueError("a mask must be bool or hold only 0 and 1 (1 = observed)")
        mask = mask != 0
    try:
        return mask.expand_as(like)
    except RuntimeError:
        raise ValueError(
            f"the mask of shape {tuple(mask.shape)} does not broadcast to the data of shape {tuple(like.shape)}"
        ) from None


def _images(name: str, x: object, factor: int) -> torch.Tensor:
    check_tensor(name, x, floating=True)
    if x.ndim != 4:
        raise ValueError(f"{name} must be images of shape (B, C, H, W), got {tuple(x.shape)}")
    check_int("factor", factor, 1)
    return x


def box_downsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    """D x: the mean of each ``factor``×``factor`` block, ``(B, C, H, W) -> (B, C, H/f, W/f)``."""
    _images("x", x, factor)
    if x.shape[-1] % factor or x.shape[-2] % factor:
        raise ValueError(f"image size {tuple(x.shape[-2:])} is not divisible by the factor {factor}")
    return F.avg_pool2d(x, factor)


def nearest_upsample(low: torch.Tensor, factor: int) -> torch.Tensor:
    """D⁺ ℓ: repeat each pixel into a ``factor``×``factor`` block, ``(B, C, h, w) -> (B, C, h f, w f)``."""
    _images("low", low, factor)
    return low.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)


def low_pass(x: torch.Tensor, factor: int) -> torch.Tensor:
    """φ_N(x) = D⁺ D x: every block replaced by its mean (Choi et al. 2021, Sec. 3.2, with box filters)."""
    return nearest_upsample(box_downsample(x, factor), factor)


def bicubic_upsample(low: torch.Tensor, factor: int, *, low_value: float = -1.0, high_value: float = 1.0) -> torch.Tensor:
    """The baseline: bicubic interpolation (Keys 1981, a = −0.75 as in PyTorch), clipped to the data range."""
    _images("low", low, factor)
    up = F.interpolate(low, scale_factor=factor, mode="bicubic", align_corners=False)
    return up.clamp(low_value, high_value)


def harmonic_fill(known: torch.Tensor, mask: torch.Tensor, *, iterations: int = 200) -> torch.Tensor:
    """A classical baseline: fill each missing pixel with the mean of its 4 neighbours, repeatedly.

    The fixed point solves Laplace's equation on the missing region with the known pixels as
    boundary values: the smoothest fill, which cannot invent strokes. Missing pixels start at the
    mean of the known ones (per image); at the border the image is extended by replication.

    Args:
        known: images ``(B, C, H, W)``; mask: broadcastable to them, True where observed.
        iterations: Jacobi sweeps (the error falls geometrically; 200 is plenty at 8×8 or 28×28).
    """
    check_tensor("known", known, floating=True)
    if known.ndim != 4:
        raise ValueError(f"harmonic_fill needs images (B, C, H, W), got shape {tuple(known.shape)}")
    iterations = check_int("iterations", iterations, 0)
    m = as_mask(mask, known)
    fill = (known * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp(min=1)  # (B,)
    x = torch.where(m, known, expand_like(fill, known))
    for _ in range(iterations):
        padded = F.pad(x, (1, 1, 1, 1), mode="replicate")  # (B, C, H + 2, W + 2)
        up, down = padded[..., :-2, 1:-1], padded[..., 2:, 1:-1]
        left, right = padded[..., 1:-1, :-2], padded[..., 1:-1, 2:]
        x = torch.where(m, known, (up + down + left + right) / 4)
    return x


def ascii_image(rows: list[str] | tuple[str, ...], *, ink: str = "#", half: str = "+") -> torch.Tensor:
    """A stroke painting from text: ``ink`` is a full stroke (+1), ``half`` a faint one (0), anything
    else background (−1). Returns ``(1, H, W)`` in [−1, 1], the range of the image data sets.

        >>> seven = ascii_image(["#######.", "......#.", ".....#..", "....#...", "...#....",
        ...                      "...#....", "..#.....", "..#....."])
    """
    if not rows or not all(isinstance(r, str) for r in rows) or len({len(r) for r in rows}) != 1 or not rows[0]:
        raise ValueError("rows must be a non-empty list of non-empty strings of equal length")
    values = [[1.0 if c == ink else 0.0 if c == half else -1.0 for c in r] for r in rows]
    return torch.tensor(values, dtype=torch.float32).unsqueeze(0)  # (1, H, W)

