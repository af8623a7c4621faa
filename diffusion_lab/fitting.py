"""The one seeded optimisation loop that every trainer in the package uses.

Diffusion models, flow matching, classifiers, progressive distillation and the autoencoder differ
only in the per-example loss they minimise, so they share this loop: Adam, an optional linear
warm-up then a cosine decay of the learning rate, optional gradient-norm clipping and an
exponential moving average (EMA) of the weights, with every random draw taken from one generator
seeded with ``seed`` (a run is reproducible on the same machine). A loss that turns NaN or infinite
stops the run with the step at which it happened, instead of logging NaN forever.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm  # plain text: readable in stored notebook outputs and in the rendered book

from .validation import check_float, check_int

BatchLoss = Callable[[torch.Generator], torch.Tensor]


class EMA:
    """Keeps ``ema_model``, a frozen copy whose weights follow θ_ema ← d·θ_ema + (1 − d)·θ (Polyak averaging).

    Args:
        model: the network being trained (it is copied, never modified).
        decay: d in [0, 1); 0 makes the copy equal to the latest weights.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        self.decay = check_float("decay", decay, 0.0, 1.0, high_open=True)
        self.ema_model = copy.deepcopy(model).requires_grad_(False)
        self._ema_params = list(self.ema_model.parameters())
        self._ema_buffers = list(self.ema_model.buffers())

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the averaged weights one step towards ``model``'s (buffers are copied as they are)."""
        # One fused call over all tensors: the per-tensor loop dominated small models' step time.
        torch._foreach_lerp_(self._ema_params, list(model.parameters()), 1.0 - self.decay)
        for ema_b, b in zip(self._ema_buffers, model.buffers()):
            ema_b.copy_(b)


@dataclass
class TrainResult:
    """What a trainer returns.

    Attributes:
        model: the trained network (the same object that was passed in).
        ema_model: a copy holding the exponential moving average of the weights; sample from this.
        loss_history: per-step mean training loss, shape ``(steps,)``.
        seconds: wall-clock training time.
        denoiser: for diffusion models, the trained :class:`~diffusion_lab.Denoiser` with the EMA weights.
    """

    model: nn.Module
    ema_model: nn.Module
    loss_history: np.ndarray
    seconds: float
    denoiser: Any = None


def fit(model: nn.Module, batch_loss: BatchLoss, *, steps: int, lr: float = 1e-3, warmup: int = 0,
        ema_decay: float = 0.995, grad_clip: float | None = None, seed: int = 0, progress: bool = False,
        desc: str = "training") -> TrainResult:
    """Minimise ``batch_loss(generator).mean()`` over ``model``'s parameters for ``steps`` Adam steps.

    Args:
        model: the network being trained (in place); its EMA copy is returned as well.
        batch_loss: draws one minibatch from the generator it is given and returns per-example
            losses of shape ``(B,)``.
        warmup: steps of linear learning-rate warm-up before the cosine decay to zero.
        grad_clip: maximum global gradient norm (None: no clipping).
        progress: show a tqdm progress bar with the running loss.
    """
    steps, warmup, seed = check_int("steps", steps, 1), check_int("warmup", warmup, 0), check_int("seed", seed, 0)
    lr = check_float("lr", lr, 0.0, low_open=True)
    if grad_clip is not None:
        grad_clip = check_float("grad_clip", grad_clip, 0.0, low_open=True)
    parameters = [p for p in model.parameters() if p.requires_grad]
    if not parameters:
        raise ValueError("the model has no trainable parameters")
    device = parameters[0].device
    generator = torch.Generator(device=device).manual_seed(seed)
    optimizer = torch.optim.Adam(parameters, lr=lr, fused=device.type in ("cpu", "cuda"))

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
            nn.utils.clip_grad_norm_(parameters, grad_clip)
        optimizer.step()
        scheduler.step()
        ema.update(model)
        losses[step] = loss.item()
        if not math.isfinite(losses[step]):
            raise FloatingPointError(f"the training loss became {losses[step]} at step {step}: check the data for "
                                     f"NaN or infinite values, or lower the learning rate (lr = {lr:g})")
        if progress and step % 100 == 0:
            bar.set_postfix(loss=f"{losses[max(0, step - 99):step + 1].mean():.4f}", refresh=False)
    return TrainResult(model, ema.ema_model, losses, time.perf_counter() - start)


def minibatch(data: torch.Tensor, batch_size: int, generator: torch.Generator,
              *others: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
    """``batch_size`` rows of ``data`` drawn with replacement, and the same rows of each of ``others``
    (None stays None), e.g. ``x0, y = minibatch(images, 128, generator, labels)``."""
    index = torch.randint(0, data.shape[0], (batch_size,), generator=generator, device=data.device)
    return (data[index], *(None if o is None else o[index] for o in others))
