import pytest
import torch

import diffusion_lab as dl


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
