"""Where code runs: the device helper and the CPU/GPU-sized settings switch used by every chapter."""

from __future__ import annotations

import random
from typing import TypeVar

import numpy as np
import torch

T = TypeVar("T")


def device() -> torch.device:
    """CUDA when it is present, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def on_gpu() -> bool:
    """True when CUDA is present (e.g. in Colab with a GPU runtime)."""
    return torch.cuda.is_available()


def cpu_or_gpu(cpu: T, gpu: T) -> T:
    """Pick a setting: ``cpu`` for the book's 2-core CPU target, ``gpu`` when CUDA is present."""
    return gpu if on_gpu() else cpu


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's global generators (for code that uses them implicitly)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
