"""The 2D toys and the Gaussian-mixture oracle at every noise level x = s·x_0 + σ·z (merged with the
former test_gmm_scaled.py: the ᾱ methods are gone, every process gives (s, σ) = ``scale_std(t)``)."""

import math

import pytest
import torch

import diffusion_lab as dl


@pytest.mark.parametrize("make", [dl.swiss_roll, dl.moons])
def test_toys_are_reproducible_and_roughly_standardised(make):
    a, b = make(2000, seed=3), make(2000, seed=3)
    assert a.shape == (2000, 2) and a.dtype == torch.float32
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, make(2000, seed=4))
    assert a.abs().max() < 3.0 and 0.3 < a.std() < 1.5


def test_n_must_be_positive():
    with pytest.raises(ValueError, match="positive integer"):
        dl.swiss_roll(0)


# DDPM's levels s = √ᾱ, σ = √(1 − ᾱ) (ᾱ = 1, 0.7, 0.1, 1e-3) and general ones of the SDE chapters,
# pure noise (s = 0) included.
LEVELS = [(math.sqrt(ab), math.sqrt(1 - ab)) for ab in (1.0, 0.7, 0.1, 1e-3)] + [
    (1.0, 3.0), (0.3, 0.2), (0.05, 1.0), (0.0, 0.7)]


