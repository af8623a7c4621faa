"""Formulas that look right: slips that circulate in lecture notes and blog posts, each rejected by a check.

Every :class:`Slip` holds the correct form and a plausible wrong one as small functions with the same
signature, and one of the book's own checks (a Monte Carlo comparison with a closed form, a sampler
against an exact distribution, the minimiser of an objective against the true score). Running the
check on both shows the correct form passing and the wrong one failing, with the numbers. The
checks are seeded and take well under a second each on a CPU; tolerances are four standard errors
of the Monte Carlo estimate, or a stated relative error where the estimate is exact up to rounding.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .data2d import GaussianMixture
from .forward import q_posterior
from .metrics import energy_distance_to_mixture, mixture_mean_distance
from .schedules import cosine_schedule, linear_schedule


@dataclass(frozen=True)
class Verdict:
    """What a check found: the measured and the expected value, the tolerance, and whether it passed."""

    measured: float
    expected: float
    tolerance: float
    what: str

    @property
    def passed(self) -> bool:
        return abs(self.measured - self.expected) <= self.tolerance

    def __str__(self) -> str:
        verdict = "passes" if self.passed else "REJECTED"
        return f"{verdict}: {self.what} = {self.measured:.3g}, expected {self.expected:.3g} ± {self.tolerance:.2g}"


@dataclass(frozen=True)
class Slip:
    """A formula written right and wrong, and the check that tells them apart."""

    title: str
    right_tex: str
    wrong_tex: str
    check_name: str
    right: Callable
    wrong: Callable
    check: Callable[[Callable], Verdict]

    def run(self) -> tuple[Verdict, Verdict]:
        """(the check on the correct form, the check on the wrong form)."""
        return self.check(self.right), self.check(self.wrong)


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _mean_check(samples: torch.Tensor, expected: float, what: str) -> Verdict:
    return Verdict(float(samples.mean()), expected, 4 * float(samples.std()) / math.sqrt(samples.numel()), what)


# 1 and 4: the closed form q(x_t | x_0) against t forward steps -------------------------------------

def _closed_form_check(closed_form: Callable, t: int = 30, n: int = 20_000) -> Verdict:
    """Simulate t steps x_s = √α_s x_{s−1} + √β_s ε from x_0 = 1; the mean must be the closed form's mean coefficient."""
    schedule, generator = cosine_schedule(100), _generator(1)
    x = torch.ones(n, dtype=torch.float64)
    for s in range(1, t + 1):
        x = math.sqrt(schedule.alpha[s]) * x + math.sqrt(schedule.beta[s]) * torch.randn(n, generator=generator, dtype=torch.float64)
    mean_coef, _ = closed_form(schedule, t)
    return _mean_check(x, mean_coef, f"mean of x_{t} given x_0 = 1 after {t} steps")


def _right_closed_form(schedule, t):
    alpha_bar = math.prod(schedule.alpha[1:t + 1])  # ᾱ_t = ∏_{s=1}^{t} α_s
    return math.sqrt(alpha_bar), 1 - alpha_bar


def _alpha_bar_to_T(schedule, t):
    alpha_bar = math.prod(schedule.alpha[1:])  # the product runs to T
    return math.sqrt(alpha_bar), 1 - alpha_bar


def _sqrt_alpha_not_bar(schedule, t):
    return math.sqrt(schedule.alpha[t]), 1 - schedule.alpha[t]  # √α_t where √ᾱ_t belongs


# 2: DDIM's fresh-noise std ---------------------------------------------------------------------------

def _ddim_variance_check(noise_variance: Callable) -> Verdict:
    """At η = ½ the fresh noise's std must be half DDPM's posterior std (DDIM, Eq. 16: σ(η) = η √β̃)."""
    beta_tilde = float(cosine_schedule(100).beta_tilde[50])
    z = torch.randn(200_000, generator=_generator(2), dtype=torch.float64)
    noise = math.sqrt(noise_variance(0.5, beta_tilde)) * z
    ratio = float(noise.std()) / math.sqrt(beta_tilde)
    return Verdict(ratio, 0.5, 4 * 0.5 / math.sqrt(2 * z.numel()), "std of the fresh noise / √β̃ at η = ½")


# 3: the VP SDE's drift -------------------------------------------------------------------------------

def _vp_variance_check(drift: Callable) -> Verdict:
    """Euler–Maruyama on dx = f dt + √β dw from x_0 ~ N(0, 1): a variance-preserving SDE keeps Var x_1 = 1."""
    n, steps, generator = 10_000, 1000, _generator(3)
    x = torch.randn(n, generator=generator, dtype=torch.float64)
    for i in range(steps):
        dt, beta = 1 / steps, 0.1 + i / steps * (20.0 - 0.1)
        x = x + drift(x, beta) * dt + math.sqrt(beta * dt) * torch.randn(n, generator=generator, dtype=torch.float64)
    # Euler–Maruyama's O(Δt) bias: about ¼ Δt ∫ β² dt ≈ 0.03 here.
    return Verdict(float(x.var()), 1.0, 4 * math.sqrt(2 / n) + 0.05, "Var x_1 (0.05 allows the discretisation)")


