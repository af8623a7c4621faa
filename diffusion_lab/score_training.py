"""A small, seeded training loop for any per-example loss (score matching, NCSN)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ._validation import check_tensor
from .ema import EMA
from .training import TrainResult

LossFn = Callable[[nn.Module, torch.Tensor, torch.Generator], torch.Tensor]


def train_score_model(
    model: nn.Module,
    data: torch.Tensor,
    loss_fn: LossFn,
    *,
    steps: int,
    batch_size: int = 256,
    lr: float = 1e-3,
    ema_decay: float = 0.995,
    seed: int = 0,
    progress: bool = True,
) -> TrainResult:
    """Train ``model`` in place on ``loss_fn(model, x0, generator) -> (B,)`` losses.

    The same recipe as :func:`~diffusion_lab.train` (Adam, cosine learning-rate decay to zero, an
    exponential moving average of the weights, one generator seeded with ``seed``), for losses that
    are not DDPM's, e.g. ``lambda m, x, g: dl.denoising_score_matching_loss(m, x, sigma, generator=g)``.
    """
    check_tensor("data", data)
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be positive, got steps={steps}, batch_size={batch_size}")
    device = next(model.parameters()).device
    data = data.to(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    cosine = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / steps)))
    ema = EMA(model, ema_decay)
    losses = np.empty(steps)
    start = time.perf_counter()
    for step in tqdm(range(steps), disable=not progress, mininterval=1.0, desc="training"):
        x0 = data[torch.randint(0, data.shape[0], (batch_size,), generator=generator, device=device)]
        loss = loss_fn(model, x0, generator).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        cosine.step()
        ema.update(model)
        losses[step] = loss.item()
    return TrainResult(model, ema.ema_model, losses, time.perf_counter() - start)
