"""The variational bound of DDPM, term by term, in nats per example (Ho et al. 2020, Eq. 5).

    −log p_θ(x_0) ≤ L = L_T + Σ_{t=2}^T L_{t−1} + L_0
    L_T     = KL(q(x_T | x_0) ‖ N(0, I))                                   prior matching
    L_{t−1} = E_q KL(q(x_{t−1} | x_t, x_0) ‖ p_θ(x_{t−1} | x_t))             denoising matching
    L_0     = −E_q log p_θ(x_0 | x_1)                                      reconstruction

The reverse step is p_θ(x_{t−1} | x_t) = N(μ_θ(x_t, t), ω_t² I) with μ_θ = μ̃_t(x_t, x̂_0(x_t, ε̂))
(the posterior mean at the model's x̂_0, which is Ho et al.'s Eq. 11; they write ω_t² as σ_t², which
the book keeps for the noise std of x_t), and ω_t² fixed, interpolated or learned
(``variance=``, as in :mod:`diffusion_lab.variances`). The decoder p_θ(x_0 | x_1)
is a Gaussian N(μ_θ(x_1, 1), ω_1² I) for continuous data, or its discretised version for data on a
grid of bins (8-bit images; Ho et al. 2020, Eq. 13). Every function returns per-example values
of shape ``(B,)``; the expectations over x_t are one-sample Monte Carlo estimates, so average
over examples (and report the standard error) as the caller.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .denoiser import DenoiserBase, check_denoiser
from .forward import q_mean_std, q_posterior, q_sample, q_step_sample, randn_like
from .samplers.discrete import reverse_mean_variance
from .schedules import NoiseSchedule
from .validation import check_choice, check_int, check_tensor

DECODERS = ("gaussian", "discretized")
FIXED_VARIANCES = ("beta", "beta_tilde")


def reverse_variance(schedule: NoiseSchedule, variance: str = "beta") -> np.ndarray:
    """ω_t² of the reverse steps, shape ``(T + 1,)`` (entry 0 unused).

    ``"beta"``: ω_t² = β_t. ``"beta_tilde"``: ω_t² = β̃_t, except ω_1² = β̃_2 because β̃_1 = 0
    would give the decoder no width (the clipping of Ho et al.'s code, also in Nichol & Dhariwal 2021).
    """
    check_choice("fixed reverse variance", variance, FIXED_VARIANCES)
    if variance == "beta":
        return np.array(schedule.beta)
    out = np.array(schedule.beta_tilde)
    if schedule.T < 2:
        raise ValueError("the 'beta_tilde' reverse variance needs T >= 2 (sigma_1^2 is set to beta_tilde_2)")
    out[1] = out[2]
    return out


def gaussian_kl(mean1: torch.Tensor, var1: torch.Tensor, mean2: torch.Tensor, var2: torch.Tensor) -> torch.Tensor:
    """Elementwise KL(N(mean1, var1) ‖ N(mean2, var2)) = ½[log(var2/var1) + (var1 + (mean1 − mean2)²)/var2 − 1].

    Arguments broadcast; sum the result over a point's coordinates for isotropic Gaussians.
    """
    return 0.5 * (torch.log(var2) - torch.log(var1) + (var1 + (mean1 - mean2) ** 2) / var2 - 1.0)


def gaussian_nll(x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """−log N(x; mean, var I), summed over each example's coordinates: shape ``(B,)``."""
    nll = 0.5 * (torch.log(2 * math.pi * var) + (x - mean) ** 2 / var)
    return nll.expand_as(x).flatten(1).sum(1)


def discretized_gaussian_nll(
    x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, *, bin_width: float, low: float = -1.0, high: float = 1.0
) -> torch.Tensor:
    """−log P(x) where each coordinate's probability is N(mean, var)'s mass on x's bin (Ho et al. 2020, Eq. 13).

    The data lie on the grid low, low + bin_width, ..., high; the bin of x is
    [x − bin_width/2, x + bin_width/2], widened to −∞ at ``low`` and +∞ at ``high`` so the
    probabilities of the grid points sum to 1. Summed over each example's coordinates: ``(B,)``.
    """
    if bin_width <= 0:
        raise ValueError(f"bin_width must be positive, got {bin_width}")
    std = var.sqrt()
    upper = ((x + bin_width / 2 - mean) / std).double()
    lower = ((x - bin_width / 2 - mean) / std).double()
    log_cdf_upper = torch.special.log_ndtr(upper)
    log_sf_lower = torch.special.log_ndtr(-lower)  # log(1 − Φ(lower))
    # log(Φ(upper) − Φ(lower)), computed on the side of the distribution where it is accurate: for a bin
    # right of the mean as Φ(−lower) − Φ(−upper). One expression on flipped arguments rather than a
    # where() of two, whose unused branch (log 0 in a saturated tail) would turn gradients into NaN.
    right = lower > 0
    a, b = torch.where(right, -upper, lower), torch.where(right, -lower, upper)  # a < b ≤ 0 when right
    log_b = torch.special.log_ndtr(b)
    mid = log_b + torch.log1p(-torch.exp(torch.special.log_ndtr(a) - log_b))
    at_low = x.double() <= low + bin_width / 2
    at_high = x.double() >= high - bin_width / 2
    log_p = torch.where(at_low, log_cdf_upper, torch.where(at_high, log_sf_lower, mid))
    return (-log_p).flatten(1).sum(1).to(x.dtype)


def p_mean(denoiser: DenoiserBase, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """μ_θ(x_t, t) = μ̃_t(x_t, x̂_0), the posterior mean at the model's x̂_0: with an ε-network
    (1/√α_t)(x_t − β_t/√(1 − ᾱ_t) ε̂) (Ho et al. 2020, Eq. 11). It is DDPM's step without its noise."""
    return reverse_mean_variance(denoiser, x_t, t, t - 1)[0]


def prior_term(schedule: NoiseSchedule, x0: torch.Tensor) -> torch.Tensor:
    """L_T = KL(q(x_T | x_0) ‖ N(0, I)) in closed form: shape ``(B,)``."""
    mean, std = q_mean_std(schedule, x0, schedule.T)
    return gaussian_kl(mean, std**2, torch.zeros_like(mean), torch.ones_like(mean)).flatten(1).sum(1)


def denoising_term(
    denoiser: DenoiserBase,
    x0: torch.Tensor,
    t: int | torch.Tensor,
    *,
    variance: str | float = "beta",
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """L_{t−1} = KL(q(x_{t−1} | x_t, x_0) ‖ p_θ(x_{t−1} | x_t)) at one draw x_t ~ q(x_t | x_0), for t ≥ 2: ``(B,)``.

    Both are isotropic Gaussians, so the KL is the scalar formula summed over coordinates; its
    expectation over x_t is the weighted ε-MSE of Ho et al. (2020), Eq. 12, plus a constant.
    """
    schedule = _schedule(denoiser)
    t = schedule.timesteps(t, x0.shape[0], x0.device, min_t=2)
    x_t = q_sample(schedule, x0, t, noise=noise, generator=generator)
    mu_tilde, beta_tilde = q_posterior(schedule, x_t, x0, t)
    mean, var = reverse_mean_variance(denoiser, x_t, t, t - 1, variance)
    return gaussian_kl(mu_tilde, beta_tilde, mean, var).flatten(1).sum(1)


def decoder_nll(
    x0: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, decoder: str, bin_width: float | None
) -> torch.Tensor:
    """−log p_θ(x_0 | x_1) for a decoder N(mean, var) (``"gaussian"``) or its discretised version: ``(B,)``."""
    check_choice("decoder", decoder, DECODERS)
    if decoder == "gaussian":
        return gaussian_nll(x0, mean, var)
    if bin_width is None:
        raise ValueError("the 'discretized' decoder needs bin_width (e.g. 2/255 for 8-bit images in [-1, 1])")
    return discretized_gaussian_nll(x0, mean, var, bin_width=bin_width)


def reconstruction_term(
    denoiser: DenoiserBase,
    x0: torch.Tensor,
    *,
    variance: str | float = "beta",
    decoder: str = "gaussian",
    bin_width: float | None = None,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """L_0 = −log p_θ(x_0 | x_1) at one draw x_1 ~ q(x_1 | x_0): ``(B,)``.

    ``decoder="gaussian"``: the density N(x_0; μ_θ(x_1, 1), ω_1² I), for continuous data.
    ``decoder="discretized"``: the probability of x_0's bin of width ``bin_width`` on [−1, 1].
    """
    schedule = _schedule(denoiser)
    t = schedule.timesteps(1, x0.shape[0], x0.device)
    x_1 = q_sample(schedule, x0, t, noise=noise, generator=generator)
    return decoder_nll(x0, *reverse_mean_variance(denoiser, x_1, t, t - 1, variance), decoder, bin_width)


@dataclass(frozen=True)
class ElboTerms:
    """The terms of the bound per example.

    Attributes:
        terms: shape ``(T + 1, B)``; row k is L_k: row 0 the reconstruction L_0, rows 1..T−1 the
            denoising terms L_{t−1} at t = k + 1, row T the prior term L_T.
    """

    terms: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        """The bound L = Σ_k L_k per example, ``(B,)``: an upper bound on −log p_θ(x_0) in expectation."""
        return self.terms.sum(0)

    @property
    def elbo(self) -> torch.Tensor:
        """−L per example, ``(B,)``."""
        return -self.total


@torch.no_grad()
def elbo_terms(
    denoiser: DenoiserBase,
    x0: torch.Tensor,
    *,
    variance: str | float = "beta",
    decoder: str = "gaussian",
    bin_width: float | None = None,
    generator: torch.Generator | None = None,
) -> ElboTerms:
    """Every term L_0, ..., L_T of the bound for each example of ``x0`` (one x_t draw per term).

    Costs T calls of the denoiser on the whole batch, every example at the same step t.
    """
    check_tensor("x0", x0, floating=True, ndim_min=2)
    schedule = _schedule(denoiser)
    rows = [reconstruction_term(denoiser, x0, variance=variance, decoder=decoder, bin_width=bin_width,
                                generator=generator)]
    for step in range(2, schedule.T + 1):
        rows.append(denoising_term(denoiser, x0, step, variance=variance, generator=generator))
    rows.append(prior_term(schedule, x0))
    return ElboTerms(torch.stack(rows))  # (T + 1, B)


@torch.no_grad()
def direct_bound(
    denoiser: DenoiserBase,
    x0: torch.Tensor,
    *,
    variance: str | float = "beta",
    decoder: str = "gaussian",
    bin_width: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A direct one-trajectory estimate of L: log q(x_{1:T} | x_0) − log p_θ(x_{0:T}) at x_{1:T} ~ q: ``(B,)``.

    Uses only the definitions (Ho et al. 2020, Eq. 3): the forward chain step by step
    (Σ_t log q(x_t | x_{t−1})), the prior N(0, I), the reverse steps and the decoder; none of the
    decomposition into KL terms. Its expectation equals that of :func:`elbo_terms`' total.
    """
    check_tensor("x0", x0, floating=True, ndim_min=2)
    schedule = _schedule(denoiser)
    B = x0.shape[0]
    log_q = torch.zeros(B, dtype=x0.dtype, device=x0.device)
    log_p = torch.zeros_like(log_q)
    x_prev = x0
    for step in range(1, schedule.T + 1):
        t = schedule.timesteps(step, B, x0.device)
        noise = randn_like(x0, generator)
        x_t = q_step_sample(schedule, x_prev, t, noise=noise)
        # Forward step: log N(x_t; √α_t x_{t−1}, β_t I).
        log_q -= gaussian_nll(x_t, schedule.gather("alpha", t, x0).sqrt() * x_prev, schedule.gather("beta", t, x0))
        # Reverse step (the decoder at t = 1).
        mean, sigma2 = reverse_mean_variance(denoiser, x_t, t, t - 1, variance)
        if step == 1:
            log_p -= decoder_nll(x0, mean, sigma2, decoder, bin_width)
        else:
            log_p -= gaussian_nll(x_prev, mean, sigma2)
        x_prev = x_t
    # Prior: log N(x_T; 0, I).
    log_p -= gaussian_nll(x_prev, torch.zeros_like(x_prev), torch.ones_like(x_prev))
    return log_q - log_p


@torch.no_grad()
def stratified_bound(
    denoiser: DenoiserBase,
    x0: torch.Tensor,
    *,
    strata: int = 50,
    variance: str | float = "beta",
    decoder: str = "gaussian",
    bin_width: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """An unbiased estimate of the bound L per example from ``strata`` + 1 calls instead of T: ``(B,)``.

    L_0 and L_T are computed as in :func:`elbo_terms`; the denoising terms t = 2..T are split into
    ``strata`` contiguous blocks of (nearly) equal size n_k, and each example draws one t uniformly
    in each block: Σ_k n_k L_{t_k−1} has expectation Σ_t L_{t−1} (stratified sampling, whose variance
    is at most that of drawing the same number of t's uniformly).
    """
    check_tensor("x0", x0, floating=True, ndim_min=2)
    schedule = _schedule(denoiser)
    strata = check_int("strata", strata, 1, max(1, schedule.T - 1))
    B = x0.shape[0]
    total = reconstruction_term(denoiser, x0, variance=variance, decoder=decoder, bin_width=bin_width,
                                generator=generator) + prior_term(schedule, x0)
    edges = np.linspace(2, schedule.T + 1, strata + 1).round().astype(int)  # block k: edges[k] ≤ t < edges[k+1]
    for low, high in zip(edges[:-1], edges[1:]):
        t = torch.randint(int(low), int(high), (B,), generator=generator).to(x0.device)
        total = total + (int(high) - int(low)) * denoising_term(denoiser, x0, t, variance=variance,
                                                                generator=generator)
    return total


def bits_per_dim(nats: torch.Tensor, dims: int) -> torch.Tensor:
    """Convert per-example nats (e.g. the bound L on −log p) to bits per dimension: nats / (D ln 2)."""
    return nats / (check_int("dims", dims, 1) * math.log(2.0))


def _schedule(denoiser: DenoiserBase) -> NoiseSchedule:
    """The bound is DDPM's, on a discrete schedule."""
    process = check_denoiser(denoiser).process
    if not isinstance(process, NoiseSchedule):
        raise ValueError(f"the variational bound of DDPM needs a denoiser on a discrete schedule, got {process!r}")
    return process
