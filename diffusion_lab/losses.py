"""Training losses. Every loss returns per-example values of shape ``(B,)``; the caller reduces."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .broadcast import expand_like
from .denoiser import Coefficients, DenoiserBase, prediction_from_output, training_target
from .elbo import decoder_nll, gaussian_kl
from .forward import posterior_coefficients, q_sample, randn_like
from .validation import check_choice, check_float, check_int, check_labels, check_tensor
from .variances import step_variance


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


def _noised(denoiser: DenoiserBase, x0: torch.Tensor, t, noise, generator):
    """Validated steps t ``(B,)`` (drawn if None), ε and x_t of a discrete schedule, for the bound's losses."""
    process = denoiser.process
    if not process.discrete:
        raise ValueError(f"the variational bound's losses need a discrete schedule, got {process!r}")
    if t is None:
        t = process.sample_time(x0.shape[0], generator, x0.device)
    t = process.check_time(t, x0, min_t=1)
    if noise is None:
        noise = randn_like(x0, generator)
    return t, noise, q_sample(process, x0, t, noise=noise)


def _bound_term(denoiser: DenoiserBase, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, output: torch.Tensor,
                nu: torch.Tensor, decoder: str, bin_width: float | None) -> torch.Tensor:
    """T · L_{t−1} per dimension (nats), from the network's output and ν at x_t: ``(B,)``.

    L_{t−1} is the KL of the forward posterior to N(μ_θ, ω²) for t ≥ 2 and the decoder's −log p_θ(x_0 | x_1)
    at t = 1; with t uniform on 1..T, T · L_{t−1} is an unbiased estimate of Σ_t L_{t−1} = L − L_T.
    """
    process = denoiser.process
    t_prev = t - 1
    c = Coefficients.at(process, t, x0)
    x0_hat = prediction_from_output(denoiser.predicts, output, x_t, c).x0
    coef_xt, coef_x0, var_tilde = (expand_like(v, x0).to(x0.dtype) for v in posterior_coefficients(process, t, t_prev))
    mean = coef_xt * x_t + coef_x0 * x0_hat
    var = step_variance(process, t, t_prev, "learned", x0, nu)
    mu_tilde = coef_xt * x_t + coef_x0 * x0
    # β̃ = 0 at t = 1, where the decoder term is used instead; the floor keeps the unused branch finite.
    kl = gaussian_kl(mu_tilde, var_tilde.clamp_min(torch.finfo(x0.dtype).tiny), mean, var).flatten(1).mean(1)
    nll = decoder_nll(x0, mean, var, decoder, bin_width) / x0[0].numel()
    return process.T * torch.where(t == 1, nll, kl)


def _variance_network(denoiser: DenoiserBase) -> None:
    if not getattr(denoiser, "learns_variance", False):
        raise ValueError("the hybrid and bound losses train a reverse variance: the network must learn it "
                         "(net.learns_variance = True, e.g. TimeMLP(learns_variance=True) or UNet(..., learns_variance=True))")


def hybrid_loss(denoiser: DenoiserBase, x0: torch.Tensor, *, vlb_weight: float = 0.001,
                t: torch.Tensor | None = None, noise: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                decoder: str = "gaussian", bin_width: float | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """L_hybrid = L_simple + λ L_vlb (Nichol & Dhariwal 2021, Eq. 16), per example: ``(B,)``.

    One network call gives ε̂ (or what the network predicts) and ν. L_simple is :func:`diffusion_loss`'s
    squared error; L_vlb is T · L_{t−1} per dimension at the same t (an unbiased estimate of the bound
    without its constant L_T), computed with the mean **detached**, so that L_vlb trains only the
    variance and L_simple alone trains the mean (their Sec. 3.1). λ = ``vlb_weight`` = 0.001 as in the paper.

    Args:
        decoder, bin_width: the decoder of the t = 1 term, as in :func:`~diffusion_lab.elbo_terms`
            (``"discretized"`` with the data's bin width for images).
    """
    check_tensor("x0", x0, floating=True, ndim_min=2)
    _variance_network(denoiser)
    vlb_weight = check_float("vlb_weight", vlb_weight, 0.0)
    t, noise, x_t = _noised(denoiser, x0, t, noise, generator)
    if labels is not None and denoiser.num_classes is not None:
        labels = check_labels("labels", labels, x0.shape[0], denoiser.num_classes)
    output, nu = denoiser.network_output(x_t, t, labels)
    target = training_target(denoiser.predicts, x0, noise, Coefficients.at(denoiser.process, t, x0))
    simple = (output - target).pow(2).flatten(1).mean(1)
    vlb = _bound_term(denoiser, x0, x_t, t, output.detach(), nu, decoder, bin_width)
    return simple + vlb_weight * vlb


def vlb_loss(denoiser: DenoiserBase, x0: torch.Tensor, *, t: torch.Tensor | None = None,
             noise: torch.Tensor | None = None, labels: torch.Tensor | None = None, decoder: str = "gaussian",
             bin_width: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """L_vlb alone: T · L_{t−1} per dimension (nats), training mean and variance together: ``(B,)``.

    With t uniform this estimates the bound (minus L_T) without bias but with a large variance over t;
    :class:`~diffusion_lab.ImportanceTimeSampler` draws t where the terms are large and reweights
    (Nichol & Dhariwal 2021, Eq. 18).
    """
    check_tensor("x0", x0, floating=True, ndim_min=2)
    _variance_network(denoiser)
    t, noise, x_t = _noised(denoiser, x0, t, noise, generator)
    output, nu = denoiser.network_output(x_t, t, labels)
    return _bound_term(denoiser, x0, x_t, t, output, nu, decoder, bin_width)


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
