"""Training losses. Every loss returns per-example values of shape ``(B,)``; the caller reduces."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .denoiser import Coefficients, DenoiserBase, training_target
from .forward import q_sample, randn_like
from .validation import check_choice, check_int, check_labels, check_tensor


def diffusion_loss(denoiser: DenoiserBase, x0: torch.Tensor, *, t: int | float | torch.Tensor | None = None,
                   noise: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """‖net(x_t, t) − target‖², averaged over each example's dimensions: shape ``(B,)``.

    With a network that predicts ε this is L_simple (Ho et al. 2020, Eq. 14, Algorithm 1): t drawn
    by the process (uniform steps 1..T for a schedule, U(t_end, 1) in continuous time), ε ~ N(0, I),
    x_t = s x_0 + σ ε, target ε. A network predicting x₀, v, the score or the velocity regresses that
    target instead (:func:`~diffusion_lab.denoiser.training_target`), which reweights the terms over t;
    with a flow path and ``predicts="velocity"`` this is conditional flow matching (Lipman et al. 2023,
    Eq. 9; Liu et al. 2023, Eq. 1 for the linear path, target ε − x_0).

    Args:
        denoiser: the :class:`~diffusion_lab.Denoiser` being trained (its network, process, parameterization).
        x0: clean data, shape ``(B, ...)``.
        t: times to use (default: drawn from ``generator``).
        noise: the ε to use (default: drawn from ``generator``); a fixed coupling for reflow.
        labels: class labels ``(B,)`` for a class-conditional network (the null label K allowed).
    """
    check_tensor("x0", x0, floating=True, ndim_min=2)
    process = denoiser.process
    if t is None:
        t = process.sample_time(x0.shape[0], generator, x0.device)
    t = process.check_time(t, x0, **({"min_t": 1} if process.discrete else {}))
    if noise is None:
        noise = randn_like(x0, generator)
    x_t = q_sample(process, x0, t, noise=noise)
    c = Coefficients.at(process, t, x0, derivatives=denoiser.predicts == "velocity")
    if labels is not None and denoiser.num_classes is not None:  # (a wrapped network, e.g. DDP, checks its own)
        labels = check_labels("labels", labels, x0.shape[0], denoiser.num_classes)
    target = training_target(denoiser.predicts, x0, noise, c)
    return (denoiser.raw(x_t, t, labels) - target).pow(2).flatten(1).mean(1)  # (B,)


def classifier_loss(classifier: torch.nn.Module, process, x0: torch.Tensor, y: torch.Tensor, *,
                    max_t: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Cross-entropy of a noise-conditional ``classifier(x_t, t)`` on x_t ~ q(x_t | x_0), t ~ Uniform{1..max_t}: ``(B,)``.

    ``max_t`` defaults to T; ``max_t=1`` trains an (almost) clean-data classifier (Dhariwal & Nichol 2021, Sec. 4).
    """
    max_t = process.T if max_t is None else check_int("max_t", max_t, 1, process.T)
    t = torch.randint(1, max_t + 1, (x0.shape[0],), generator=generator, device=x0.device)
    x_t = q_sample(process, x0, t, generator=generator)
    return F.cross_entropy(classifier(x_t, t), y, reduction="none")  # (B,)


#: The weightings λ(t) of :func:`continuous_dsm_loss`.
DSM_WEIGHTINGS = ("sigma2", "likelihood", "none")


def continuous_dsm_loss(denoiser: DenoiserBase, x0: torch.Tensor, *, weighting: str = "sigma2",
                        t: float | torch.Tensor | None = None, noise: torch.Tensor | None = None,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Continuous-time denoising score matching, λ(t) ‖ŝ(x_t, t) − ∇ log q(x_t | x_0)‖²: shape ``(B,)``.

    Song et al. (2021), Eq. 7: t ~ U(t_end, 1), x_t = s(t) x_0 + σ(t) ε, and the score of the
    Gaussian transition is ∇ log q(x_t | x_0) = −(x_t − s x_0) / σ² = −ε / σ. The squared error is
    averaged over each example's dimensions (as :func:`diffusion_loss`). ŝ is the denoiser's score,
    whatever its network predicts. Weightings λ(t):

    * ``"sigma2"``: λ = σ(t)², ∝ 1 / E‖∇ log q(x_t | x_0)‖² (Song et al. 2021, Sec. 3.3). With ŝ = −ε̂ / σ
      the loss is ‖ε̂ − ε‖², i.e. :func:`diffusion_loss` of an ε-network (L_simple in continuous time);
    * ``"likelihood"``: λ = g(t)², for which the time integral bounds the negative log-likelihood
      (Song et al. 2021b, Thm. 1; needs an :class:`~diffusion_lab.SDE`);
    * ``"none"``: λ = 1.

    Args:
        denoiser: a :class:`~diffusion_lab.Denoiser` on a continuous-time process.
        x0: clean data ``(B, ...)``.
        t: times ``(B,)`` or one number (default: drawn from ``generator``).
        noise: the ε to use (default: drawn from ``generator``).
    """
    check_tensor("x0", x0, floating=True, ndim_min=2)
    check_choice("weighting", weighting, DSM_WEIGHTINGS)
    process = denoiser.process
    if process.discrete:
        raise ValueError(f"continuous_dsm_loss needs a continuous-time process (an SDE or a path), got {process!r}; "
                         f"for a schedule use diffusion_loss")
    if weighting == "likelihood" and not hasattr(process, "diffusion"):
        raise ValueError(f"weighting='likelihood' needs an SDE (its g(t)), got {process!r}")
    if t is None:
        t = process.sample_time(x0.shape[0], generator, x0.device)
    t = process.check_time(t, x0)
    if noise is None:
        noise = randn_like(x0, generator)
    elif noise.shape != x0.shape:
        raise ValueError(f"noise must be shaped like x0 {tuple(x0.shape)}, got {tuple(noise.shape)}")
    x_t = q_sample(process, x0, t, noise=noise)
    c = Coefficients.at(process, t, x0)
    score_hat = denoiser.predict(x_t, t).score
    # ∇ log q(x_t | x_0) = −ε / σ (Song et al. 2021, Eq. 7).
    error = (score_hat + noise / c.sigma).pow(2).flatten(1).mean(1)  # (B,)
    if weighting == "sigma2":
        weight = process.scale_std(t)[1] ** 2
    elif weighting == "likelihood":
        weight = process.diffusion(t) ** 2
    else:
        weight = torch.ones_like(t)
    return weight.to(error.dtype) * error
