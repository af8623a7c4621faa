import pytest
import torch

import diffusion_lab as dl

pytestmark = pytest.mark.usefixtures("one_thread")  # 200 oracle calls on small batches


def zero_eps(schedule):
    return dl.Denoiser(lambda x, t: torch.zeros_like(x), schedule, predicts="eps")


@pytest.fixture
def gmm():
    return dl.GaussianMixture.ring(n_components=4, radius=1.5, std=0.2)


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_ddpm_with_the_exact_score_reproduces_the_mixture(gmm, variance):
    """Algorithm 2 driven by the exact ε of a Gaussian mixture must return the mixture itself, up to
    discretisation error: each component keeps its weight, mean and spread. Tolerances are about
    4 standard errors for n = 8,000 samples plus a small allowance for discretisation."""
    s = dl.cosine_schedule(200)
    n = 8000
    x = dl.ddpm_sample(gmm.denoiser(s), (n, 2), generator=torch.Generator().manual_seed(0),
                       variance=variance).double()
    nearest = torch.cdist(x, gmm.means).argmin(1)
    weights = torch.bincount(nearest, minlength=4) / n
    assert torch.all((weights - 0.25).abs() < 4 * (0.25 * 0.75 / n) ** 0.5), weights
    for k in range(4):
        points = x[nearest == k]
        assert torch.all((points.mean(0) - gmm.means[k]).abs() < 0.03), (k, points.mean(0))
        assert torch.all((points.std(0) - 0.2).abs() < 0.02), (k, points.std(0))


def test_trajectory_is_in_sampling_order_and_ends_at_the_sample(gmm):
    s = dl.cosine_schedule(20)
    x_T = torch.randn(50, 2)
    x0, traj = dl.ddpm_sample(gmm.denoiser(s), x_T, generator=torch.Generator().manual_seed(1),
                              return_trajectory=True)
    assert traj.shape == (21, 50, 2)
    torch.testing.assert_close(traj[0], x_T)
    torch.testing.assert_close(traj[20], x0)
    # traj[i] is the state at the i-th grid time t_i = 20 − i: the last step (t = 1 → 0) adds no noise,
    # so it is the posterior mean at the state before it.
    t1, t0 = torch.ones(50, dtype=torch.long), torch.zeros(50, dtype=torch.long)
    torch.testing.assert_close(dl.ddpm_step(gmm.denoiser(s), traj[19], t1, t0, noise=False), x0)


def test_sampler_is_reproducible_and_serves_images():
    s = dl.linear_schedule(50)
    a = dl.ddpm_sample(zero_eps(s), (4, 1, 8, 8), generator=torch.Generator().manual_seed(3))
    b = dl.ddpm_sample(zero_eps(s), (4, 1, 8, 8), generator=torch.Generator().manual_seed(3))
    assert a.shape == (4, 1, 8, 8)
    torch.testing.assert_close(a, b)


def test_sampler_leaves_the_starting_noise_untouched():
    s = dl.linear_schedule(50)
    x_T = torch.randn(3, 2)
    before = x_T.clone()
    dl.ddpm_sample(zero_eps(s), x_T)
    torch.testing.assert_close(x_T, before)


def test_sampler_input_checks():
    s = dl.linear_schedule(50)
    with pytest.raises(ValueError, match="unknown reverse variance 'sigma'; choose one of: beta, beta_tilde"):
        dl.ddpm_sample(zero_eps(s), (2, 2), variance="sigma")
    with pytest.raises(ValueError, match="x_T must be a tensor or a shape"):
        dl.ddpm_sample(zero_eps(s), (2, -1))
    with pytest.raises(TypeError, match="samplers take a dl.Denoiser, got function"):
        dl.ddpm_sample(lambda x, t: x, (2, 2))
