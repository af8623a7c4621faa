import numpy as np
import pytest
import torch

import diffusion_lab as dl
from diffusion_lab.schedules import QUANTITIES


@pytest.mark.parametrize("name", dl.SCHEDULES)
def test_default_schedules_follow_the_indexing_convention(name):
    s = dl.make_schedule(name, 1000)
    assert s.T == 1000
    for q in ("beta", "alpha", "alpha_bar", "snr", "log_snr", "beta_tilde"):
        a = getattr(s, q)
        assert a.shape == (1001,) and a.dtype == np.float64
    assert s.beta[0] == 0 and s.alpha[0] == 1 and s.alpha_bar[0] == 1 and np.isinf(s.snr[0])
    assert np.all((s.beta[1:] > 0) & (s.beta[1:] < 1))
    np.testing.assert_allclose(s.alpha_bar[1:], np.cumprod(1 - s.beta[1:]))


@pytest.mark.parametrize("name", dl.SCHEDULES)
@pytest.mark.parametrize("T", [50, 100, 1000])
def test_alpha_bar_decreases_to_nearly_zero(name, T):
    s = dl.make_schedule(name, T)
    assert np.all(np.diff(s.alpha_bar) < 0)
    assert np.all(np.diff(s.log_snr[1:]) < 0)
    assert s.alpha_bar[-1] < 1e-3


def test_linear_matches_ddpm_paper_range():
    s = dl.linear_schedule(1000)
    assert s.beta[1] == pytest.approx(1e-4) and s.beta[1000] == pytest.approx(0.02)
    np.testing.assert_allclose(np.diff(s.beta[1:]), (0.02 - 1e-4) / 999)


def test_cosine_follows_its_formula_and_clips_beta():
    T, s_off = 1000, 0.008
    s = dl.cosine_schedule(T)
    f = lambda t: np.cos((t / T + s_off) / (1 + s_off) * np.pi / 2) ** 2
    np.testing.assert_allclose(s.alpha_bar[1:500], f(np.arange(1, 500)) / f(0), rtol=1e-12)
    assert s.beta.max() <= 0.999
    assert s.beta[-1] == pytest.approx(0.999)  # the singular last step is clipped, as in the paper


def test_sigmoid_is_symmetric_between_its_end_points():
    s = dl.sigmoid_schedule(1000, beta_start=1e-4, beta_end=0.02)
    b = s.beta[1:]
    np.testing.assert_allclose(b + b[::-1], b[0] + b[-1], rtol=1e-12)
    assert b[0] > 1e-4 and b[-1] < 0.02


def test_beta_tilde_matches_its_definition():
    s = dl.cosine_schedule(100)
    t = np.arange(2, 101)
    expected = (1 - s.alpha_bar[t - 1]) / (1 - s.alpha_bar[t]) * s.beta[t]
    np.testing.assert_allclose(s.beta_tilde[t], expected)
    assert s.beta_tilde[1] == 0
    assert np.all(s.beta_tilde[2:] < s.beta[2:])


def test_from_betas_prepends_t0_and_round_trips():
    betas = np.linspace(0.01, 0.2, 10)
    s = dl.from_betas(betas, name="mine")
    np.testing.assert_array_equal(s.beta[1:], betas)
    assert s.T == 10 and s.name == "mine"


def test_schedules_are_immutable():
    s = dl.linear_schedule(10, beta_start=0.01, beta_end=0.1)
    with pytest.raises(ValueError):
        s.alpha_bar[3] = 0.5
    with pytest.raises(ValueError):
        s.beta[1] = 0.5
    with pytest.raises(AttributeError):
        s.name = "other"
    source = np.array([0.0, 0.1, 0.2])
    s2 = dl.NoiseSchedule(source)
    source[1] = 0.9  # changing the caller's array must not change the schedule
    assert s2.beta[1] == 0.1


def test_gather_broadcasts_and_casts_at_use():
    s = dl.linear_schedule(1000)
    t = torch.tensor([1, 500, 1000])
    for x in (torch.zeros(3, 2), torch.zeros(3, 1, 8, 8, dtype=torch.float64)):
        ab = s.gather("alpha_bar", t, x)
        assert ab.shape == (3,) + (1,) * (x.ndim - 1) and ab.dtype == x.dtype
        np.testing.assert_allclose(ab.flatten().double().numpy(), s.alpha_bar[[1, 500, 1000]], rtol=1e-6)
    assert set(QUANTITIES) >= {"alpha_bar", "beta_tilde"}


def test_continuous_time():
    s = dl.linear_schedule(1000)
    assert s.continuous_time(250) == 0.25 and s.continuous_time(1000) == 1.0


@pytest.mark.parametrize("bad", ["cosin", "Linear", ""])
def test_unknown_schedule_names_the_choices(bad):
    with pytest.raises(ValueError, match=r"unknown schedule .*choose one of: linear, cosine, sigmoid"):
        dl.make_schedule(bad, 100)


@pytest.mark.parametrize("betas", [[0.1, 1.0], [0.0, 0.1], [-0.1], [0.5, float("nan")], [1.5]])
def test_betas_outside_the_unit_interval_are_rejected(betas):
    with pytest.raises(ValueError, match=r"open interval \(0, 1\)"):
        dl.from_betas(betas)


def test_beta_range_arguments_are_checked():
    with pytest.raises(ValueError, match=r"beta_end = 1.5 is outside the open interval \(0, 1\)"):
        dl.linear_schedule(100, beta_end=1.5)
    # DDPM's range scaled by 1000/T is invalid for tiny T: the message says what to do.
    with pytest.raises(ValueError, match="pass beta_start and beta_end explicitly"):
        dl.linear_schedule(10)
    with pytest.raises(ValueError, match="max_beta"):
        dl.cosine_schedule(100, max_beta=1.0)


@pytest.mark.parametrize("T", [0, -5])
def test_T_below_one_is_rejected(T):
    with pytest.raises(ValueError, match=rf"T \(the number of diffusion steps\) must be an int >= 1, got {T}$"):
        dl.make_schedule("cosine", T)


@pytest.mark.parametrize("T", [10.0, "100", True])
def test_T_must_be_an_integer(T):
    with pytest.raises(TypeError, match=r"T \(the number of diffusion steps\) must be an int >= 1, got "):
        dl.linear_schedule(T)


def test_timesteps_validation_names_the_valid_range():
    s = dl.cosine_schedule(100)
    assert s.timesteps(7, 4).tolist() == [7, 7, 7, 7]
    with pytest.raises(ValueError, match=r"t = 0 is outside the valid steps 1..100"):
        s.timesteps(0, 4)
    with pytest.raises(ValueError, match=r"t = 101 is outside the valid steps 1..100"):
        s.timesteps(torch.tensor([1, 101]), 2)
    assert s.timesteps(0, 2, min_t=0).tolist() == [0, 0]
    with pytest.raises(ValueError, match=r"t must have shape \(3,\)"):
        s.timesteps(torch.tensor([1, 2]), 3)
    with pytest.raises(TypeError, match="integer steps"):
        s.timesteps(torch.tensor([0.5, 1.0]), 2)
    with pytest.raises(TypeError, match="t must be an int, got 2.5"):
        s.timesteps(2.5, 2)


def test_gather_rejects_unknown_quantities():
    s = dl.cosine_schedule(10)
    with pytest.raises(ValueError, match="unknown schedule quantity 'alphabar'; choose one of: beta, alpha, alpha_bar"):
        s.gather("alphabar", torch.tensor([1]), torch.zeros(1, 2))
