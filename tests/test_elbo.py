"""The variational bound: closed forms, the decomposition against a direct estimate, the oracle's bound."""

import math

import pytest
import torch

import diffusion_lab as dl
from diffusion_lab import elbo

pytestmark = pytest.mark.usefixtures("one_thread")  # the oracle's many small float64 ops

SCHEDULE = dl.cosine_schedule(100)
MIXTURE = dl.GaussianMixture.ring()


ORACLE = MIXTURE.denoiser(SCHEDULE)  # the exact E[x_0 | x_t] and E[ε | x_t]


def test_gaussian_kl_matches_monte_carlo(gen):
    n = 200_000
    m1, v1, m2, v2 = 0.3, 0.5, -0.2, 1.7
    x = m1 + math.sqrt(v1) * torch.randn(n, generator=gen, dtype=torch.float64)
    log_ratio = (-0.5 * torch.log(torch.tensor(v1)) - (x - m1) ** 2 / (2 * v1)
                 + 0.5 * torch.log(torch.tensor(v2)) + (x - m2) ** 2 / (2 * v2))
    closed = elbo.gaussian_kl(*(torch.tensor(v, dtype=torch.float64) for v in (m1, v1, m2, v2)))
    assert abs(float(log_ratio.mean() - closed)) < 4 * float(log_ratio.std()) / n**0.5


def test_discretized_decoder_sums_to_one_over_the_grid_and_matches_density_for_narrow_bins():
    grid = torch.linspace(-1, 1, 17, dtype=torch.float64).reshape(-1, 1)  # the digits' 17 levels
    nll = elbo.discretized_gaussian_nll(grid, torch.tensor(0.3, dtype=torch.float64),
                                        torch.tensor(0.2, dtype=torch.float64), bin_width=2 / 16)
    assert abs(float(torch.exp(-nll).sum()) - 1) < 1e-12
    x = torch.tensor([[0.1]], dtype=torch.float64)
    mean, var, width = torch.tensor(0.0, dtype=torch.float64), torch.tensor(0.3, dtype=torch.float64), 1e-4
    discrete = elbo.discretized_gaussian_nll(x, mean, var, bin_width=width)
    assert abs(float(discrete - (elbo.gaussian_nll(x, mean, var) - math.log(width)))) < 1e-6


def test_reverse_variance_choices():
    assert (elbo.reverse_variance(SCHEDULE, "beta") == SCHEDULE.beta).all()
    tilde = elbo.reverse_variance(SCHEDULE, "beta_tilde")
    assert tilde[1] == SCHEDULE.beta_tilde[2] and (tilde[2:] == SCHEDULE.beta_tilde[2:]).all()
    with pytest.raises(ValueError, match="beta, beta_tilde"):
        elbo.reverse_variance(SCHEDULE, "sigma")


def test_prior_term_closed_form():
    x0 = torch.tensor([[1.0, -2.0]], dtype=torch.float64)
    ab = SCHEDULE.alpha_bar[-1]
    expected = 0.5 * (ab * 5.0 + 2 * ((1 - ab) - 1 - math.log(1 - ab)))
    assert abs(float(elbo.prior_term(SCHEDULE, x0)) - expected) < 1e-12


def test_denoising_term_with_the_true_x0_is_the_variance_mismatch_only():
    # A model that knows ε exactly: the KL is the σ_t² vs β̃_t part alone, zero for σ_t² = β̃_t.
    x0 = MIXTURE.sample(64, generator=torch.Generator().manual_seed(0)).double()
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    t = 30
    knows_eps = dl.Denoiser(lambda x_t, steps: eps, SCHEDULE, predicts="eps")
    for variance in ("beta", "beta_tilde"):
        kl = elbo.denoising_term(knows_eps, x0, t, variance=variance, noise=eps)
        ratio = SCHEDULE.beta_tilde[t] / elbo.reverse_variance(SCHEDULE, variance)[t]
        assert torch.allclose(kl, torch.full_like(kl, 2 * 0.5 * (ratio - 1 - math.log(ratio))), atol=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_oracle_bound_sits_below_the_exact_likelihood_and_the_decomposition_matches_a_direct_estimate(seed):
    n = 1500
    x0 = MIXTURE.sample(2 * n, generator=torch.Generator().manual_seed(seed)).double()
    generator = torch.Generator().manual_seed(100 + seed)
    bound = elbo.elbo_terms(ORACLE, x0[:n], generator=generator).total  # L ≥ −log p_θ
    direct = elbo.direct_bound(ORACLE, x0[n:], generator=generator)
    se = math.sqrt(float(bound.var()) / n + float(direct.var()) / n)
    assert abs(float(bound.mean() - direct.mean())) < 4 * se
    # E[L] − E[−log q] = KL(q(x_{0:T}) ‖ p_θ(x_{0:T})) ≥ 0: the bound must not beat the exact likelihood.
    gap = bound + MIXTURE.log_prob(x0[:n])  # per example: L + log q(x_0)
    gap_se = float(gap.std()) / n**0.5  # about 0.035 nats at n = 1500
    assert float(gap.mean()) > 0  # ELBO ≤ log q on this point set
    assert float(gap.mean()) < 0.13 + 4 * gap_se  # and the gap is small: about 0.13 nats


def test_bits_per_dim():
    assert float(elbo.bits_per_dim(torch.tensor(64 * math.log(2.0)), 64)) == pytest.approx(1.0)
