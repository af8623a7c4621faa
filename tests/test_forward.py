import math

import numpy as np
import pytest
import torch

import diffusion_lab as dl

pytestmark = pytest.mark.usefixtures("one_thread")  # hundreds of small steps: 2 threads only add overhead

SHAPES = [(5, 2), (5, 1, 8, 8), (5, 3, 4, 4)]


@pytest.mark.parametrize("t", [1, 10, 100, 300])
def test_closed_form_matches_iterated_steps_by_monte_carlo(t, gen):
    """q(x_t | x_0) in closed form equals t applications of q(x_t | x_{t-1}).

    Both are sampled from a fixed x_0; empirical means and variances must agree with the closed
    form within 5 standard errors of the Monte Carlo estimate (n = 40,000 draws per coordinate).
    """
    s = dl.linear_schedule(1000)
    n = 40_000
    x0 = torch.tensor([[1.5, -0.7]], dtype=torch.float64).expand(n, 2)
    x = x0
    for step in range(1, t + 1):
        x = dl.q_step_sample(s, x, step, generator=gen)
    direct = dl.q_sample(s, x0, t, generator=gen)
    mean = math.sqrt(s.alpha_bar[t]) * x0[0]
    var = 1 - s.alpha_bar[t]
    se_mean = math.sqrt(var / n)
    se_var = var * math.sqrt(2 / (n - 1))
    for samples in (x, direct):
        assert torch.all((samples.mean(0) - mean).abs() < 5 * se_mean)
        assert torch.all((samples.var(0) - var).abs() < 5 * se_var)


def test_q_sample_is_the_reparameterised_formula():
    s = dl.cosine_schedule(100)
    x0, eps = torch.randn(4, 2), torch.randn(4, 2)
    t = torch.tensor([0, 1, 50, 100])
    ab = torch.tensor(s.alpha_bar[[0, 1, 50, 100]], dtype=torch.float32).unsqueeze(1)
    torch.testing.assert_close(dl.q_sample(s, x0, t, noise=eps), ab.sqrt() * x0 + (1 - ab).sqrt() * eps)
    torch.testing.assert_close(dl.q_sample(s, x0, 0, noise=eps), x0)  # t = 0 is the data itself


@pytest.mark.parametrize("t", [1, 2, 30, 100])
def test_posterior_matches_gaussian_conditioning(t):
    """μ̃_t and β̃_t equal the conditional of the jointly Gaussian (x_{t-1}, x_t) given x_0."""
    s = dl.cosine_schedule(100)
    x0 = torch.tensor([[0.8, -1.2], [2.0, 0.1]], dtype=torch.float64)
    x_t = torch.tensor([[0.3, 0.4], [-1.0, 1.5]], dtype=torch.float64)
    ab, ab_prev, a = s.alpha_bar[t], s.alpha_bar[t - 1], s.alpha[t]
    cov = math.sqrt(a) * (1 - ab_prev)  # Cov(x_{t-1}, x_t | x_0)
    mean_expected = math.sqrt(ab_prev) * x0 + cov / (1 - ab) * (x_t - math.sqrt(ab) * x0)
    var_expected = (1 - ab_prev) - cov**2 / (1 - ab)
    mean, var = dl.q_posterior(s, x_t, x0, t)
    torch.testing.assert_close(mean, mean_expected)
    assert var.shape == (2, 1)
    np.testing.assert_allclose(var.flatten().numpy(), var_expected, atol=1e-15)


@pytest.mark.parametrize("shape", SHAPES)
def test_same_code_serves_points_and_images(shape, gen):
    s = dl.linear_schedule(100)
    x0 = torch.randn(shape, generator=gen)
    t = torch.randint(1, 101, (shape[0],), generator=gen)
    assert dl.q_sample(s, x0, t, generator=gen).shape == shape
    assert dl.q_step_sample(s, x0, t, generator=gen).shape == shape
    mean, var = dl.q_posterior(s, x0, x0, t)
    assert mean.shape == shape and var.shape == (shape[0],) + (1,) * (len(shape) - 1)
    m, std = dl.q_mean_std(s, x0, t)
    assert m.shape == shape and std.shape == var.shape


def test_generator_replays_the_same_noise():
    s = dl.linear_schedule(100)
    x0 = torch.zeros(3, 2)
    a = dl.q_sample(s, x0, 50, generator=torch.Generator().manual_seed(7))
    b = dl.q_sample(s, x0, 50, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(a, b)


def test_inputs_are_not_modified():
    s = dl.linear_schedule(100)
    x0 = torch.randn(3, 2)
    before = x0.clone()
    dl.q_sample(s, x0, 10)
    dl.q_step_sample(s, x0, 10)
    dl.q_posterior(s, x0, x0, 10)
    torch.testing.assert_close(x0, before)


def test_out_of_range_steps_are_rejected():
    s = dl.linear_schedule(100)
    x = torch.zeros(2, 2)
    with pytest.raises(ValueError, match=r"outside the valid steps 1..100"):
        dl.q_step_sample(s, x, 0)
    with pytest.raises(ValueError, match=r"outside the valid steps 0..100"):
        dl.q_sample(s, x, 101)
    with pytest.raises(ValueError, match=r"outside the valid steps 1..100"):
        dl.q_posterior(s, x, x, torch.tensor([0, 5]))


def test_mismatched_shapes_are_rejected():
    s = dl.linear_schedule(100)
    with pytest.raises(ValueError, match=r"noise and x must have the same shape, got \(2, 3\) and \(2, 2\)"):
        dl.q_sample(s, torch.zeros(2, 2), 5, noise=torch.zeros(2, 3))
    with pytest.raises(ValueError, match="x_t and x0 must have the same shape"):
        dl.q_posterior(s, torch.zeros(2, 2), torch.zeros(3, 2), 5)
    with pytest.raises(ValueError, match=r"t must have shape \(2,\)"):
        dl.q_sample(s, torch.zeros(2, 2), torch.tensor([1, 2, 3]))


def test_mismatched_devices_are_rejected():
    # The meta device stands in for a GPU: no accelerator is needed to test the check.
    s = dl.linear_schedule(100)
    x = torch.zeros(2, 2)
    with pytest.raises(ValueError, match=r"noise is on meta but x is on cpu"):
        dl.q_sample(s, x, 5, noise=torch.zeros(2, 2, device="meta"))
    with pytest.raises(ValueError, match="x_t is on cpu but x0 is on meta"):
        dl.q_posterior(s, x, torch.zeros(2, 2, device="meta"), 5)
    with pytest.raises(ValueError, match="t is on meta but the data is on cpu"):
        dl.q_sample(s, x, torch.ones(2, dtype=torch.long, device="meta"))


def test_non_tensor_inputs_get_a_type_error():
    s = dl.linear_schedule(100)
    with pytest.raises(TypeError, match="x0 must be a torch.Tensor, got ndarray"):
        dl.q_sample(s, np.zeros((2, 2)), 5)
