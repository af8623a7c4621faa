"""Shared input checks, so every public function fails early with the same clear message.

The helpers here raise ``ValueError`` for a wrong value and ``TypeError`` for a wrong kind of
object, and every message names the problem together with the valid choices.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


def check_choice(kind: str, value: str, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``; otherwise raise a ``ValueError`` naming them."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"unknown {kind} {value!r}; choose one of: {', '.join(choices)}")
    return value


def check_tensor(name: str, x: object) -> torch.Tensor:
    """Raise a ``TypeError`` unless ``x`` is a torch tensor."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    return x


def check_same_shape(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    """Raise a ``ValueError`` if two tensors that are combined elementwise differ in shape."""
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def check_same_device(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    """Raise a ``ValueError`` if two tensors live on different devices."""
    if a.device != b.device:
        raise ValueError(
            f"{name_a} is on {a.device} but {name_b} is on {b.device}; "
            f"move both to the same device (e.g. with .to({a.device.type!r}))"
        )
