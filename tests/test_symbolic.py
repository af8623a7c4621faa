"""Every identity of the ELBO and posterior chapters, derived in sympy; wrong formulas must fail."""

import sympy as sp

from diffusion_lab import symbolic as sym
from diffusion_lab.symbolic import S


def test_closed_form_by_induction():
    derivation = sym.derive_closed_form()
    assert derivation.verified and derivation.checks["step variance"] == 0
    assert sym.check_closed_form(lambda a, t: sp.Mul(*a[:t]))


def test_alpha_bar_as_a_product_up_to_T_instead_of_t_fails():
    result = sym.check_closed_form(lambda a, t: sp.Mul(*a))  # ᾱ_t = α_1 ⋯ α_T: wrong
    assert not result.ok
    assert result.residuals["t=1 mean"] != 0


def test_posterior_by_bayes_and_completing_the_square():
    derivation = sym.derive_posterior()
    assert derivation.verified
    assert set(derivation.checks) == {"mu_tilde is Eq. 7", "beta_tilde is Eq. 7", "quadratic part", "normalising constant"}
    assert sym.check_posterior(sym.MU_TILDE, sym.BETA_TILDE).ok


def test_beta_tilde_with_alpha_bars_swapped_fails():
    wrong = (1 - S.alpha_bar) / (1 - S.alpha_bar_prev) * S.beta
    result = sym.check_posterior(sym.MU_TILDE, wrong)
    assert not result.ok
    assert result.residuals["beta_tilde"] != 0 and result.residuals["normalising constant"] != 0
    assert result.residuals["mu_tilde"] == 0


def test_wrong_posterior_mean_fails():
    wrong = sp.sqrt(S.alpha_bar) * S.beta / (1 - S.alpha_bar) * S.x0 + sp.sqrt(S.alpha) * (
        1 - S.alpha_bar_prev) / (1 - S.alpha_bar) * S.x_t  # ᾱ_t for ᾱ_{t−1} in the x_0 coefficient
    assert not sym.check_posterior(wrong, sym.BETA_TILDE).ok


def test_mu_tilde_in_eps_form():
    assert sym.derive_mu_tilde_eps().verified
    assert sym.check_mu_tilde_eps(sym.MU_TILDE_EPS).ok
    wrong = (S.x_t - S.beta / (1 - S.alpha_bar) * S.eps) / sp.sqrt(S.alpha)  # no square root
    assert not sym.check_mu_tilde_eps(wrong).ok


def test_gaussian_kl():
    assert sym.derive_gaussian_kl().verified
    assert sym.check_gaussian_kl(sym.GAUSSIAN_KL).ok
    wrong = (sp.log(S.v1 / S.v2) + (S.v1 + (S.m1 - S.m2) ** 2) / S.v2 - 1) / 2  # variances swapped in the log
    assert not sym.check_gaussian_kl(wrong).ok


def test_denoising_term_is_a_weighted_eps_mse():
    derivation = sym.derive_denoising_kl()
    assert derivation.verified
    assert sym.check_eps_weight(S.beta**2 / (2 * S.omega2 * S.alpha * (1 - S.alpha_bar))).ok
    assert not sym.check_eps_weight(S.beta / (2 * S.omega2 * S.alpha * (1 - S.alpha_bar))).ok
    # With ω_t² = β̃_t the constant vanishes: the KL is the mean term alone.
    constant = derivation.result["constant"].subs(S.omega2, sp.Symbol(r"\tilde\beta_t", positive=True))
    assert sp.simplify(constant) == 0


def test_reverse_variances_for_gaussian_data_and_a_point_mass():
    derivation = sym.derive_reverse_variance_gaussian_data()
    assert derivation.verified
    assert sp.simplify(S.expand(derivation.result["at_unit_variance"] - S.beta)) == 0
    assert sp.simplify(S.expand(derivation.result["at_point_mass"] - sym.BETA_TILDE)) == 0


def test_derivations_use_the_book_symbols():
    # The reverse-step variance is ω_t² and the data variance σ_data² (σ_t is the noise std of x_t).
    assert r"\omega" in sym.derive_denoising_kl()._repr_markdown_()
    assert r"\mathrm{data}" in sym.derive_reverse_variance_gaussian_data()._repr_markdown_()
    assert r"\sigma" not in sym.derive_gaussian_kl()._repr_markdown_()


def test_derivations_render_as_latex_steps():
    text = sym.derive_posterior()._repr_markdown_()
    assert text.count("$$") >= 2 * len(sym.derive_posterior().steps)
    assert r"\tilde\beta_{t}" in text
