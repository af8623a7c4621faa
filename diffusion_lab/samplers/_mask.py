"""Masks of observed entries, shared by imputation (continuous time) and inpainting (discrete time)."""

from __future__ import annotations

import torch

from .._validation import check_tensor


def as_mask(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Return ``mask`` as a bool tensor of ``like``'s shape on its device; True marks observed entries.

    ``mask`` may be bool or 0/1 and must broadcast to ``like`` (e.g. ``(D,)`` for points
    ``(B, D)``, ``(1, H, W)`` or ``(B, 1, H, W)`` for images ``(B, 1, H, W)``).
    """
    mask = torch.as_tensor(mask, device=like.device)
    if mask.dtype != torch.bool:
        if mask.is_floating_point() and not torch.all((mask == 0) | (mask == 1)):
            raise ValueError("a mask must be bool or hold only 0 and 1 (1 = observed)")
        mask = mask != 0
    try:
        return mask.expand_as(like)
    except RuntimeError:
        raise ValueError(
            f"the mask of shape {tuple(mask.shape)} does not broadcast to the data of shape {tuple(like.shape)}"
        ) from None


def check_known(known: object) -> torch.Tensor:
    """The observed data must be a tensor of shape ``(B, ...)``."""
    check_tensor("known", known)
    if known.ndim < 2:
        raise ValueError(f"known must have shape (B, ...), got {tuple(known.shape)}")
    return known
