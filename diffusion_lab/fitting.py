"""One seeded optimisation loop for the objectives of the "Beyond DDPM" chapter.

Flow matching, progressive distillation and the autoencoder differ only in the per-example loss
they minimise, so they share this loop: Adam, a linear warm-up then cosine decay of the learning
rate, gradient-norm clipping and an exponential moving average of the weights, with every random
draw taken from one generator seeded with ``seed`` (a run is reproducible on the same machine).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .ema import EMA
from .training import TrainResult

BatchLoss = Callable[[torch.Generator], torch.Tensor]


def fit(
    model: nn.Module,
    batch_loss: BatchLoss,
    *,
    steps: int,
    lr: float = 1e-3,
    warmup: int = 0,
    ema_decay: float = 0.995,
    grad_clip: float | None = 1.0,
    seed: int = 0,
    progress: bool = False,
    desc: str = "training",
) -> TrainResult:
    """Minimise ``batch_loss(generator).mean()`` over ``model``'s parameters for ``steps`` Adam steps.

    Args:
        model: the network being trained (in place); its EMA copy is returned as well.
        batch_loss: draws one minibatch from the generator it is given and returns per-example
            losses of shape ``(B,)``.
        warmup: steps of linear learning-rate warm-up before the cosine decay to zero.
        grad_clip: maximum global gradient norm (None: no clipping).
    """
    if steps < 1 or warmup < 0:
        raise ValueError(f"steps must be >= 1 and warmup >= 0, got steps={steps}, warmup={warmup}")
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    def lr_factor(step: int) -> float:
        warm = min(1.0, (step + 1) / warmup) if warmup else 1.0
        return warm * 0.5 * (1 + math.cos(math.pi * step / steps))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    ema = EMA(model, ema_decay)
    losses = np.empty(steps)
    start = time.perf_counter()
    bar = tqdm(range(steps), disable=not progress, mininterval=1.0, desc=desc)
    for step in bar:
        loss = batch_loss(generator)
        if loss.ndim != 1:
            raise ValueError(f"batch_loss must return per-example losses of shape (B,), got {tuple(loss.shape)}")
        loss = loss.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        scheduler.step()
        ema.update(model)
        losses[step] = loss.item()
    return TrainResult(model, ema.ema_model, losses, time.perf_counter() - start)


def minibatch(data: torch.Tensor, batch_size: int, generator: torch.Generator,
              labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``batch_size`` rows of ``data`` drawn with replacement (and their labels, when given)."""
    index = torch.randint(0, data.shape[0], (batch_size,), generator=generator, device=data.device)
    return data[index], (labels[index] if labels is not None else None)
