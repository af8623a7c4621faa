"""The Gaussian-mixture oracle under the general noising x = s·x_0 + σ·z of the SDE chapters."""

import math

import pytest
import torch

import diffusion_lab as dl


@pytest.mark.parametrize("scale, std", [(1.0, 0.0), (1.0, 3.0), (0.3, 0.2), (0.05, 1.0)])
def test_score_at_is_the_gradient_of_log_prob_at(gmm, scale, std):
    x = torch.randn(64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 2
    x.requires_grad_(True)
    grad, = torch.autograd.grad(gmm.log_prob_at(x, scale, std).sum(), x)
    torch.testing.assert_close(gmm.score_at(x.detach(), scale, std), grad)


def test_per_example_scale_and_std(gmm):
    x = torch.randn(4, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    scale, std = torch.tensor([1.0, 0.5, 0.2, 0.9]), torch.tensor([0.0, 0.4, 2.0, 0.1])
    x.requires_grad_(True)
    grad, = torch.autograd.grad(gmm.log_prob_at(x, scale, std).sum(), x)
    torch.testing.assert_close(gmm.score_at(x.detach(), scale, std), grad)
    for i in range(4):
        torch.testing.assert_close(gmm.score_at(x[i:i + 1].detach(), float(scale[i]), float(std[i])),
                                   grad[i:i + 1])


@pytest.mark.parametrize("alpha_bar", [1.0, 0.7, 0.1])
def test_the_alpha_bar_methods_are_the_case_s_sqrt_alpha_bar(gmm, alpha_bar):
    x = torch.randn(32, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    s, sd = math.sqrt(alpha_bar), math.sqrt(1 - alpha_bar)
    # Equal up to rounding: √ᾱ squared is not exactly ᾱ in floating point.
    torch.testing.assert_close(gmm.log_prob_at(x, s, sd), gmm.log_prob(x, alpha_bar), rtol=1e-7, atol=1e-7)
    torch.testing.assert_close(gmm.score_at(x, s, sd), gmm.score(x, alpha_bar), rtol=1e-7, atol=1e-7)


def test_log_prob_at_is_the_density_of_scaled_noisy_samples(gmm, gen):
    """Monte Carlo: the mean of log p(x) over x = s x_0 + σ z equals the average log-density computed
    on a fine grid (the negative entropy), within Monte Carlo error."""
    s, sd = 0.6, 0.5
    x = s * gmm.sample(100_000, generator=gen).double() + sd * torch.randn(100_000, 2, generator=gen,
                                                                             dtype=torch.float64)
    grid = torch.linspace(-5, 5, 401, dtype=torch.float64)
    xx, yy = torch.meshgrid(grid, grid, indexing="ij")
    pts = torch.stack([xx.flatten(), yy.flatten()], 1)
    logp = gmm.log_prob_at(pts, s, sd)
    cell = float(grid[1] - grid[0]) ** 2
    assert float(logp.exp().sum() * cell) == pytest.approx(1.0, abs=1e-3)
    neg_entropy = float((logp.exp() * logp).sum() * cell)
    mc = gmm.log_prob_at(x, s, sd)
    assert float(mc.mean()) == pytest.approx(neg_entropy, abs=4 * float(mc.std()) / 100_000**0.5)


@pytest.mark.parametrize("sde", [dl.VPSDE(), dl.SubVPSDE(), dl.VESDE()], ids=repr)
def test_score_model_uses_the_sde_marginal(gmm, sde):
    x = torch.randn(5, 2, dtype=torch.float64)
    t = torch.tensor([0.0, 0.01, 0.3, 0.7, 1.0], dtype=torch.float64)
    scale, std = sde.marginal_mean_std(t)
    torch.testing.assert_close(gmm.score_model(sde)(x, t), gmm.score_at(x, scale, std))


def test_scaled_input_validation(gmm):
    with pytest.raises(ValueError, match="scale must be positive and std non-negative"):
        gmm.score_at(torch.zeros(2, 2), 0.0, 1.0)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 2\)"):
        gmm.log_prob_at(torch.zeros(2, 3), 1.0, 1.0)
