"""Langevin and annealed Langevin dynamics with the exact Gaussian-mixture score."""

import pytest
import torch

import diffusion_lab as dl
from _energy import energy_ratio, mode_weights

pytestmark = pytest.mark.usefixtures("one_thread")  # thousands of oracle calls on 5,000 points

N = 5000


def annealed(gmm, sigma_max, sigma_min, levels, x_T, **options):
    """Song & Ermon's Algorithm 1 with the exact score, on NCSN's noise levels σ_max > ... > σ_min: the
    mixture's score at level σ as a score network s(x, σ), as an NCSN is."""
    process = dl.NoiseLevels(sigma_min, sigma_max)
    score_net = dl.Denoiser(lambda x, sigma: gmm.score(x, 1.0, sigma), process, predicts="score")
    return dl.annealed_langevin_dynamics(score_net, x_T, times=process.time_grid(levels - 1), **options)


def two_modes(pi: float = 0.2) -> dl.GaussianMixture:
    """Song & Ermon (2019), Sec. 3.2.2: p = π N((−5, −5), I) + (1 − π) N((5, 5), I)."""
    return dl.GaussianMixture(torch.tensor([pi, 1 - pi]), torch.tensor([[-5.0, -5.0], [5.0, 5.0]]),
                              torch.eye(2).expand(2, 2, 2).clone())


def test_langevin_reproduces_a_gaussian():
    """Unimodal case: ULA with a small step reaches N(μ, Σ) (the O(ε) bias is ~1% of the variance)."""
    target = dl.GaussianMixture(torch.tensor([1.0]), torch.tensor([[0.5, -0.3]]),
                                torch.tensor([[[0.4, 0.1], [0.1, 0.25]]]))
    x = dl.langevin_dynamics(target.score, (N, 2), step_size=0.01, steps=600,
                             generator=torch.Generator().manual_seed(0))
    ratio = energy_ratio(x, target)
    assert ratio <= 2.0, ratio
    torch.testing.assert_close(x.double().mean(0), target.means[0], atol=0.03, rtol=0)
    torch.testing.assert_close(torch.cov(x.double().T), target.covs[0], atol=0.03, rtol=0)


def test_annealed_langevin_reproduces_the_mixture():
    """Song & Ermon's Algorithm 1 with their step rule α_i = ε σ_i²/σ_L² on an equal-weight ring."""
    gmm = dl.GaussianMixture.ring(n_components=4, radius=1.5, std=0.2)
    x = annealed(gmm, 4.0, 0.01, 10, (N, 2), step_size=5e-5, steps_each=100, generator=torch.Generator().manual_seed(0))
    ratio = energy_ratio(x, gmm)
    assert ratio <= 2.0, ratio
    se = (gmm.weights * (1 - gmm.weights) / N).sqrt()
    assert torch.all((mode_weights(x, gmm) - gmm.weights).abs() < 4 * se), mode_weights(x, gmm)


def test_annealed_langevin_on_unequal_modes_reproduces_the_mixture(gmm):
    """Issue bar on the unequal three-component mixture of the chapter. Song & Ermon's ten levels
    with ε = 5e-5 are biased here (measured: ratio ≈ 4.5, the tight mode loses mass: steps at the
    levels where the modes separate are half the variance σ_i²); 30 finer levels with ε = 2e-5
    (3,000 steps) reach the floor, as Song & Ermon (2020) advise."""
    x = annealed(gmm, 4.0, 0.01, 30, (N, 2), step_size=2e-5, steps_each=100, generator=torch.Generator().manual_seed(0))
    ratio = energy_ratio(x, gmm)
    assert ratio <= 2.0, ratio
    se = (gmm.weights * (1 - gmm.weights) / N).sqrt()
    assert torch.all((mode_weights(x, gmm) - gmm.weights).abs() < 4 * se), mode_weights(x, gmm)
    coarse = annealed(gmm, 4.0, 0.01, 10, (N, 2), step_size=5e-5, steps_each=100,
                      generator=torch.Generator().manual_seed(0))
    assert energy_ratio(coarse, gmm) > ratio  # the chapter's contrast: the coarse settings are worse


