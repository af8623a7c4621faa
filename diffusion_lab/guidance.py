"""Guidance: wrappers that turn models into guided ε-models ``(x_t, t) -> ε̃`` for any sampler.

Bayes' rule for the score of the class-conditional distribution at every noise level,

    ∇ log q_t(x_t | y) = ∇ log q_t(x_t) + ∇ log q_t(y | x_t),

and ε̂ = −√(1 − ᾱ_t) · score give the two wrappers:

* **classifier guidance** (Dhariwal & Nichol 2021, Algorithm 2 and Eq. 14): an unconditional
  ε-model plus the gradient of a noise-conditional classifier p_φ(y | x_t, t), scaled by s,

      ε̃ = ε̂(x_t) − s · √(1 − ᾱ_t) · ∇_x log p_φ(y | x_t, t),

  which targets p(x) p(y | x)^s; s = 1 is the true conditional p(x | y).

* **classifier-free guidance** (Ho & Salimans 2022, Eq. 6): one network trained with label
  dropout gives both ε̂(x_t, y) and ε̂(x_t, ∅), and

      ε̃ = (1 + w) · ε̂(x_t, y) − w · ε̂(x_t, ∅),

  which targets p(x | y) p(y | x)^w with the *implicit* classifier p(y | x) ∝ p(x | y) / p(x).
  w = 0 is the plain conditional model; w corresponds to classifier guidance with s = 1 + w.
  (Some libraries write the same rule as ε̂(∅) + γ (ε̂(y) − ε̂(∅)) with γ = 1 + w.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from ._validation import check_tensor
from .metrics import energy_distance
from .samplers import ddim_sample
from .schedules import NoiseSchedule


def _labels_for(y: int | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The requested labels as a long tensor (B,) on x's device."""
    if isinstance(y, bool):
        raise TypeError("y must be an int class or an integer tensor of shape (B,)")
    if isinstance(y, int):
        return torch.full((x.shape[0],), y, dtype=torch.long, device=x.device)
    check_tensor("y", y)
    if y.dtype.is_floating_point or y.shape != (x.shape[0],):
        raise ValueError(f"y must be an integer tensor of shape ({x.shape[0]},), got {tuple(y.shape)}")
    return y.to(x.device).long()


def _check_scale(name: str, value: float) -> float:
    if not value >= 0:
        raise ValueError(f"the guidance scale {name} must be >= 0, got {value}")
    return float(value)


class ClassifierFreeGuidance:
    """ε̃ = (1 + w) ε̂(x_t, t, y) − w ε̂(x_t, t, ∅) (Ho & Salimans 2022, Eq. 6), as an ε-model ``(x_t, t)``.

    Args:
        model: a class-conditional ε-model ``(x_t, t, y) -> ε̂`` where ``y=None`` means the null
            label ∅, e.g. ``TimeMLP(num_classes=K)`` trained with ``train(..., label_dropout=p)``.
        y: the requested class, an int or a tensor of shape ``(B,)``.
        w: guidance weight ≥ 0 (0: no guidance).
    """

    def __init__(self, model: Callable[..., torch.Tensor], y: int | torch.Tensor, w: float) -> None:
        self.model = model
        self.y = y
        self.w = _check_scale("w", w)

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        y = _labels_for(self.y, x_t)
        eps_cond = self.model(x_t, t, y)
        eps_uncond = self.model(x_t, t, None)
        return (1.0 + self.w) * eps_cond - self.w * eps_uncond


