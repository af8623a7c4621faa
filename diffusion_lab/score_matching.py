"""Score-matching losses: fit a model s_θ(x) ≈ ∇_x log p(x) from samples of p alone.

=================================  =====================================================  ============
function                           per-example objective (up to a constant)                 paper
=================================  =====================================================  ============
``explicit_score_matching_loss``   tr(∇_x s_θ(x)) + ½ ‖s_θ(x)‖²                            Hyvärinen 2005, Eq. 4
``sliced_score_matching_loss``     vᵀ ∇_x s_θ(x) v + ½ (vᵀ s_θ(x))²,  v ~ N(0, I)          Song et al. 2019, Eq. 7
``denoising_score_matching_loss``  ½ σ² ‖s_θ(x + σz, σ) + z/σ‖²                           Vincent 2011; Song & Ermon 2019, Eq. 5
=================================  =====================================================  ============

Every loss returns per-example values of shape ``(B,)`` summed over the data dimensions (the trace
is a sum); the caller reduces. The explicit and sliced losses differentiate the model with respect
to its input with ``create_graph=True``, so their mean can be back-propagated to the weights.
The explicit loss's trace costs D backward passes; ``trace="hutchinson"`` replaces it with
Hutchinson's one-pass estimate vᵀ(∇_x s_θ)v with a Rademacher v (Hutchinson 1989).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .validation import check_choice, check_tensor
from .broadcast import expand_like
from .forward import randn_like

TRACES = ("exact", "hutchinson")


def _with_input_grad(x: torch.Tensor) -> torch.Tensor:
    check_tensor("x", x)
    if x.ndim < 2:
        raise ValueError(f"x must have shape (B, ...), got {tuple(x.shape)}")
    return x.detach().requires_grad_(True)


def _model_output(score_model, x: torch.Tensor, *args) -> torch.Tensor:
    score = score_model(x, *args)
    if score.shape != x.shape:
        raise ValueError(f"the score model must return a tensor shaped like x, {tuple(x.shape)}, got {tuple(score.shape)}")
    return score


def explicit_score_matching_loss(
    score_model: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    trace: str = "exact",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Hyvärinen's implicit score-matching objective tr(∇_x s_θ(x)) + ½‖s_θ(x)‖² per example (Hyvärinen 2005, Eq. 4).

    Equals ½ E‖s_θ − ∇ log p‖² minus a constant independent of θ. ``trace="exact"`` builds the
    Jacobian's diagonal with one backward pass per dimension; ``"hutchinson"`` uses one pass and a
    Rademacher probe from ``generator``. Returns ``(B,)``.
    """
    check_choice("trace", trace, TRACES)
    with torch.enable_grad():
        x = _with_input_grad(x)
        score = _model_output(score_model, x)
        flat = score.flatten(1)  # (B, D)
        if trace == "hutchinson":
            v = torch.randint(0, 2, x.shape, generator=generator, device=x.device).to(x.dtype) * 2 - 1
            grad, = torch.autograd.grad((score * v).sum(), x, create_graph=True)
            tr = (grad * v).flatten(1).sum(1)  # vᵀ (∂s/∂x) v
        else:
            tr = torch.zeros(x.shape[0], dtype=score.dtype, device=x.device)
            for d in range(flat.shape[1]):
                grad, = torch.autograd.grad(flat[:, d].sum(), x, create_graph=True)
                tr = tr + grad.flatten(1)[:, d]  # ∂s_d / ∂x_d
        return tr + 0.5 * flat.pow(2).sum(1)


def sliced_score_matching_loss(
    score_model: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Sliced score matching vᵀ ∇_x s_θ(x) v + ½ (vᵀ s_θ(x))² with one v ~ N(0, I) per example
    (Song et al. 2019, Eq. 7): score matching along random directions, one backward pass. Returns ``(B,)``."""
    with torch.enable_grad():
        x = _with_input_grad(x)
        score = _model_output(score_model, x)
        v = randn_like(x, generator)
        projected = (score * v).flatten(1).sum(1)  # vᵀ s, (B,)
        grad, = torch.autograd.grad(projected.sum(), x, create_graph=True)
        return (grad * v).flatten(1).sum(1) + 0.5 * projected.pow(2)


def denoising_score_matching_loss(
    score_model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    sigma: float | torch.Tensor,
    *,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Denoising score matching with weight λ(σ) = σ²: ½ σ² ‖s_θ(x̃, σ) + z/σ‖² with x̃ = x_0 + σ z.

    The target −z/σ = ∇_x̃ log N(x̃; x_0, σ² I) is the score of the perturbation kernel; its
    minimiser is the score of the noised density p_σ = p ∗ N(0, σ² I) (Vincent 2011). With σ drawn
    per example from NCSN's levels this is Song & Ermon 2019, Eq. 6.

    Args:
        score_model: ``(x̃, σ) -> score`` with σ of shape ``(B,)``.
        x0: clean data ``(B, ...)``.
        sigma: a float or per-example levels ``(B,)``.

    Returns:
        Tensor of shape ``(B,)``.
    """
    check_tensor("x0", x0)
    sigma = torch.as_tensor(sigma, dtype=x0.dtype, device=x0.device)
    if torch.any(sigma <= 0):
        raise ValueError("sigma must be positive")
    if sigma.ndim == 0:
        sigma = sigma.expand(x0.shape[0])
    z = randn_like(x0, generator) if noise is None else noise
    s = expand_like(sigma, x0)
    score = _model_output(score_model, x0 + s * z, sigma)
    return 0.5 * (s * score + z).flatten(1).pow(2).sum(1)  # ½ σ² ‖score + z/σ‖²
