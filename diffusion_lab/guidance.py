"""Classifier guidance: the one composable extra on top of a :class:`~diffusion_lab.Denoiser`.

Bayes' rule for the score of the class-conditional distribution at every noise level,

    ∇ log q_t(x_t | y) = ∇ log q_t(x_t) + ∇ log q_t(y | x_t),

with ε̂ = −σ · score gives **classifier guidance** (Dhariwal & Nichol 2021, Algorithm 2 and Eq. 14):
an unconditional denoiser plus the gradient of a noise-conditional classifier p_φ(y | x_t, t),
scaled by s,

    ε̃ = ε̂(x_t) − s · σ_t · ∇_x log p_φ(y | x_t, t),

which targets p(x) p(y | x)^s; s = 1 is the true conditional p(x | y).

**Classifier-free guidance** (Ho & Salimans 2022, Eq. 6) needs no classifier: it is an option of
the denoiser itself, ``Denoiser(net, process, labels=y, guidance=w)``, giving
ε̃ = (1 + w) ε̂(x_t, y) − w ε̂(x_t, ∅), which targets p(x | y) p(y | x)^w with the *implicit*
classifier p(y | x) ∝ p(x | y) / p(x); w corresponds to classifier guidance with s = 1 + w. (Some
libraries write the same rule as ε̂(∅) + γ (ε̂(y) − ε̂(∅)) with γ = 1 + w.)
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .denoiser import DenoiserBase, Prediction, check_denoiser
from .validation import check_float, check_labels


class ClassifierGuidance(DenoiserBase):
    """A denoiser steered by a noise-conditional classifier (Dhariwal & Nichol 2021, Eq. 14).

    Args:
        denoiser: an unconditional :class:`~diffusion_lab.Denoiser` (its process is used).
        classifier: ``(x_t, t) -> logits`` of shape ``(B, K)``, e.g. a
            :class:`~diffusion_lab.NoisyClassifier` trained with :func:`~diffusion_lab.train_classifier`.
        labels: the requested class, an int or a tensor of shape ``(B,)``.
        scale: s ≥ 0; s = 1 samples p(x | y) when both models are exact.

    The gradient is taken with respect to a detached copy of x_t, under ``torch.enable_grad()``,
    so guidance works inside samplers that run under ``torch.no_grad()``.
    """

    def __init__(self, denoiser: DenoiserBase, classifier: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 labels: int | torch.Tensor, scale: float = 1.0) -> None:
        self.denoiser = check_denoiser(denoiser)
        if not callable(classifier):
            raise TypeError(f"classifier must be a network (x_t, t) -> logits, got {type(classifier).__name__}")
        self.process, self.classifier, self.labels = denoiser.process, classifier, labels
        self.scale = check_float("scale", scale, 0.0)

    def classifier_grad(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """∇_x log p_φ(y | x_t, t), shaped like x_t (t already validated, ``(B,)``)."""
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            logits = self.classifier(x, t)  # (B, K)
            y = check_labels("labels", self.labels, x.shape[0], logits.shape[-1], allow_null=False).to(x.device)
            selected = torch.log_softmax(logits, dim=-1)[torch.arange(x.shape[0], device=x.device), y]  # (B,)
            (grad,) = torch.autograd.grad(selected.sum(), x)
        return grad

    def predict(self, x: torch.Tensor, t: int | float | torch.Tensor) -> Prediction:
        prediction = self.denoiser.predict(x, t)
        c = prediction.coef
        t = self.process.check_time(t, x)
        # Dhariwal & Nichol (2021), Eq. 14.
        eps = prediction.eps - self.scale * c.sigma * self.classifier_grad(x, t)
        return Prediction(x, (x - c.sigma * eps) / c.s, eps, c, nu=prediction.nu)
