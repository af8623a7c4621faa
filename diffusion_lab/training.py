"""A small, seeded training loop for diffusion models on in-memory data (DDPM Algorithm 1)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm  # plain text: readable in stored notebook outputs and in the rendered book

from ._validation import check_tensor
from .ema import EMA
from .losses import ddpm_loss
from .schedules import NoiseSchedule


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        model: the trained network (the same object that was passed in).
        ema_model: a copy holding the exponential moving average of the weights; sample from this.
        loss_history: per-step mean training loss, shape ``(steps,)``.
        seconds: wall-clock training time.
    """

    model: nn.Module
    ema_model: nn.Module
    loss_history: np.ndarray
    seconds: float


def train(
    model: nn.Module,
    data: torch.Tensor,
    schedule: NoiseSchedule,
    *,
    steps: int,
    batch_size: int = 256,
    lr: float = 1e-3,
    parameterization: str = "eps",
    ema_decay: float = 0.995,
    seed: int = 0,
    progress: bool = True,
    labels: torch.Tensor | None = None,
    label_dropout: float = 0.0,
) -> TrainResult:
    """Train ``model`` in place with :func:`~diffusion_lab.losses.ddpm_loss` (Ho et al. 2020, Algorithm 1).

    Each step draws a minibatch from ``data`` (with replacement), t ~ Uniform{1..T} and ε ~ N(0, I),
    and takes one Adam step; the learning rate follows a cosine decay to zero. All randomness comes
    from one generator seeded with ``seed``, so a run is reproducible on the same machine.

    Args:
        model: maps ``(x, t) -> tensor shaped like x``; trained on the device of its parameters.
        data: training set of shape ``(N, ...)``.
        steps: number of optimisation steps.
        parameterization: the network's target: ``eps``, ``x0``, ``v`` or ``score``.
        ema_decay: decay of the weight average returned as ``ema_model``.
        progress: show a tqdm progress bar with the running loss.
        labels: class labels of shape ``(N,)`` for a class-conditional model ``(x, t, y)``, such as
            ``TimeMLP(num_classes=K)``; None trains an unconditional model ``(x, t)``.
        label_dropout: probability of replacing a label by the model's ``null_label`` (classifier-free
            guidance training, Ho & Salimans 2022, Algorithm 1), so that one network learns both
            ε(x, t, y) and the unconditional ε(x, t, ∅).
    """
    check_tensor("data", data)
    labels = _check_labels(labels, data, label_dropout, model)
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be positive, got steps={steps}, batch_size={batch_size}")
    device = next(model.parameters()).device
    data = data.to(device)
    labels = labels.to(device) if labels is not None else None
    generator = torch.Generator(device=device).manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    cosine = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / steps)))
    ema = EMA(model, ema_decay)
    losses = np.empty(steps)
    start = time.perf_counter()
    bar = tqdm(range(steps), disable=not progress, mininterval=1.0, desc="training")
    for step in bar:
        # Algorithm 1: x_0 ~ q(x_0), then the loss draws t and ε.
        index = torch.randint(0, data.shape[0], (batch_size,), generator=generator, device=device)
        x0 = data[index]
        net = model if labels is None else _with_labels(model, labels[index], label_dropout, generator)
        loss = ddpm_loss(net, schedule, x0, parameterization=parameterization, generator=generator).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        cosine.step()
        ema.update(model)
        losses[step] = loss.item()
        if progress and step % 100 == 0:
            bar.set_postfix(loss=f"{losses[max(0, step - 99):step + 1].mean():.4f}", refresh=False)
    return TrainResult(model, ema.ema_model, losses, time.perf_counter() - start)


def _check_labels(labels, data: torch.Tensor, label_dropout: float, model: nn.Module) -> torch.Tensor | None:
    if not 0.0 <= label_dropout < 1.0:
        raise ValueError(f"label_dropout must lie in [0, 1), got {label_dropout}")
    if labels is None:
        if label_dropout > 0:
            raise ValueError("label_dropout needs labels; pass labels=... of shape (N,)")
        return None
    check_tensor("labels", labels)
    if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.shape != (data.shape[0],):
        raise ValueError(f"labels must be integer class labels of shape ({data.shape[0]},), "
                         f"got dtype {labels.dtype} and shape {tuple(labels.shape)}")
    if label_dropout > 0 and getattr(model, "null_label", None) is None:
        raise ValueError("label_dropout > 0 needs a model with a null_label, e.g. TimeMLP(num_classes=K)")
    return labels.long()


def _with_labels(model: nn.Module, y: torch.Tensor, label_dropout: float, generator: torch.Generator):
    """The model with this minibatch's labels bound, each dropped to the null label with prob. p."""
    if label_dropout > 0:
        # Label dropout (Ho & Salimans 2022, Algorithm 1).
        drop = torch.rand(y.shape, generator=generator, device=y.device) < label_dropout
        y = torch.where(drop, torch.full_like(y, model.null_label), y)
    return lambda x_t, t: model(x_t, t, y)