# 5: a DDPM step with the posterior variance where its std belongs ---------------------------------

def _ddpm_sampler_check(add_noise: Callable) -> Verdict:
    """DDPM with the exact denoiser must reproduce the mixture: energy distance to its exact law ≈ 0."""
    ring, schedule, generator = GaussianMixture.ring(), linear_schedule(100), _generator(5)
    denoiser, n = ring.denoiser(schedule), 2000
    x = torch.randn(n, 2, generator=generator, dtype=torch.float64)
    for t in range(schedule.T, 0, -1):
        steps = torch.full((n,), t)
        mean, var = q_posterior(schedule, x, denoiser.x0(x, steps), steps)
        x = mean if t == 1 else add_noise(mean, var, torch.randn(n, 2, generator=generator, dtype=torch.float64))
    floor = mixture_mean_distance(ring) / n  # E|Y − Y'| / n bounds the estimator's spread
    return Verdict(energy_distance_to_mixture(x, ring), 0.0, 4 * floor, "energy distance of 2000 samples to the ring")


# 6: the ELBO's reconstruction term -----------------------------------------------------------------

def _elbo_check(reconstruction: Callable) -> Verdict:
    """The terms must add up to the direct one-trajectory estimate of the bound (chapter 2's check)."""
    from .elbo import direct_bound, elbo_terms, gaussian_nll, p_mean, reverse_variance
    from .forward import q_sample

    ring, schedule = GaussianMixture.ring(), cosine_schedule(20)
    denoiser, n = ring.denoiser(schedule), 2000
    x0 = ring.sample(n, generator=_generator(6)).double()
    terms = elbo_terms(denoiser, x0, generator=_generator(7)).terms
    t1 = torch.ones(n, dtype=torch.long)
    x1 = q_sample(schedule, x0, t1, generator=_generator(8))
    nll = gaussian_nll(x0, p_mean(denoiser, x1, t1), torch.tensor(reverse_variance(schedule)[1], dtype=torch.float64))
    total = terms[1:].sum(0) + reconstruction(nll)
    direct = direct_bound(denoiser, x0, generator=_generator(9))
    se = math.sqrt(float(total.var()) / n + float(direct.var()) / n)
    return Verdict(float(total.mean()), float(direct.mean()), 4 * se, "sum of the terms (nats) vs the direct estimate")


# 7: score-matching objectives: their minimiser must be the true score ----------------------------------

def _minimiser(objective: Callable[[float], torch.Tensor]) -> float:
    """The minimiser of a per-example objective quadratic in a, from its values at a = 0, 1, 2."""
    j0, j1, j2 = (float(objective(a).mean()) for a in (0.0, 1.0, 2.0))
    curvature = (j2 - 2 * j1 + j0) / 2
    return -(j1 - j0 - curvature) / (2 * curvature)


def _sliced_check(objective: Callable) -> Verdict:
    """Data N(0, v) and linear scores s(x) = −a x: the sliced objective's minimiser must be a = 1 / v."""
    v, n = 2.0, 200_000
    x = math.sqrt(v) * torch.randn(n, generator=_generator(10), dtype=torch.float64)
    probe = torch.randn(n, generator=_generator(11), dtype=torch.float64)
    a_hat = _minimiser(lambda a: objective(-a * probe * probe, -a * x * probe))
    return Verdict(a_hat, 1 / v, 0.05 / v, "minimising a (true score −x / v)")


def _right_sliced(vjv, vs):
    return vjv + 0.5 * vs**2  # vᵀ ∇s v + ½ (vᵀ s)²


def _wrong_sliced(vjv, vs):
    return vjv + vs**2  # the ½ dropped


def _dsm_check(objective: Callable) -> Verdict:
    """Data N(0, v), x̃ = x + σ z, linear scores s(x̃) = −a x̃: the minimiser must be 1 / (v + σ²), the noised score."""
    v, sigma, n = 1.0, 0.5, 200_000
    x = math.sqrt(v) * torch.randn(n, generator=_generator(12), dtype=torch.float64)
    z = torch.randn(n, generator=_generator(13), dtype=torch.float64)
    x_noisy = x + sigma * z
    a_hat = _minimiser(lambda a: objective(-a * x_noisy, z, sigma))
    expected = 1 / (v + sigma**2)
    return Verdict(a_hat, expected, 0.02 * expected, "minimising a (noised score −x̃ / (v + σ²))")


def _right_dsm(score, z, sigma):
    return 0.5 * sigma**2 * (score + z / sigma) ** 2  # ½ σ² ‖s + z/σ‖²


def _wrong_dsm(score, z, sigma):
    return 0.5 * sigma**2 * (score + z) ** 2  # the target −z/σ written −z


# 8: the Langevin step -----------------------------------------------------------------------------

