"""diffusion_lab.metrics: the energy distance, its floor and ratio, the exact-law energy distance to an
isotropic 2D mixture (Rice means; the former test_mixture_energy.py), diversity, and identification."""

import numpy as np
import pytest
import torch

import diffusion_lab as dl

pytestmark = pytest.mark.usefixtures("one_thread")


def test_energy_distance_of_a_sample_with_itself_is_zero():
    x = torch.randn(300, 2)
    assert dl.energy_distance(x, x) == pytest.approx(0.0, abs=1e-12)


def test_energy_distance_grows_with_a_shift():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(2000, 2, generator=g), torch.randn(2000, 2, generator=g)
    d0 = dl.energy_distance(x, y)
    d1 = dl.energy_distance(x, y + torch.tensor([0.3, 0.0]))
    d2 = dl.energy_distance(x, y + torch.tensor([1.0, 0.0]))
    assert 0 < d0 < d1 < d2


def test_floor_matches_its_expectation():
    """For two samples of one distribution, E[V-statistic] = E|X − X'| (1/n + 1/m)."""
    real = lambda n, seed: torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))
    n = 1000
    floor = dl.energy_distance_floor(real, n, repeats=20)
    big = real(4000, 99).double()
    mean_pair_distance = torch.cdist(big, big).sum() / (4000 * 3999)
    expected = float(mean_pair_distance) * 2 / n
    assert floor == pytest.approx(expected, rel=0.15)


def test_energy_ratio_is_near_one_for_real_samples_and_large_for_bad_ones():
    real = lambda n, seed: dl.swiss_roll(n, seed=seed)
    floor = dl.energy_distance_floor(real, 1000, repeats=5)
    assert dl.energy_ratio(real(1000, 7), real, floor=floor) < 2.5
    assert dl.energy_ratio(torch.randn(1000, 2), real, floor=floor) > 5


def test_input_checks():
    with pytest.raises(ValueError, match="same dimension"):
        dl.energy_distance(torch.zeros(5, 2), torch.zeros(5, 3))
    with pytest.raises(ValueError, match=r"must have shape \(n, D\)"):
        dl.energy_distance(torch.zeros(5), torch.zeros(5))


def test_identification_accuracy_goes_from_certain_to_chance():
    images, _ = dl.digits_8x8()
    s = dl.cosine_schedule(100)
    acc = dl.identification_accuracy(s, images, [0, 10, 100], n_queries=200,
                                      generator=torch.Generator().manual_seed(0))
    assert acc.shape == (3,)
    assert acc[0] == 1.0  # t = 0: x_t is x_0 itself (the digits set has no exact duplicates queried)
    assert acc[1] > 0.9
    assert acc[2] < 0.03  # t = T: chance is 1/1797


# --- Against a mixture's exact law ---------------------------------------------------------------


def test_rice_means_match_monte_carlo():
    gmm = dl.GaussianMixture(torch.tensor([0.3, 0.7]), torch.tensor([[0.0, 0.0], [2.0, 1.0]]),
                             torch.stack([0.2**2 * torch.eye(2), 0.5**2 * torch.eye(2)]))
    y = gmm.sample(400_000, generator=torch.Generator().manual_seed(0)).double()
    x = torch.tensor([[0.1, 0.2], [2.0, 1.0], [-3.0, 4.0]], dtype=torch.float64)
    # Standard error of a mean of 400,000 distances of spread ~1: below 2e-3.
    np.testing.assert_allclose(dl.mixture_mean_distance(gmm, x), torch.cdist(x, y).mean(1).numpy(), atol=6e-3)
    assert dl.mixture_mean_distance(gmm) == pytest.approx((y[:200_000] - y[200_000:]).norm(dim=1).mean().item(),
                                                          abs=6e-3)


def test_unbiased_for_samples_of_the_law_and_positive_for_a_wrong_law():
    ring = dl.GaussianMixture.ring(n_components=8, radius=1.5, std=0.15)
    spread = dl.mixture_mean_distance(ring)
    g = torch.Generator().manual_seed(0)  # one generator: nearby seeds can give correlated draws
    null = [dl.energy_distance_to_mixture(ring.sample(2000, generator=g), ring) for _ in range(30)]
    # Zero mean: the V-statistic's floor E|Y - Y'|/n = 9.6e-4 would be 15 standard errors away.
    assert abs(np.mean(null)) < 3 * np.std(null) / np.sqrt(30), (np.mean(null), np.std(null))
    assert abs(np.mean(null)) < spread / 2000 / 3
    wider = dl.GaussianMixture.ring(n_components=8, radius=1.5, std=0.3)
    off = dl.energy_distance_to_mixture(wider.sample(2000, generator=torch.Generator().manual_seed(1)), ring)
    assert off > 5 * np.std(null), off
    # V-statistic identity: U + W/n is the V-statistic against the exact law.
    x = ring.sample(500, generator=torch.Generator().manual_seed(2)).double()
    v = 2 * dl.mixture_mean_distance(ring, x).mean() - torch.cdist(x, x).mean().item() - spread
    w = torch.cdist(x, x).sum().item() / (500 * 499)
    assert dl.energy_distance_to_mixture(x, ring) + w / 500 == pytest.approx(v, rel=1e-9)
    assert dl.mean_pairwise_distance(x) == pytest.approx(w, rel=1e-12)  # the diversity measure is W


def test_mixture_energy_clear_errors():
    ring = dl.GaussianMixture.ring(3)
    with pytest.raises(ValueError, match="isotropic"):
        dl.energy_distance_to_mixture(torch.zeros(5, 2), dl.GaussianMixture(
            torch.ones(1), torch.zeros(1, 2), torch.tensor([[[1.0, 0.5], [0.5, 1.0]]])))
    with pytest.raises(ValueError, match="2D mixture"):
        dl.mixture_mean_distance(dl.GaussianMixture(torch.ones(1), torch.zeros(1, 3), torch.eye(3)[None]))
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        dl.mixture_mean_distance(ring, torch.zeros(4, 3))
    with pytest.raises(ValueError, match="at least 2 samples"):
        dl.energy_distance_to_mixture(torch.zeros(1, 2), ring)
    with pytest.raises(ValueError, match=r"x must have shape \(n, D\) with n >= 2"):
        dl.mean_pairwise_distance(torch.zeros(1, 2))


def test_sobol_normal_is_an_even_standard_normal_sample():
    z = dl.sobol_normal(4096, seed=0)
    assert z.shape == (4096, 2) and z.dtype == torch.float64 and torch.isfinite(z).all()
    # Quasi-random: moments far closer to N(0, I) than the 1/sqrt(n) = 0.016 of independent draws.
    assert z.mean(0).abs().max() < 2e-3 and (z.var(0) - 1).abs().max() < 1e-2
    assert not torch.equal(z, dl.sobol_normal(4096, seed=1))
    torch.testing.assert_close(z, dl.sobol_normal(4096, seed=0))
    # Exact empirical energy distance of a quasi-random sample of the law itself: almost no floor.
    ring = dl.GaussianMixture.ring(n_components=8, radius=1.5, std=0.15)
    u = torch.quasirandom.SobolEngine(3, scramble=True, seed=3).draw(4096, dtype=torch.float64)
    x = ring.means[(u[:, 0] * 8).long()] + 0.15 * torch.special.ndtri(u[:, 1:].clamp(1e-12, 1 - 1e-12))
    v = dl.energy_distance_to_mixture(x, ring, unbiased=False)
    assert 0 <= v < 0.05 * dl.mixture_mean_distance(ring) / 4096, v
