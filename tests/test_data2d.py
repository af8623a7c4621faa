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


@pytest.mark.parametrize("alpha_bar", [1.0, 0.7, 0.1, 1e-3])
def test_score_is_the_gradient_of_log_prob(gmm, alpha_bar):
    x = torch.randn(64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 2
    x.requires_grad_(True)
    grad, = torch.autograd.grad(gmm.log_prob(x, alpha_bar).sum(), x)
    torch.testing.assert_close(gmm.score(x.detach(), alpha_bar), grad)


def test_log_prob_integrates_to_one(gmm):
    grid = torch.linspace(-5, 5, 401, dtype=torch.float64)
    xx, yy = torch.meshgrid(grid, grid, indexing="ij")
    pts = torch.stack([xx.flatten(), yy.flatten()], 1)
    for ab in (1.0, 0.3):
        mass = gmm.log_prob(pts, ab).exp().sum() * (grid[1] - grid[0]) ** 2
        assert float(mass) == pytest.approx(1.0, abs=1e-3)


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
    """Tweedie: E[x_0 | x_t] from the score equals a Monte Carlo estimate by importance weighting."""
    s = dl.cosine_schedule(100)
    t = 40
    ab = s.alpha_bar[t]
    x_t = torch.tensor([[0.3, 0.2], [-1.0, 0.5]], dtype=torch.float64)
    x0 = gmm.sample(400_000, generator=gen).double()
    log_w = -((x_t[:, None, :] - math.sqrt(ab) * x0[None]) ** 2).sum(-1) / (2 * (1 - ab))  # (2, N)
    w = torch.softmax(log_w, dim=1)
    mc = w @ x0
    torch.testing.assert_close(gmm.denoise(x_t, ab), mc, atol=0.01, rtol=0)


def test_eps_model_uses_the_schedule(gmm):
    s = dl.cosine_schedule(100)
    x = torch.randn(5, 2)
    t = torch.tensor([1, 10, 50, 90, 100])
    ab = torch.tensor(s.alpha_bar[t.numpy()])
    torch.testing.assert_close(gmm.eps_model(s)(x, t), gmm.eps(x, ab))
    torch.testing.assert_close(gmm.eps(x, ab), -((1 - ab).sqrt()[:, None] * gmm.score(x, ab)).float())


def test_mixture_input_validation():
    with pytest.raises(ValueError, match="sum to 1"):
        dl.GaussianMixture(torch.tensor([0.5, 0.6]), torch.zeros(2, 2), torch.eye(2).expand(2, 2, 2))
    with pytest.raises(ValueError, match="shapes disagree"):
        dl.GaussianMixture(torch.tensor([1.0]), torch.zeros(1, 2), torch.eye(3)[None])
    with pytest.raises(ValueError, match=r"x must have shape \(B, 2\)"):
        dl.GaussianMixture.ring().score(torch.zeros(3, 3))