def _langevin_check(step: Callable) -> Verdict:
    """Langevin on N(0, 1) (score −x) with ε = 0.01: the chain's stationary variance must be 1 (O(ε) bias)."""
    n, epsilon, generator = 10_000, 0.01, _generator(14)
    x = torch.randn(n, generator=generator, dtype=torch.float64)
    for _ in range(1000):
        x = step(x, -x, epsilon, torch.randn(n, generator=generator, dtype=torch.float64))
    return Verdict(float(x.var()), 1.0, 4 * math.sqrt(2 / n) + epsilon, "stationary variance (target 1)")


SLIPS: dict[str, Slip] = {
    "alpha_bar_to_T": Slip(
        "ᾱ written as a product to T", r"\bar\alpha_t=\prod_{s=1}^{t}\alpha_s", r"\bar\alpha_t=\prod_{s=1}^{T}\alpha_s",
        "the closed form against t forward steps (chapter 1)", _right_closed_form, _alpha_bar_to_T, _closed_form_check),
    "ddim_variance": Slip(
        "DDIM's fresh-noise variance", r"\omega^2=\eta^2\,\tilde\beta_t", r"\omega^2=\eta\,\tilde\beta_t",
        "η scales the std: DDIM, Eq. 16 (chapter 7)", lambda eta, bt: eta**2 * bt, lambda eta, bt: eta * bt,
        _ddim_variance_check),
    "vp_drift_sign": Slip(
        "the VP SDE's drift", r"d\mathbf x=-\tfrac12\beta(t)\mathbf x\,dt+\sqrt{\beta(t)}\,d\mathbf w",
        r"d\mathbf x=+\tfrac12\beta(t)\mathbf x\,dt+\sqrt{\beta(t)}\,d\mathbf w",
        "the variance stays 1 (chapter 6)", lambda x, b: -0.5 * b * x, lambda x, b: 0.5 * b * x, _vp_variance_check),
    "sqrt_alpha_in_training": Slip(
        "√α_t instead of √ᾱ_t in the training step", r"\mathbf x_t=\sqrt{\bar\alpha_t}\mathbf x_0+\sqrt{1-\bar\alpha_t}\,\boldsymbol\epsilon",
        r"\mathbf x_t=\sqrt{\alpha_t}\mathbf x_0+\sqrt{1-\alpha_t}\,\boldsymbol\epsilon",
        "the closed form against t forward steps (chapter 1)", _right_closed_form, _sqrt_alpha_not_bar, _closed_form_check),
    "variance_for_std": Slip(
        "the posterior variance where its std belongs", r"\mathbf x_{t-1}=\tilde{\boldsymbol\mu}_t+\sqrt{\tilde\beta_t}\,\mathbf z",
        r"\mathbf x_{t-1}=\tilde{\boldsymbol\mu}_t+\tilde\beta_t\,\mathbf z",
        "DDPM with the exact denoiser reproduces the data (chapter 3)",
        lambda mean, var, z: mean + var.sqrt() * z, lambda mean, var, z: mean + var * z, _ddpm_sampler_check),
    "reconstruction_without_log": Slip(
        "the ELBO's reconstruction term without its log", r"L_0=-\log p_\theta(\mathbf x_0\mid\mathbf x_1)",
        r"L_0=-p_\theta(\mathbf x_0\mid\mathbf x_1)",
        "the terms add up to the direct estimate of the bound (chapter 2)", lambda nll: nll, lambda nll: -torch.exp(-nll),
        _elbo_check),
    "sliced_factor": Slip(
        "the sliced score-matching objective", r"\mathbf v^\top\nabla\mathbf s\,\mathbf v+\tfrac12(\mathbf v^\top\mathbf s)^2",
        r"\mathbf v^\top\nabla\mathbf s\,\mathbf v+(\mathbf v^\top\mathbf s)^2",
        "its minimiser is the true score (chapter 5)", _right_sliced, _wrong_sliced, _sliced_check),
    "dsm_target": Slip(
        "the denoising score-matching target", r"\tfrac12\sigma^2\|\mathbf s(\tilde{\mathbf x})+\mathbf z/\sigma\|^2",
        r"\tfrac12\sigma^2\|\mathbf s(\tilde{\mathbf x})+\mathbf z\|^2",
        "its minimiser is the noised score (chapter 5)", _right_dsm, _wrong_dsm, _dsm_check),
    "langevin_noise": Slip(
        "the Langevin step", r"\mathbf x+\tfrac{\epsilon}{2}\nabla\log p+\sqrt{\epsilon}\,\mathbf z",
        r"\mathbf x+\epsilon\nabla\log p+\sqrt{\epsilon}\,\mathbf z",
        "the chain's stationary law is p (chapter 5)", lambda x, s, e, z: x + 0.5 * e * s + math.sqrt(e) * z,
        lambda x, s, e, z: x + e * s + math.sqrt(e) * z, _langevin_check),
}
