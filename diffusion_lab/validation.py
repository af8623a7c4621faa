"""Input checks shared by every public function, so that a misuse fails early with a clear message.

A wrong value raises ``ValueError`` and a wrong kind of object ``TypeError``; every message names
the argument, the value it got and what is valid. NumPy integers and floats are accepted wherever a
Python ``int`` or ``float`` is (readers pass ``np.int64`` from arrays all the time).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import torch


def check_choice(kind: str, value: str, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``; otherwise raise a ``ValueError`` naming them."""
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"unknown {kind} {value!r}; choose one of: {', '.join(choices)}")
    return value


def check_int(name: str, value: object, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an ``int`` in ``low..high`` (either bound may be None); bools are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, torch.Tensor) and value.ndim == 0 and not value.is_floating_point():
            value = int(value)
        else:
            raise TypeError(f"{name} must be an int{_range(low, high)}, got {value!r}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be an int{_range(low, high)}, got {value}")
    return value


def check_float(name: str, value: object, low: float | None = None, high: float | None = None, *,
                low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a finite ``float`` in the interval given by the bounds (closed unless ``*_open``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        if isinstance(value, torch.Tensor) and value.ndim == 0:
            value = float(value)
        else:
            raise TypeError(f"{name} must be a number{_interval(low, high, low_open, high_open)}, got {value!r}")
    value = float(value)
    bad = not math.isfinite(value)
    bad |= low is not None and (value <= low if low_open else value < low)
    bad |= high is not None and (value >= high if high_open else value > high)
    if bad:
        raise ValueError(f"{name} must be a finite number{_interval(low, high, low_open, high_open)}, got {value}")
    return value


def _range(low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f" in {low}..{high}"
    if low is not None:
        return f" >= {low}"
    return f" <= {high}" if high is not None else ""


def _interval(low, high, low_open: bool, high_open: bool) -> str:
    if low is None and high is None:
        return ""
    if high is None:
        return f" {'>' if low_open else '>='} {low:g}"
    if low is None:
        return f" {'<' if high_open else '<='} {high:g}"
    return f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def check_tensor(name: str, x: object, *, floating: bool = False, ndim_min: int = 0,
                 finite: bool = False) -> torch.Tensor:
    """Raise unless ``x`` is a tensor (of a floating dtype, with at least ``ndim_min`` axes, finite)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if floating and not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (e.g. float32), got dtype {x.dtype}; "
                        f"convert it with .float()")
    if x.ndim < ndim_min:
        raise ValueError(f"{name} must have shape (B, ...) with at least {ndim_min} axes, got {tuple(x.shape)}")
    if finite and x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
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


def check_generator(generator: object) -> torch.Generator | None:
    """``generator`` must be None or a ``torch.Generator`` (not a seed: build one with ``manual_seed``)."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {generator!r}; "
                        f"use torch.Generator().manual_seed({generator!r}) for a seed")
    return generator


DEVICE_TYPES = ("cpu", "cuda", "mps")


def check_device(device: object) -> torch.device:
    """A ``torch.device`` from a name or device; unknown names (``"gpu"``) get the valid choices."""
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise TypeError(f"device must be a str or torch.device, got {device!r}")
    kind = device.split(":")[0]
    if kind not in DEVICE_TYPES:
        raise ValueError(f"unknown device {device!r}; choose one of: {', '.join(DEVICE_TYPES)} "
                         f"(e.g. 'cuda:0'), or dl.device() for the best available")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but CUDA is not available here; use 'cpu'")
    return torch.device(device)


def check_labels(name: str, labels: object, batch: int, num_classes: int, *, allow_null: bool = True) -> torch.Tensor:
    """Integer class labels of shape ``(batch,)`` in 0..K−1 (or K, the null label, when allowed)."""
    if isinstance(labels, (int, np.integer)) and not isinstance(labels, bool):
        labels = torch.full((batch,), int(labels), dtype=torch.long)
    check_tensor(name, labels)
    if labels.is_floating_point() or labels.dtype == torch.bool or labels.is_complex():
        raise TypeError(f"{name} must hold integer class labels, got dtype {labels.dtype}")
    if labels.ndim == 0:
        labels = labels.expand(batch)
    if labels.shape != (batch,):
        raise ValueError(f"{name} must have shape ({batch},) to match the batch, got {tuple(labels.shape)}")
    top = num_classes if allow_null else num_classes - 1
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) > top):
        bad = int(labels.min()) if int(labels.min()) < 0 else int(labels.max())
        null = f", or {num_classes} for the null label" if allow_null else ""
        raise ValueError(f"{name} holds {bad}; labels must lie in 0..{num_classes - 1}{null}")
    return labels.long()