@pytest.mark.parametrize("scale, std", LEVELS)
def test_score_is_the_gradient_of_log_prob(gmm, scale, std):
    x = torch.randn(64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 2
    x.requires_grad_(True)
    grad, = torch.autograd.grad(gmm.log_prob(x, scale, std).sum(), x)
    torch.testing.assert_close(gmm.score(x.detach(), scale, std), grad)


def test_defaults_are_the_data_density(gmm):
    x = torch.randn(16, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(gmm.log_prob(x), gmm.log_prob(x, 1.0, 0.0), rtol=0, atol=0)
    torch.testing.assert_close(gmm.score(x), gmm.score(x, 1.0, 0.0), rtol=0, atol=0)
    # s = 0: x = σ z whatever x_0, so p = N(0, σ² I) exactly.
    torch.testing.assert_close(gmm.log_prob(x, 0.0, 0.7),
                               -(x**2).sum(1) / (2 * 0.49) - math.log(2 * math.pi * 0.49))


def test_per_example_scale_and_std(gmm):
    x = torch.randn(4, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    scale, std = torch.tensor([1.0, 0.5, 0.2, 0.9]), torch.tensor([0.0, 0.4, 2.0, 0.1])
    x.requires_grad_(True)
    grad, = torch.autograd.grad(gmm.log_prob(x, scale, std).sum(), x)
    torch.testing.assert_close(gmm.score(x.detach(), scale, std), grad)
    for i in range(4):
        torch.testing.assert_close(gmm.score(x[i:i + 1].detach(), float(scale[i]), float(std[i])),
                                   grad[i:i + 1])


def test_log_prob_integrates_to_one(gmm):
    grid = torch.linspace(-5, 5, 401, dtype=torch.float64)
    xx, yy = torch.meshgrid(grid, grid, indexing="ij")
    pts = torch.stack([xx.flatten(), yy.flatten()], 1)
    for scale, std in ((1.0, 0.0), (math.sqrt(0.3), math.sqrt(0.7))):
        mass = gmm.log_prob(pts, scale, std).exp().sum() * (grid[1] - grid[0]) ** 2
        assert float(mass) == pytest.approx(1.0, abs=1e-3)


def test_log_prob_is_the_density_of_scaled_noisy_samples(gmm, gen):
    """Monte Carlo: the mean of log p(x) over x = s x_0 + σ z equals the average log-density computed
    on a fine grid (the negative entropy), within Monte Carlo error."""
    s, sd = 0.6, 0.5
    x = s * gmm.sample(100_000, generator=gen).double() + sd * torch.randn(100_000, 2, generator=gen,
                                                                             dtype=torch.float64)
    grid = torch.linspace(-5, 5, 401, dtype=torch.float64)
    xx, yy = torch.meshgrid(grid, grid, indexing="ij")
    pts = torch.stack([xx.flatten(), yy.flatten()], 1)
    logp = gmm.log_prob(pts, s, sd)
    cell = float(grid[1] - grid[0]) ** 2
    assert float(logp.exp().sum() * cell) == pytest.approx(1.0, abs=1e-3)
    neg_entropy = float((logp.exp() * logp).sum() * cell)
    mc = gmm.log_prob(x, s, sd)
    assert float(mc.mean()) == pytest.approx(neg_entropy, abs=4 * float(mc.std()) / 100_000**0.5)


def test_sampling_matches_the_mixture_moments(gmm, gen):
    x = gmm.sample(100_000, generator=gen).double()
    mean = (gmm.weights[:, None] * gmm.means).sum(0)
    torch.testing.assert_close(x.mean(0), mean, atol=0.02, rtol=0)


def test_noised_samples_follow_the_noised_density(gmm, gen):
    """Diffusing GMM samples with q_sample gives the mixture with means √ᾱ μ_k and covs ᾱ Σ_k + (1 − ᾱ) I,
    checked through its overall covariance."""
    s = dl.cosine_schedule(100)
    t = 60
    x_t = dl.q_sample(s, gmm.sample(50_000, generator=gen).double(), t, generator=gen)
    ab = s.alpha_bar[t]
    mu = gmm.means * math.sqrt(ab)
    m = (gmm.weights[:, None] * mu).sum(0)
    cov = sum(w * (ab * c + (1 - ab) * torch.eye(2, dtype=torch.float64) + torch.outer(u - m, u - m))
              for w, c, u in zip(gmm.weights, gmm.covs, mu))
    torch.testing.assert_close(torch.cov(x_t.T), cov, atol=0.02, rtol=0)


def test_denoiser_is_the_posterior_mean(gmm, gen):
    """The oracle's x̂₀ equals a Monte Carlo estimate of E[x_0 | x_t] by importance weighting, and
    Tweedie's formula (x_t + σ² ∇log p_t) / s from the score."""
    s = dl.cosine_schedule(100)
    t = 40
    ab = s.alpha_bar[t]
    x_t = torch.tensor([[0.3, 0.2], [-1.0, 0.5]], dtype=torch.float64)
    x0 = gmm.sample(400_000, generator=gen).double()
    log_w = -((x_t[:, None, :] - math.sqrt(ab) * x0[None]) ** 2).sum(-1) / (2 * (1 - ab))  # (2, N)
    w = torch.softmax(log_w, dim=1)
    mc = w @ x0
    x0_hat = gmm.denoiser(s).x0(x_t, t)
    torch.testing.assert_close(x0_hat, mc, atol=0.01, rtol=0)
    tweedie = (x_t + (1 - ab) * gmm.score(x_t, math.sqrt(ab), math.sqrt(1 - ab))) / math.sqrt(ab)
    torch.testing.assert_close(x0_hat, tweedie)


def test_eps_and_score_use_the_schedule(gmm):
    s = dl.cosine_schedule(100)
    x = torch.randn(5, 2)
    t = torch.tensor([1, 10, 50, 90, 100])
    ab = torch.tensor(s.alpha_bar[t.numpy()])
    scale, std = ab.sqrt(), (1 - ab).sqrt()
    prediction = gmm.denoiser(s).predict(x, t)
    assert prediction.eps.dtype == x.dtype
    torch.testing.assert_close(prediction.eps, gmm.posterior_means(x, scale, std)[1].float())
    torch.testing.assert_close(prediction.eps, -(std[:, None] * gmm.score(x, scale, std)).float())
    torch.testing.assert_close(prediction.score, gmm.score(x, scale, std))


@pytest.mark.parametrize("sde", [dl.VPSDE(), dl.SubVPSDE(), dl.VESDE()], ids=repr)
def test_score_uses_the_sde_marginal(gmm, sde):
    x = torch.randn(5, 2, dtype=torch.float64)
    t = torch.tensor([0.0, 0.01, 0.3, 0.7, 1.0], dtype=torch.float64)
    scale, std = sde.scale_std(t)
    # t = 0 (σ = 0) included: the oracle's score is the data's own there, not −ε̂/σ = 0/0.
    torch.testing.assert_close(gmm.denoiser(sde).score(x, t), gmm.score(x, scale, std))


def test_mixture_input_validation(gmm):
    with pytest.raises(ValueError, match="sum to 1"):
        dl.GaussianMixture(torch.tensor([0.5, 0.6]), torch.zeros(2, 2), torch.eye(2).expand(2, 2, 2))
    with pytest.raises(ValueError, match="shapes disagree"):
        dl.GaussianMixture(torch.tensor([1.0]), torch.zeros(1, 2), torch.eye(3)[None])
    with pytest.raises(ValueError, match=r"x must have shape \(B, 2\)"):
        dl.GaussianMixture.ring().score(torch.zeros(3, 3))
    with pytest.raises(ValueError, match=r"x must have shape \(B, 2\)"):
        gmm.log_prob(torch.zeros(2, 3), 1.0, 1.0)
    for scale, std in ((0.0, 0.0), (-0.5, 1.0), (1.0, -0.1), (1.0, float("nan"))):
        with pytest.raises(ValueError, match="must be finite, non-negative and not both 0"):
            gmm.score(torch.zeros(2, 2), scale, std)
