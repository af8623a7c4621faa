"""Trainers for in-memory data: diffusion models (DDPM's Algorithm 1, flow matching) and the
noise-conditional classifier of classifier guidance. Both are a loss plus :func:`~diffusion_lab.fit`."""

from __future__ import annotations

import torch
from torch import nn

from .denoiser import Denoiser
from .fitting import TrainResult, fit, minibatch
from .losses import DSM_WEIGHTINGS, classifier_loss, continuous_dsm_loss, diffusion_loss, hybrid_loss, vlb_loss
from .time_sampler import ImportanceTimeSampler
from .validation import check_choice, check_float, check_int, check_labels, check_tensor

#: What :func:`train_diffusion` minimises: Ho et al.'s L_simple, Nichol & Dhariwal's L_hybrid, or the bound.
OBJECTIVES = ("simple", "hybrid", "vlb")


def train_diffusion(denoiser: Denoiser, data: torch.Tensor, *, steps: int, batch_size: int = 256, lr: float = 1e-3,
                    warmup: int = 0, grad_clip: float | None = None, ema_decay: float = 0.995, seed: int = 0,
                    labels: torch.Tensor | None = None, label_dropout: float = 0.0, noise: torch.Tensor | None = None,
                    objective: str = "simple", vlb_weight: float = 0.001, importance_sampling: bool = False,
                    decoder: str = "gaussian", bin_width: float | None = None, progress: bool = True) -> TrainResult:
    """Train ``denoiser.net`` in place with :func:`~diffusion_lab.diffusion_loss` (Ho et al. 2020, Algorithm 1).

    Each step draws a minibatch from ``data`` (with replacement), a time from the process and
    ε ~ N(0, I), and takes one Adam step (:func:`~diffusion_lab.fit`: cosine learning-rate decay,
    an EMA of the weights, all randomness from one generator seeded with ``seed``).

    Args:
        denoiser: the network with its process and parameterization, e.g.
            ``Denoiser(TimeMLP(), cosine_schedule(1000), predicts="eps")``; with a flow path and
            ``predicts="velocity"`` this is flow matching.
        data: training set of shape ``(N, ...)``.
        labels: class labels ``(N,)`` for a class-conditional network (``net.num_classes`` set).
        label_dropout: probability of replacing a label by the null label (classifier-free guidance
            training, Ho & Salimans 2022, Algorithm 1), so one network learns ε(x, t, y) and ε(x, t, ∅).
        noise: optional ε paired with each row of ``data`` (a fixed coupling, for reflow); None draws
            independent noise every step.
        objective: ``"simple"`` (:func:`~diffusion_lab.diffusion_loss`), ``"hybrid"`` (L_simple + λ L_vlb,
            :func:`~diffusion_lab.hybrid_loss`, λ = ``vlb_weight``) or ``"vlb"`` (the bound alone,
            :func:`~diffusion_lab.vlb_loss`); the last two need a network that learns its variance.
        importance_sampling: with ``"vlb"``, draw t by :class:`~diffusion_lab.ImportanceTimeSampler`.
        decoder, bin_width: the t = 1 term of L_vlb (``"discretized"`` and the bin width for images).

    Returns:
        A :class:`~diffusion_lab.TrainResult` whose ``denoiser`` is ``denoiser`` with the EMA weights.
    """
    check_tensor("data", data, floating=True, ndim_min=2, finite=True)
    batch_size = check_int("batch_size", batch_size, 1)
    label_dropout = check_float("label_dropout", label_dropout, 0.0, 1.0, high_open=True)
    if labels is not None:
        if denoiser.num_classes is None:
            raise ValueError("labels need a class-conditional network (net.num_classes is None)")
        labels = check_labels("labels", labels, data.shape[0], denoiser.num_classes, allow_null=False)
    elif label_dropout > 0:
        raise ValueError("label_dropout needs labels; pass labels=... of shape (N,)")
    if noise is not None and noise.shape != data.shape:
        raise ValueError(f"noise must be shaped like data {tuple(data.shape)}, got {tuple(noise.shape)}")
    check_choice("objective", objective, OBJECTIVES)
    if importance_sampling and objective != "vlb":
        raise ValueError(f"importance_sampling reweights the bound alone: it needs objective='vlb', got {objective!r}")
    sampler = ImportanceTimeSampler(denoiser.process.T) if importance_sampling else None
    device = next(denoiser.net.parameters()).device
    data = data.to(device)
    labels = None if labels is None else labels.to(device)
    noise = None if noise is None else noise.to(device)

    def batch_loss(generator: torch.Generator) -> torch.Tensor:
        # Algorithm 1: x_0 ~ q(x_0); the loss draws t and ε.
        x0, y, eps = minibatch(data, batch_size, generator, labels, noise)
        if y is not None and label_dropout > 0:
            # Label dropout (Ho & Salimans 2022, Algorithm 1).
            drop = torch.rand(y.shape, generator=generator, device=device) < label_dropout
            y = torch.where(drop, torch.full_like(y, denoiser.num_classes), y)
        if objective == "simple":
            return diffusion_loss(denoiser, x0, noise=eps, labels=y, generator=generator)
        if objective == "hybrid":
            return hybrid_loss(denoiser, x0, vlb_weight=vlb_weight, noise=eps, labels=y, decoder=decoder,
                               bin_width=bin_width, generator=generator)
        if sampler is None:
            return vlb_loss(denoiser, x0, noise=eps, labels=y, decoder=decoder, bin_width=bin_width,
                            generator=generator)
        t, weights = sampler.sample(x0.shape[0], generator, device)
        losses = vlb_loss(denoiser, x0, t=t, noise=eps, labels=y, decoder=decoder, bin_width=bin_width,
                          generator=generator)
        sampler.update(t, losses)
        return weights * losses  # Nichol & Dhariwal (2021), Eq. 18: unbiased for the bound

    result = fit(denoiser.net, batch_loss, steps=steps, lr=lr, warmup=warmup, grad_clip=grad_clip,
                 ema_decay=ema_decay, seed=seed, progress=progress, desc="training")
    result.denoiser = denoiser.replace(net=result.ema_model)
    return result