class ClassifierGuidance:
    """ε̃ = ε̂(x_t, t) − s √(1 − ᾱ_t) ∇_x log p_φ(y | x_t, t) (Dhariwal & Nichol 2021, Eq. 14).

    Args:
        eps_model: an unconditional ε-model ``(x_t, t) -> ε̂``.
        classifier: a noise-conditional classifier ``(x_t, t) -> logits`` of shape ``(B, K)``,
            e.g. :class:`~diffusion_lab.NoisyClassifier` trained with
            :func:`~diffusion_lab.train_classifier`.
        schedule: the schedule of both models.
        y: the requested class, an int or a tensor of shape ``(B,)``.
        scale: s ≥ 0; s = 1 samples p(x | y) when both models are exact.

    The gradient is taken with respect to a detached copy of x_t, under ``torch.enable_grad()``,
    so the wrapper works inside samplers that run under ``torch.no_grad()``.
    """

    def __init__(
        self,
        eps_model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        classifier: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        schedule: NoiseSchedule,
        y: int | torch.Tensor,
        scale: float = 1.0,
    ) -> None:
        self.eps_model = eps_model
        self.classifier = classifier
        self.schedule = schedule
        self.y = y
        self.scale = _check_scale("scale", scale)

    def classifier_grad(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """∇_x log p_φ(y | x_t, t), shaped like x_t."""
        y = _labels_for(self.y, x_t)
        with torch.enable_grad():
            x = x_t.detach().requires_grad_(True)
            log_probs = torch.log_softmax(self.classifier(x, t), dim=-1)  # (B, K)
            selected = log_probs[torch.arange(x.shape[0], device=x.device), y]  # (B,)
            (grad,) = torch.autograd.grad(selected.sum(), x)
        return grad

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        sqrt_one_minus_alpha_bar = (1.0 - self.schedule.gather("alpha_bar", t, x_t)).sqrt()  # (B, 1, ..., 1)
        return self.eps_model(x_t, t) - self.scale * sqrt_one_minus_alpha_bar * self.classifier_grad(x_t, t)


def mean_pairwise_distance(x: torch.Tensor) -> float:
    """E‖X − X′‖ over distinct pairs of the sample ``x`` (n, D): a diversity measure (the spread term
    of the energy distance)."""
    check_tensor("x", x)
    n = x.shape[0]
    if x.ndim != 2 or n < 2:
        raise ValueError(f"x must have shape (n, D) with n >= 2, got {tuple(x.shape)}")
    x = x.double()
    return float(torch.cdist(x, x).sum() / (n * (n - 1)))


def guidance_tradeoff(
    guided_model: Callable[[int, float], Callable[[torch.Tensor, torch.Tensor], torch.Tensor]],
    schedule: NoiseSchedule,
    judge: Callable[[torch.Tensor], torch.Tensor],
    scales: Sequence[float],
    *,
    num_classes: int,
    n_per_class: int,
    data_dim: int = 2,
    steps: int = 50,
    references: Sequence[torch.Tensor] | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, np.ndarray]:
    """Measure the guidance-scale trade-off: class accuracy against diversity, for each scale.

    For every scale and class k, draws ``n_per_class`` samples with deterministic DDIM from
    ``guided_model(k, scale)`` (e.g. ``lambda k, w: ClassifierFreeGuidance(net, k, w)``). The
    starting noise is the same for every scale (common random numbers), so differences between
    scales are not sampling noise.

    Args:
        judge: a separate classifier, ``x (n, D) -> logits (n, K)``, that decides each sample's class.
        data_dim: D, the size of each data point.
        references: optional true samples of each class, ``references[k]`` of shape ``(m, D)``.

    Returns:
        ``scale``; ``accuracy`` (fraction of samples the judge assigns to the requested class);
        ``diversity`` (mean within-class E‖X − X′‖, averaged over classes); with ``references``,
        ``energy`` (mean within-class energy distance to the true class sample). Arrays of shape
        ``(len(scales),)``.
    """
    x_T = torch.randn(num_classes, n_per_class, data_dim, generator=generator)  # (K, n, D)
    accuracy, diversity, energy = [], [], []
    for scale in scales:
        correct, spread, distance = 0, [], []
        for k in range(num_classes):
            samples = ddim_sample(guided_model(k, scale), schedule, x_T[k], steps=steps)  # (n, D)
            with torch.no_grad():
                correct += int((judge(samples).argmax(-1) == k).sum())
            spread.append(mean_pairwise_distance(samples))
            if references is not None:
                distance.append(energy_distance(samples, references[k]))
        accuracy.append(correct / (num_classes * n_per_class))
        diversity.append(float(np.mean(spread)))
        energy.append(float(np.mean(distance)) if distance else float("nan"))
    result = {"scale": np.array(scales, dtype=float), "accuracy": np.array(accuracy),
              "diversity": np.array(diversity)}
    if references is not None:
        result["energy"] = np.array(energy)
    return result
