"""Image metrics (diffusion_lab.image_metrics): the Fréchet distance against closed forms, the FLD's
floor, PSNR and the masked error."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch

import diffusion_lab as dl
from diffusion_lab.image_metrics import feature_stats


def random_spd(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_diagonal_gaussians_closed_form():
    # For commuting (here diagonal) covariances the trace term is Σ (√s₁ − √s₂)².
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = 1.0 + 4.0 + ((np.sqrt(s1) - np.sqrt(s2)) ** 2).sum()
    assert dl.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-12)


def test_general_covariances_match_scipy_sqrtm():
    rng = np.random.default_rng(0)
    s1, s2 = random_spd(rng, 6), random_spd(rng, 6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    ref = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert dl.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-8)
    assert dl.frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-9)
    # Symmetric in its two arguments.
    assert dl.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(dl.frechet_distance(mu2, s2, mu1, s1), rel=1e-9)


def test_feature_estimate_converges_to_the_gaussian_value(gen):
    """From samples of N(0, I) and N(m, 4I) in D=4 the estimate approaches |m|² + D·(2 − 1)²."""
    d, n = 4, 20_000
    a = torch.randn(n, d, generator=gen, dtype=torch.float64)
    b = 1.0 + 2.0 * torch.randn(n, d, generator=gen, dtype=torch.float64)
    exact = d * 1.0 + d * (2.0 - 1.0) ** 2
    # Sampling error of the moments is O(1/√n) relative: 5% is many standard errors.
    assert dl.frechet_distance_features(a, b) == pytest.approx(exact, rel=0.05)
    mu, cov = feature_stats(a)
    assert mu.shape == (d,) and cov.shape == (d, d)


def test_fld_of_a_sample_with_itself_is_zero_and_floor_is_small():
    torch.manual_seed(0)
    classifier = dl.LeNet(1, 8, feature_dim=16).eval()
    train, _ = dl.digits_8x8(split="train")
    test, _ = dl.digits_8x8(split="test")
    assert dl.fld(classifier, test, test) == pytest.approx(0.0, abs=1e-6)
    floor = dl.fld_floor(classifier, train, test, generator=torch.Generator().manual_seed(0))
    noise = torch.rand(500, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    assert 0 < floor < dl.fld(classifier, noise, test)


def test_bad_feature_shapes_raise():
    with pytest.raises(ValueError, match="shape"):
        dl.frechet_distance_features(torch.zeros(10), torch.zeros(10, 2))
    with pytest.raises(ValueError, match="shapes do not match"):
        dl.frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


def test_psnr_and_masked_mse_closed_forms():
    target = torch.zeros(2, 1, 2, 2)
    x = target + 0.2  # MSE 0.04
    torch.testing.assert_close(dl.psnr(x, target), torch.full((2,), 10 * math.log10(4 / 0.04)))
    region = torch.tensor([[True, False], [False, False]])
    x[:, :, 0, 0] = 1.0
    torch.testing.assert_close(dl.masked_mse(x, target, region), torch.ones(2))
    with pytest.raises(ValueError, match="region is empty"):
        dl.masked_mse(x, target, torch.zeros(2, 2, dtype=torch.bool))
