"""A noise-conditional classifier p_φ(y | x_t, t) for classifier guidance (Dhariwal & Nichol 2021).

The classifier is trained on *noisy* inputs x_t ~ q(x_t | x_0) at random steps t, because guidance
needs ∇_x log p_φ(y | x_t, t) all along the reverse chain, not only at clean data.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ._validation import check_tensor
from .ema import EMA
from .forward import q_sample
from .mlp import ResidualBlock, sinusoidal_embedding
from .schedules import NoiseSchedule
from .training import TrainResult


class NoisyClassifier(nn.Module):
    """A residual MLP ``(x_t, t) -> logits`` of shape ``(B, K)``, conditioned on the step like :class:`TimeMLP`.

    Args:
        data_dim: D, the size of each data point.
        num_classes: K.
        hidden, n_blocks, time_dim: as in :class:`~diffusion_lab.TimeMLP`.
    """

    def __init__(self, data_dim: int = 2, num_classes: int = 2, hidden: int = 64, n_blocks: int = 2,
                 time_dim: int = 32) -> None:
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
        self.time_dim = time_dim
        self.num_classes = num_classes
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.input = nn.Linear(data_dim, hidden)
        self.blocks = nn.ModuleList(ResidualBlock(hidden) for _ in range(n_blocks))
        self.output = nn.Sequential(nn.SiLU(), nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.input.in_features:
            raise ValueError(f"NoisyClassifier expects x of shape (B, {self.input.in_features}), got {tuple(x.shape)}")
        if t.shape != (x.shape[0],):
            raise ValueError(f"NoisyClassifier expects t of shape ({x.shape[0]},), got {tuple(t.shape)}")
        time_feature = self.time_mlp(sinusoidal_embedding(t, self.time_dim))  # (B, hidden)
        h = self.input(x)  # (B, hidden)
        for block in self.blocks:
            h = block(h, time_feature)
        return self.output(h)  # (B, K)


def classifier_loss(
    classifier: nn.Module,
    schedule: NoiseSchedule,
    x0: torch.Tensor,
    y: torch.Tensor,
    *,
    max_t: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Cross-entropy of ``classifier`` on x_t ~ q(x_t | x_0), t ~ Uniform{1..max_t}: shape ``(B,)``.

    ``max_t`` defaults to T; ``max_t=1`` trains an (almost) clean-data classifier.
    """
    max_t = schedule.T if max_t is None else max_t
    if not 1 <= max_t <= schedule.T:
        raise ValueError(f"max_t must lie in 1..T = 1..{schedule.T}, got {max_t}")
    t = torch.randint(1, max_t + 1, (x0.shape[0],), generator=generator, device=x0.device)
    x_t = q_sample(schedule, x0, t, generator=generator)
    return F.cross_entropy(classifier(x_t, t), y, reduction="none")  # (B,)


def train_classifier(
    classifier: nn.Module,
    data: torch.Tensor,
    labels: torch.Tensor,
    schedule: NoiseSchedule,
    *,
    steps: int,
    batch_size: int = 256,
    lr: float = 3e-3,
    max_t: int | None = None,
    ema_decay: float = 0.995,
    seed: int = 0,
    progress: bool = True,
) -> TrainResult:
    """Train a noise-conditional classifier in place on noisy data (Dhariwal & Nichol 2021, Sec. 4).

    Adam with a cosine learning-rate decay, minibatches drawn with replacement, all randomness from
    one generator seeded with ``seed``; as :func:`~diffusion_lab.train`, which this mirrors.

    Args:
        data: ``(N, D)`` clean points; labels: ``(N,)`` integer classes.
        max_t: largest noise step seen in training (default T).
    """
    check_tensor("data", data)
    check_tensor("labels", labels)
    if labels.shape != (data.shape[0],) or labels.dtype.is_floating_point:
        raise ValueError(f"labels must be integer classes of shape ({data.shape[0]},), got {tuple(labels.shape)}")
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be positive, got steps={steps}, batch_size={batch_size}")
    device = next(classifier.parameters()).device
    data, labels = data.to(device), labels.to(device).long()
    generator = torch.Generator(device=device).manual_seed(seed)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=lr)
    cosine = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / steps)))
    ema = EMA(classifier, ema_decay)
    losses = np.empty(steps)
    start = time.perf_counter()
    for step in tqdm(range(steps), disable=not progress, mininterval=1.0, desc="training classifier"):
        index = torch.randint(0, data.shape[0], (batch_size,), generator=generator, device=device)
        loss = classifier_loss(classifier, schedule, data[index], labels[index], max_t=max_t,
                               generator=generator).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        cosine.step()
        ema.update(classifier)
        losses[step] = loss.item()
    return TrainResult(classifier, ema.ema_model, losses, time.perf_counter() - start)