def train_score(denoiser: Denoiser, data: torch.Tensor, *, steps: int, weighting: str = "sigma2",
                batch_size: int = 256, lr: float = 1e-3, warmup: int = 0, grad_clip: float | None = None,
                ema_decay: float = 0.995, seed: int = 0, progress: bool = True) -> TrainResult:
    """Train a time-continuous score model in place by denoising score matching (Song et al. 2021, Eq. 7).

    Each step draws a minibatch from ``data``, times t ~ U(t_end, 1) and ε, and minimises
    :func:`~diffusion_lab.continuous_dsm_loss` with the weighting λ(t) (``"sigma2"``, ``"likelihood"``
    or ``"none"``) through :func:`~diffusion_lab.fit`. With ``"sigma2"`` and an ε-network this is the
    same objective as :func:`train_diffusion`.

    Args:
        denoiser: the network with its SDE (or path) and parameterization, e.g.
            ``Denoiser(TimeMLP(), VPSDE(), predicts="eps", time_scale=1000.0)``.
        data: training set of shape ``(N, ...)``.

    Returns:
        A :class:`~diffusion_lab.TrainResult` whose ``denoiser`` is ``denoiser`` with the EMA weights.
    """
    check_tensor("data", data, floating=True, ndim_min=2, finite=True)
    batch_size = check_int("batch_size", batch_size, 1)
    if denoiser.process.discrete:
        raise ValueError(f"train_score needs a continuous-time process (an SDE), got {denoiser.process!r}; "
                         f"for a schedule use train_diffusion")
    device = next(denoiser.net.parameters()).device
    data = data.to(device)
    check_choice("weighting", weighting, DSM_WEIGHTINGS)

    def batch_loss(generator: torch.Generator) -> torch.Tensor:
        x0, = minibatch(data, batch_size, generator)
        return continuous_dsm_loss(denoiser, x0, weighting=weighting, generator=generator)

    result = fit(denoiser.net, batch_loss, steps=steps, lr=lr, warmup=warmup, grad_clip=grad_clip,
                 ema_decay=ema_decay, seed=seed, progress=progress, desc="score matching")
    result.denoiser = denoiser.replace(net=result.ema_model)
    return result


def train_classifier(classifier: nn.Module, data: torch.Tensor, labels: torch.Tensor, process, *, steps: int,
                     batch_size: int = 256, lr: float = 3e-3, max_t: int | None = None, ema_decay: float = 0.995,
                     seed: int = 0, progress: bool = True) -> TrainResult:
    """Train a noise-conditional classifier in place on noisy data (Dhariwal & Nichol 2021, Sec. 4).

    Args:
        data: ``(N, D)`` clean points; labels: ``(N,)`` integer classes.
        process: the schedule of the diffusion model it will guide.
        max_t: largest noise step seen in training (default T).
    """
    check_tensor("data", data, floating=True, ndim_min=2, finite=True)
    num_classes = getattr(classifier, "num_classes", int(labels.max()) + 1 if isinstance(labels, torch.Tensor) else 0)
    labels = check_labels("labels", labels, data.shape[0], num_classes, allow_null=False)
    batch_size = check_int("batch_size", batch_size, 1)
    device = next(classifier.parameters()).device
    data, labels = data.to(device), labels.to(device)

    def batch_loss(generator: torch.Generator) -> torch.Tensor:
        x0, y = minibatch(data, batch_size, generator, labels)
        return classifier_loss(classifier, process, x0, y, max_t=max_t, generator=generator)

    return fit(classifier, batch_loss, steps=steps, lr=lr, ema_decay=ema_decay, seed=seed, progress=progress,
               desc="training classifier")
