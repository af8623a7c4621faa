"""The book's derivations in sympy: objects that a chapter renders step by step and a test asserts.

Each ``derive_*`` function returns a :class:`Derivation`: numbered steps (a sentence and a sympy
expression, usually an equation) and the ``result`` it arrives at. Each ``check_*`` function takes
a *candidate* formula, built from the symbols in :data:`S`, and returns a :class:`Check` that says
whether the candidate agrees with the derivation, together with the residual that should be zero
(``sympy.simplify(lhs - rhs) == 0``). A wrong formula can be fed to a checker and must fail it.

Everything is derived for one coordinate (a scalar). The forward process acts on each coordinate
of x independently with the same coefficients (isotropic covariances β_t I, (1 − ᾱ_t) I), so every
density factorises over the D coordinates: means and variances carry over coordinate by
coordinate, and log-densities and KL divergences are sums of D copies of the scalar ones
(the squared differences become squared norms ‖·‖²).

=====================  ============  ================================================
``S.`` name            symbol        meaning
=====================  ============  ================================================
``x0, x_prev, x_t``    x₀, x_{t−1},   one coordinate of the data and of the noised
                       x_t            points
``eps, eps_hat``       ε, ε̂          the noise and a model's guess of it
``alpha``              α_t           1 − β_t
``alpha_bar_prev``     ᾱ_{t−1}       ∏_{s<t} α_s
``alpha_bar``          ᾱ_t           α_t ᾱ_{t−1} (an expression, not a free symbol)
``beta``               β_t           1 − α_t (an expression)
``omega2``             ω_t²          variance of the reverse step p_θ(x_{t−1} | x_t) (Ho et al.: σ_t²)
``sigma_data2``        σ_data²       variance of Gaussian data x_0 ~ N(0, σ_data²)
=====================  ============  ================================================
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import sympy as sp

__all__ = [
    "S",
    "Check",
    "Derivation",
    "check",
    "check_closed_form",
    "check_posterior",
    "check_mu_tilde_eps",
    "check_gaussian_kl",
    "check_eps_weight",
    "derive_closed_form",
    "derive_posterior",
    "derive_mu_tilde_eps",
    "derive_gaussian_kl",
    "derive_denoising_kl",
    "derive_reverse_variance_gaussian_data",
    "gaussian_log_density",
]


@dataclass(frozen=True)
class _Symbols:
    x0: sp.Symbol = sp.Symbol("x_0", real=True)
    x_prev: sp.Symbol = sp.Symbol("x_{t-1}", real=True)
    x_t: sp.Symbol = sp.Symbol("x_t", real=True)
    eps: sp.Symbol = sp.Symbol(r"\epsilon", real=True)
    eps_hat: sp.Symbol = sp.Symbol(r"\hat\epsilon", real=True)
    alpha: sp.Symbol = sp.Symbol(r"\alpha_t", positive=True)
    alpha_bar_prev: sp.Symbol = sp.Symbol(r"\bar\alpha_{t-1}", positive=True)
    omega2: sp.Symbol = sp.Symbol(r"\omega_t^2", positive=True)
    sigma_data2: sp.Symbol = sp.Symbol(r"\sigma_{\mathrm{data}}^2", nonnegative=True)
    # Shorthands of the papers: β_t = 1 − α_t and ᾱ_t = α_t ᾱ_{t−1}; `expand` removes them.
    beta: sp.Symbol = sp.Symbol(r"\beta_t", positive=True)
    alpha_bar: sp.Symbol = sp.Symbol(r"\bar\alpha_t", positive=True)
    # Two generic Gaussians N(μ₁, v₁), N(μ₂, v₂) for the KL divergence (v: variances).
    m1: sp.Symbol = sp.Symbol(r"\mu_1", real=True)
    m2: sp.Symbol = sp.Symbol(r"\mu_2", real=True)
    v1: sp.Symbol = sp.Symbol("v_1", positive=True)
    v2: sp.Symbol = sp.Symbol("v_2", positive=True)
    x: sp.Symbol = sp.Symbol("x", real=True)

    def expand(self, expr: sp.Expr) -> sp.Expr:
        """Replace the shorthands β_t → 1 − α_t and ᾱ_t → α_t ᾱ_{t−1}: only free symbols remain."""
        return sp.sympify(expr).subs({self.beta: 1 - self.alpha, self.alpha_bar: self.alpha * self.alpha_bar_prev})


S = _Symbols()
"""The symbols every derivation and candidate formula is written in."""


@dataclass(frozen=True)
class Check:
    """The outcome of comparing a candidate formula with a derivation.

    Attributes:
        ok: True when every residual simplifies to exactly 0.
        residuals: name → the simplified ``derived − candidate`` (0 when they agree).
    """

    ok: bool
    residuals: dict[str, sp.Expr]

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        parts = ", ".join(f"{k}: {v}" for k, v in self.residuals.items())
        return f"Check(ok={self.ok}, residuals {{{parts}}})"


@dataclass(frozen=True)
class Derivation:
    """A derivation as numbered steps, and what it derives.

    Attributes:
        title: what is derived.
        steps: ``(sentence, sympy expression)`` pairs, in order.
        result: name → derived expression (e.g. ``{"mu_tilde": ..., "beta_tilde": ...}``).
        checks: name → residual that the derivation verified along the way; each must be 0.
    """

    title: str
    steps: tuple[tuple[str, sp.Basic], ...]
    result: dict[str, sp.Expr] = field(default_factory=dict)
    checks: dict[str, sp.Expr] = field(default_factory=dict)

    @property
    def verified(self) -> bool:
        """True when every residual in ``checks`` is exactly 0."""
        return all(sp.simplify(r) == 0 for r in self.checks.values())

    def latex_steps(self) -> list[tuple[str, str]]:
        """Each step as ``(sentence, LaTeX of its expression)``."""
        return [(text, sp.latex(expr)) for text, expr in self.steps]

    def _repr_markdown_(self) -> str:
        lines = [f"**{self.title}**", ""]
        for i, (text, tex) in enumerate(self.latex_steps(), 1):
            lines += [f"{i}. {text}", "", f"$$ {tex} $$", ""]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Derivation({self.title!r}, {len(self.steps)} steps, result={sorted(self.result)})"


def check(derived: dict[str, sp.Expr], candidate: dict[str, sp.Expr]) -> Check:
    """Compare candidate expressions with derived ones: each ``simplify(derived − candidate)`` must be 0."""
    missing = set(derived) - set(candidate)
    if missing:
        raise ValueError(f"the candidate lacks {sorted(missing)}; give every one of: {', '.join(derived)}")
    residuals = {name: sp.simplify(S.expand(derived[name]) - S.expand(candidate[name])) for name in derived}
    return Check(all(r == 0 for r in residuals.values()), residuals)


def gaussian_log_density(x: sp.Expr, mean: sp.Expr, var: sp.Expr) -> sp.Expr:
    """log N(x; mean, var) for one coordinate."""
    return -sp.log(2 * sp.pi * var) / 2 - (x - mean) ** 2 / (2 * var)


# --- q(x_t | x_0) by induction ----------------------------------------------------------------


def _zero(expr: sp.Expr) -> sp.Expr:
    """Simplify an expression in the free symbols (shorthands expanded) that should be 0.

    A large non-zero residual (a wrong formula) is returned as it is rather than simplified further.
    """
    residual = sp.cancel(sp.expand(S.expand(expr)))
    return sp.simplify(residual) if sp.count_ops(residual) < 200 else residual


def _one_step(mean_coef: sp.Expr, var: sp.Expr, alpha: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    """If x_{t−1} = c x_0 + √v ε̄, one forward step gives x_t = √α c x_0 + (noise of variance α v + 1 − α)."""
    return sp.sqrt(alpha) * mean_coef, alpha * var + (1 - alpha)


def derive_closed_form(
    alpha_bar: Callable[[Sequence[sp.Symbol], int], sp.Expr] | None = None, n: int = 4
) -> Derivation:
    """q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t)) by induction over the one-step kernels (Ho et al. 2020, Eq. 4).

    The claim is x_t = √c_t x_0 + √(1 − c_t) ε with c_t = ``alpha_bar(alphas, t)`` (default: the
    product α_1 ⋯ α_t). Base case t = 1: one kernel from x_0. Inductive step, for a general t with
    free symbols α_t and ᾱ_{t−1} (the default claim only): assume the form at t − 1, apply one
    kernel, compare. The same step is also carried out for t = 2..n with the concrete symbols
    α_1..α_n, where the hypothesis at t − 1 is the *claimed* formula (so a claim that is not a
    product up to t fails at some step).
    """
    alphas = sp.symbols(f"alpha_1:{n + 1}", positive=True)
    claim = alpha_bar or (lambda a, t: sp.Mul(*a[:t]))
    steps: list[tuple[str, sp.Basic]] = []
    residuals: dict[str, sp.Expr] = {}
    steps.append(("One step is a Gaussian kernel: x_t = √α_t x_{t−1} + √β_t ε_t, with β_t = 1 − α_t.",
                  sp.Eq(S.x_t, sp.sqrt(S.alpha) * S.x_prev + sp.sqrt(S.beta) * S.eps)))
    # Base case.
    mean1, var1 = _one_step(sp.Integer(1), sp.Integer(0), alphas[0])
    steps.append(("Base case t = 1: one kernel applied to x_0 (mean coefficient², variance).",
                  sp.Eq(sp.Tuple(sp.Symbol(r"\bar\alpha_1"), 1 - sp.Symbol(r"\bar\alpha_1")),
                        sp.Tuple(mean1**2, var1))))
    residuals["t=1 mean"] = sp.simplify(mean1**2 - claim(alphas, 1))
    residuals["t=1 variance"] = sp.simplify(var1 - (1 - claim(alphas, 1)))
    # General inductive step (symbolic t).
    mean_t, var_t = _one_step(sp.sqrt(S.alpha_bar_prev), 1 - S.alpha_bar_prev, S.alpha)
    steps.append(("Inductive step: assume x_{t−1} = √ᾱ_{t−1} x_0 + √(1 − ᾱ_{t−1}) ε̄ and apply one kernel; "
                  "independent Gaussian noises add their variances.",
                  sp.Eq(S.x_t, mean_t * S.x0 + sp.sqrt(sp.Symbol("v")) * S.eps)))
    steps.append(("The noise variance α_t(1 − ᾱ_{t−1}) + β_t simplifies to 1 − α_t ᾱ_{t−1} = 1 − ᾱ_t.",
                  sp.Eq(var_t, sp.expand(var_t))))
    if alpha_bar is None:
        residuals["step mean"] = _zero(mean_t**2 - S.alpha_bar)
        residuals["step variance"] = _zero(var_t - (1 - S.alpha_bar))
    # The same step at t = 2..n with concrete symbols, using the claim as the hypothesis.
    for t in range(2, n + 1):
        mean_t, var_t = _one_step(sp.sqrt(claim(alphas, t - 1)), 1 - claim(alphas, t - 1), alphas[t - 1])
        residuals[f"t={t} mean"] = sp.simplify(mean_t**2 - claim(alphas, t))
        residuals[f"t={t} variance"] = sp.simplify(var_t - (1 - claim(alphas, t)))
    result = {"alpha_bar": claim(alphas, n)}
    steps.append(("Hence, by induction, ᾱ_t = ∏_{s≤t} α_s.",
                  sp.Eq(sp.Symbol(r"\bar\alpha_t"), sp.Product(sp.Symbol(r"\alpha_s"), (sp.Symbol("s"), 1, sp.Symbol("t"))))))
    return Derivation("q(x_t | x_0) by induction", tuple(steps), result, residuals)


def check_closed_form(alpha_bar: Callable[[Sequence[sp.Symbol], int], sp.Expr], n: int = 4) -> Check:
    """Check a claimed ᾱ_t (a function ``(alphas, t) -> expr`` of the symbols α_1..α_n) by induction.

    ``check_closed_form(lambda a, t: sympy.Mul(*a[:t]))`` passes; a product up to n (= T) instead of
    t, ``lambda a, t: sympy.Mul(*a)``, fails the base case and the inductive steps.
    """
    residuals = derive_closed_form(alpha_bar, n).checks
    return Check(all(r == 0 for r in residuals.values()), residuals)


# --- The posterior q(x_{t−1} | x_t, x_0) by Bayes' rule ---------------------------------------

# The paper's forms (Ho et al. 2020, Eq. 7), in the shorthands; derivations compare against them.
MU_TILDE = (sp.sqrt(S.alpha_bar_prev) * S.beta / (1 - S.alpha_bar) * S.x0
            + sp.sqrt(S.alpha) * (1 - S.alpha_bar_prev) / (1 - S.alpha_bar) * S.x_t)
BETA_TILDE = (1 - S.alpha_bar_prev) / (1 - S.alpha_bar) * S.beta
MU_TILDE_EPS = (S.x_t - S.beta / sp.sqrt(1 - S.alpha_bar) * S.eps) / sp.sqrt(S.alpha)
EPS_WEIGHT = S.beta**2 / (2 * S.omega2 * S.alpha * (1 - S.alpha_bar))


def _bayes_residuals(mu_tilde: sp.Expr, beta_tilde: sp.Expr) -> dict[str, sp.Expr]:
    """Residuals of log q(x_t|x_{t−1}) + log q(x_{t−1}|x_0) − log q(x_t|x_0) − log N(x_{t−1}; μ̃, β̃).

    The difference of two Gaussian log-densities is zero exactly when the quadratic parts agree
    and the normalisers agree; checking the normalisers as a ratio keeps logarithms (and their
    branch cuts) out of sympy's way.
    """
    x, xt, x0, a, abp = S.x_prev, S.x_t, S.x0, S.alpha, S.alpha_bar_prev
    b, ab = 1 - a, a * abp
    mu_tilde, beta_tilde = S.expand(mu_tilde), S.expand(beta_tilde)
    quadratic = (-(xt - sp.sqrt(a) * x) ** 2 / (2 * b) - (x - sp.sqrt(abp) * x0) ** 2 / (2 * (1 - abp))
                 + (xt - sp.sqrt(ab) * x0) ** 2 / (2 * (1 - ab)) + (x - mu_tilde) ** 2 / (2 * beta_tilde))
    normaliser = b * (1 - abp) / ((1 - ab) * beta_tilde) - 1  # variances of the numerator over the denominator's
    return {"quadratic part": _zero(quadratic), "normalising constant": _zero(normaliser)}


@lru_cache(maxsize=None)
def derive_posterior() -> Derivation:
    """q(x_{t−1} | x_t, x_0) ∝ q(x_t | x_{t−1}) q(x_{t−1} | x_0), completed to a square (Ho et al. 2020, Eqs. 6–7).

    Result: ``mu_tilde`` (μ̃_t) and ``beta_tilde`` (β̃_t) as derived, in the free symbols α_t, ᾱ_{t−1}.
    Checks: they equal the paper's forms, and Bayes' rule *with the normalising constants*,
    log q(x_t | x_{t−1}) + log q(x_{t−1} | x_0) − log q(x_t | x_0), is exactly log N(x_{t−1}; μ̃_t, β̃_t).
    """
    x, xt, x0, a, abp = S.x_prev, S.x_t, S.x0, S.alpha, S.alpha_bar_prev
    b = 1 - a
    step_exponent = -(xt - sp.sqrt(a) * x) ** 2 / (2 * S.beta)
    marginal_exponent = -(x - sp.sqrt(abp) * x0) ** 2 / (2 * (1 - abp))
    poly = sp.Poly(sp.expand(S.expand(step_exponent + marginal_exponent)), x)
    A = sp.factor(-2 * poly.coeff_monomial(x**2))  # precision
    B = sp.collect(poly.coeff_monomial(x), [x0, xt])  # linear coefficient
    beta_tilde = sp.factor(sp.cancel(1 / A))
    mu_tilde = sum(sp.factor(sp.cancel(B.coeff(v) / A)) * v for v in (x0, xt))
    q = sp.Function("q")
    checks = {
        "mu_tilde is Eq. 7": _zero(mu_tilde - MU_TILDE),
        "beta_tilde is Eq. 7": _zero(beta_tilde - BETA_TILDE),
        **_bayes_residuals(mu_tilde, beta_tilde),
    }
    steps = (
        ("Bayes' rule; given x_{t−1}, x_t does not depend on x_0 (the chain is Markov).",
         sp.Eq(q(x, xt, x0), q(xt, x) * q(x, x0) / q(xt, x0))),
        ("The denominator does not depend on x_{t−1}; keep the exponents of the two Gaussians in the numerator.",
         sp.Eq(sp.Symbol(r"\log q(x_{t-1} | x_t, x_0)"), step_exponent + marginal_exponent + sp.Symbol("C"))),
        ("Collect powers of x_{t−1}: the exponent is −A x_{t−1}²/2 + B x_{t−1} + C, with precision",
         sp.Eq(sp.Symbol("A"), A)),
        ("and linear coefficient", sp.Eq(sp.Symbol("B"), B)),
        ("Complete the square, −A x²/2 + B x = −A (x − B/A)²/2 + const: the variance is 1/A ...",
         sp.Eq(sp.Symbol(r"\tilde\beta_t"), beta_tilde)),
        ("... and the mean is B/A.", sp.Eq(sp.Symbol(r"\tilde\mu_t"), mu_tilde)),
        ("With β_t = 1 − α_t and ᾱ_t = α_t ᾱ_{t−1} these are Ho et al.'s Eq. 7 (the differences simplify to 0):",
         sp.Eq(sp.Tuple(sp.Symbol(r"\tilde\beta_t"), sp.Symbol(r"\tilde\mu_t")), sp.Tuple(BETA_TILDE, MU_TILDE))),
        ("Bayes' rule with every normalising constant: the quadratic parts and the normalisers of "
         "q(x_t|x_{t−1}) q(x_{t−1}|x_0) / q(x_t|x_0) and N(x_{t−1}; μ̃_t, β̃_t) agree (residuals):",
         sp.Tuple(checks["quadratic part"], checks["normalising constant"])),
    )
    return Derivation("The posterior q(x_{t-1} | x_t, x_0)", steps,
                      {"mu_tilde": mu_tilde, "beta_tilde": beta_tilde}, checks)


def check_posterior(mu_tilde: sp.Expr, beta_tilde: sp.Expr) -> Check:
    """Check a claimed posterior mean and variance (expressions in ``S``) against :func:`derive_posterior`.

    Both are also checked against the *density* Bayes' rule gives (see :func:`derive_posterior`).
    With ᾱ_t and ᾱ_{t−1} swapped in β̃, the variance and the normalising constant fail.
    """
    result = check(derive_posterior().result, {"mu_tilde": mu_tilde, "beta_tilde": beta_tilde})
    residuals = {**result.residuals, **_bayes_residuals(mu_tilde, beta_tilde)}
    return Check(all(r == 0 for r in residuals.values()), residuals)


# --- μ̃ in terms of ε ------------------------------------------------------------------------


@lru_cache(maxsize=None)
def derive_mu_tilde_eps() -> Derivation:
    """μ̃_t with x_0 = (x_t − √(1 − ᾱ_t) ε)/√ᾱ_t substituted: (1/√α_t)(x_t − β_t/√(1 − ᾱ_t) ε) (Ho et al. 2020, Eq. 10)."""
    mu_tilde = derive_posterior().result["mu_tilde"]
    x0_of_eps = (S.x_t - sp.sqrt(1 - S.alpha_bar) * S.eps) / sp.sqrt(S.alpha_bar)
    substituted = mu_tilde.subs(S.x0, S.expand(x0_of_eps))
    xt_coef = sp.factor(sp.simplify(sp.diff(substituted, S.x_t)))
    eps_coef = sp.factor(sp.simplify(sp.diff(substituted, S.eps)))
    derived = xt_coef * S.x_t + eps_coef * S.eps
    checks = {"Eq. 10": _zero(derived - MU_TILDE_EPS)}
    steps = (
        ("Solve the closed form x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε for x_0.", sp.Eq(S.x0, x0_of_eps)),
        ("Substitute into μ̃_t(x_t, x_0) and collect: the coefficient of x_t is",
         sp.Eq(sp.Symbol(r"c_{x_t}"), xt_coef)),
        ("and that of ε is", sp.Eq(sp.Symbol(r"c_{\epsilon}"), eps_coef)),
        ("In the paper's shorthands this is Ho et al.'s Eq. 10 (the difference simplifies to "
         f"{checks['Eq. 10']}):", sp.Eq(sp.Symbol(r"\tilde\mu_t"), MU_TILDE_EPS)),
    )
    return Derivation("The posterior mean in terms of ε", steps, {"mu_tilde_eps": derived}, checks)


def check_mu_tilde_eps(candidate: sp.Expr) -> Check:
    """Check a claimed ε form of μ̃_t (an expression in x_t, ε and the schedule symbols)."""
    return check(derive_mu_tilde_eps().result, {"mu_tilde_eps": candidate})


# --- KL divergences ---------------------------------------------------------------------------

GAUSSIAN_KL = (sp.log(S.v2 / S.v1) + (S.v1 + (S.m1 - S.m2) ** 2) / S.v2 - 1) / 2


@lru_cache(maxsize=None)
def derive_gaussian_kl() -> Derivation:
    """KL(N(μ₁, v₁) ‖ N(μ₂, v₂)) = ½[log(v₂/v₁) + (v₁ + (μ₁ − μ₂)²)/v₂ − 1], one coordinate (v: variances).

    The log-ratio is a quadratic in x, so its expectation under N(μ₁, v₁) needs only
    E[x] = μ₁ and E[x²] = v₁ + μ₁²; a last check integrates it against the density.
    """
    x, m1, m2, v1, v2 = S.x, S.m1, S.m2, S.v1, S.v2
    log_ratio = sp.expand(sp.expand_log(gaussian_log_density(x, m1, v1) - gaussian_log_density(x, m2, v2), force=True))
    poly = sp.Poly(log_ratio, x)
    expectation = sp.expand(poly.coeff_monomial(x**2) * (v1 + m1**2) + poly.coeff_monomial(x) * m1
                            + poly.coeff_monomial(1))
    # Integrate with μ₁ = 0, v₁ = 1 (a shift and scale of x reduce the general case to it).
    density = sp.exp(-x**2 / 2) / sp.sqrt(2 * sp.pi)
    integral = sp.integrate(density * log_ratio.subs({m1: 0, v1: 1}), (x, -sp.oo, sp.oo))
    checks = {
        "moments": sp.simplify(sp.expand_log(expectation - GAUSSIAN_KL, force=True)),
        "integral": sp.simplify(sp.expand_log(integral - GAUSSIAN_KL.subs({m1: 0, v1: 1}), force=True)),
    }
    steps = (
        ("The log-ratio of the two densities is a quadratic in x:",
         sp.Eq(sp.Symbol(r"\log\frac{\mathcal{N}(x;\mu_1,v_1)}{\mathcal{N}(x;\mu_2,v_2)}"), log_ratio)),
        ("Its expectation under N(μ₁, v₁), with E[x] = μ₁ and E[x²] = v₁ + μ₁², rearranges to",
         sp.Eq(sp.Symbol(r"\mathrm{KL}"), GAUSSIAN_KL)),
        ("Checks, by moments and by integrating at μ₁ = 0, v₁ = 1 (residuals):",
         sp.Tuple(checks["moments"], checks["integral"])),
    )
    return Derivation("The KL divergence between two Gaussians", steps, {"kl": expectation}, checks)


def check_gaussian_kl(candidate: sp.Expr) -> Check:
    """Check a claimed KL(N(μ₁, v₁) ‖ N(μ₂, v₂)) written in ``S.m1, S.v1, S.m2, S.v2`` (v: variances)."""
    derived = derive_gaussian_kl().result
    residual = sp.simplify(sp.expand_log(derived["kl"] - sp.sympify(candidate), force=True))
    return Check(residual == 0, {"kl": residual})


@lru_cache(maxsize=None)
def derive_denoising_kl() -> Derivation:
    """L_{t−1} = KL(N(μ̃_t, β̃_t) ‖ N(μ_θ, ω_t²)) as a constant plus a weighted ε-MSE (Ho et al. 2020, Eq. 12).

    ω_t² is the reverse-step variance (Ho et al. write σ_t²). With μ_θ in the same ε form as μ̃_t but
    with ε̂ for ε, the mean term is β_t²/(2ω_t² α_t (1 − ᾱ_t)) · (ε − ε̂)²; the rest depends only on
    β̃_t and ω_t² (no θ).
    Results: ``weight`` and ``constant``.
    """
    kl = derive_gaussian_kl().result["kl"]
    beta_tilde = sp.Symbol(r"\tilde\beta_t", positive=True)
    mu_theta = MU_TILDE_EPS.subs(S.eps, S.eps_hat)
    term = kl.subs({S.m1: MU_TILDE_EPS, S.m2: mu_theta, S.v1: beta_tilde, S.v2: S.omega2})
    constant = sp.simplify(term.subs(S.eps_hat, S.eps))
    weight = sp.factor(sp.simplify(S.expand(term - constant) / (S.eps - S.eps_hat) ** 2))
    checks = {
        "decomposition": _zero(term - constant - weight * (S.eps - S.eps_hat) ** 2),
        "weight": _zero(weight - EPS_WEIGHT),
    }
    steps = (
        ("The model's mean takes μ̃_t's ε form with its guess ε̂ in place of ε:",
         sp.Eq(sp.Symbol(r"\mu_\theta"), mu_theta)),
        ("The difference of the means: the x_t terms cancel.",
         sp.Eq(sp.Symbol(r"\tilde\mu_t") - sp.Symbol(r"\mu_\theta"), sp.factor(MU_TILDE_EPS - mu_theta))),
        ("The Gaussian KL with variances β̃_t and ω_t²: the part that does not depend on θ ...",
         sp.Eq(sp.Symbol("C_t"), constant)),
        ("... and the part that does, (μ̃_t − μ_θ)²/(2ω_t²) = w_t (ε − ε̂)², with weight (in free symbols)",
         sp.Eq(sp.Symbol("w_t"), weight)),
        ("that is, in the paper's shorthands (residuals of both checks: "
         f"{checks['decomposition']}, {checks['weight']}):", sp.Eq(sp.Symbol("w_t"), EPS_WEIGHT)),
    )
    return Derivation("L_{t-1} as a weighted ε-MSE", steps, {"weight": weight, "constant": constant}, checks)


def check_eps_weight(candidate: sp.Expr) -> Check:
    """Check a claimed weight of (ε − ε̂)² in L_{t−1} (an expression in α_t, ᾱ_t, β_t, ω_t²)."""
    return check({"weight": derive_denoising_kl().result["weight"]}, {"weight": candidate})


# --- The two reverse variances of DDPM --------------------------------------------------------


@lru_cache(maxsize=None)
def derive_reverse_variance_gaussian_data() -> Derivation:
    """Var(x_{t−1} | x_t) when x_0 ~ N(0, σ_data²): β_t for σ_data² = 1 and β̃_t for σ_data² = 0 (Ho et al. 2020, Sec. 3.2).

    The two DDPM choices of ω_t² are the true reverse variances for standard-Gaussian data and for
    a point mass; in general it is V β_t / (α_t V + β_t) with V = Var(x_{t−1}) = ᾱ_{t−1} σ_data² + 1 − ᾱ_{t−1}.
    Results: ``variance`` (general), ``at_unit_variance`` (σ_data² = 1), ``at_point_mass`` (σ_data² = 0).
    """
    var_data = S.sigma_data2
    a, abp, b = S.alpha, S.alpha_bar_prev, S.beta
    v_prev = abp * var_data + 1 - abp  # Var(x_{t−1})
    cov = sp.sqrt(a) * v_prev  # Cov(x_{t−1}, x_t)
    conditional = sp.factor(sp.cancel(v_prev - cov**2 / (a * v_prev + b)))
    at1 = sp.factor(sp.cancel(S.expand(conditional.subs(var_data, 1))))
    at0 = sp.factor(conditional.subs(var_data, 0))
    checks = {"unit variance gives beta_t": _zero(at1 - b), "point mass gives beta_tilde": _zero(at0 - BETA_TILDE)}
    steps = (
        ("Variance of x_{t−1} when x_0 ~ N(0, σ_data²):", sp.Eq(sp.Symbol(r"\mathrm{Var}(x_{t-1})"), v_prev)),
        ("x_t = √α_t x_{t−1} + √β_t ε has variance α_t Var(x_{t−1}) + β_t and covariance with x_{t−1}",
         sp.Eq(sp.Symbol(r"\mathrm{Cov}(x_{t-1}, x_t)"), cov)),
        ("Gaussian conditioning, Var(x_{t−1} | x_t) = Var(x_{t−1}) − Cov²/Var(x_t):",
         sp.Eq(sp.Symbol(r"\mathrm{Var}(x_{t-1} | x_t)"), conditional)),
        ("Standard Gaussian data (σ_data² = 1): 1 − α_t, that is β_t.",
         sp.Eq(sp.Symbol(r"\mathrm{Var}_{\sigma_{\mathrm{data}}^2=1}"), at1)),
        ("A point mass (σ_data² = 0), which is β̃_t (residual "
         f"{checks['point mass gives beta_tilde']}):", sp.Eq(sp.Symbol(r"\mathrm{Var}_{\sigma_{\mathrm{data}}^2=0}"), at0)),
    )
    return Derivation("The reverse variance for Gaussian data", steps,
                      {"variance": conditional, "at_unit_variance": at1, "at_point_mass": at0}, checks)