def test_plain_langevin_gets_the_mixture_weights_wrong_and_annealing_fixes_them():
    """The pitfall of Song & Ermon (2019), Fig. 3: started uniformly, plain Langevin keeps each chain
    in the basin it starts in, so it returns about 1/2 : 1/2 instead of 1/5 : 4/5; annealed Langevin
    recovers π within 4 standard errors."""
    gmm, g = two_modes(0.2), torch.Generator().manual_seed(0)
    init = torch.rand(N, 2, generator=g) * 16 - 8  # uniform on [−8, 8]²
    plain = dl.langevin_dynamics(gmm.score, init, step_size=0.1, steps=1000, generator=g)
    fixed = annealed(gmm, 20.0, 1.0, 10, init, step_size=0.1, steps_each=100, generator=g)
    pi_plain, pi_annealed = float(mode_weights(plain, gmm)[0]), float(mode_weights(fixed, gmm)[0])
    assert abs(pi_plain - 0.5) < 0.05, pi_plain
    assert abs(pi_annealed - 0.2) < 4 * (0.2 * 0.8 / N) ** 0.5, pi_annealed


def test_trajectories_reproducibility_and_no_mutation(gmm):
    x_init = torch.randn(50, 2)
    before = x_init.clone()
    score = lambda x: gmm.score(x, 1.0, 0.1)  # noqa: E731
    a, traj = dl.langevin_dynamics(score, x_init, step_size=0.01, steps=7, return_trajectory=True,
                                   generator=torch.Generator().manual_seed(3))
    b = dl.langevin_dynamics(score, x_init, step_size=0.01, steps=7, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)
    assert traj.shape == (8, 50, 2)
    torch.testing.assert_close(traj[0], before)
    torch.testing.assert_close(traj[-1], a)
    torch.testing.assert_close(x_init, before)
    x, traj = annealed(gmm, 1.0, 0.1, 4, (50, 2), step_size=1e-3, steps_each=3, return_trajectory=True,
                       generator=torch.Generator().manual_seed(4))
    assert traj.shape == (5, 50, 2)
    torch.testing.assert_close(traj[-1], x)
    # A shape starts from the process's prior N(0, σ_max² I), from the generator.
    torch.testing.assert_close(traj[0], 1.0 * torch.randn(50, 2, generator=torch.Generator().manual_seed(4)))
    # The same chain on an SDE's times: the denoiser's process decides what a time means.
    vp, times = dl.VPSDE(), torch.tensor([0.5, 0.2, 0.05], dtype=torch.float64)
    y = dl.annealed_langevin_dynamics(gmm.denoiser(vp), x_init, times=times, step_size=1e-3, steps_each=2,
                                      generator=torch.Generator().manual_seed(5))
    manual, g, sigmas = x_init.clone(), torch.Generator().manual_seed(5), vp.scale_std(times)[1]
    for t, sigma in zip(times, sigmas):
        eps = 1e-3 * float(sigma / sigmas[-1]) ** 2
        for _ in range(2):
            manual = manual + 0.5 * eps * gmm.denoiser(vp).score(manual, t) + eps**0.5 * torch.randn(50, 2, generator=g)
    torch.testing.assert_close(y, manual)


def test_langevin_input_checks(gmm):
    with pytest.raises(ValueError, match="step_size must be a finite number > 0, got 0.0"):
        dl.langevin_dynamics(gmm.score, (3, 2), step_size=0.0, steps=3)
    with pytest.raises(ValueError, match="steps must be an int >= 1, got 0"):
        dl.langevin_dynamics(gmm.score, (3, 2), step_size=0.1, steps=0)
    with pytest.raises(TypeError, match="score must be a function x -> score"):
        dl.langevin_dynamics(None, (3, 2), step_size=0.1, steps=1)
    levels = gmm.denoiser(dl.NoiseLevels())
    with pytest.raises(ValueError, match="strictly decreasing"):
        dl.annealed_langevin_dynamics(levels, (3, 2), times=[0.1, 1.0], step_size=0.1, steps_each=2)
    with pytest.raises(ValueError, match="noise std > 0 at every level"):
        dl.annealed_langevin_dynamics(gmm.denoiser(dl.VPSDE()), (3, 2), times=[0.5, 0.0], step_size=0.1, steps_each=2)
    with pytest.raises(ValueError, match="steps_each must be an int >= 1, got 0"):
        dl.annealed_langevin_dynamics(levels, (3, 2), times=[1.0, 0.1], step_size=0.1, steps_each=0)
    torch.testing.assert_close(dl.geometric_sigmas(10, 0.1, 3), torch.tensor([10.0, 1.0, 0.1], dtype=torch.float64))
