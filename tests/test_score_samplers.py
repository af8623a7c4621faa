"""Reverse-SDE, predictor–corrector, probability-flow ODE and imputation samplers with the exact denoiser
of a Gaussian mixture on the SDEs."""

import pytest
import torch

import diffusion_lab as dl
from _energy import energy_ratio, mode_weights

pytestmark = pytest.mark.usefixtures("one_thread")  # hundreds of oracle calls on 5,000 points

N = 5000


SAMPLERS = {
    "euler_maruyama/VP": (dl.euler_maruyama_sample, dl.VPSDE(), {"steps": 200}),
    "euler_maruyama/VE": (dl.euler_maruyama_sample, dl.VESDE(0.01, 10.0), {"steps": 200}),
    "pc/VP": (dl.pc_sample, dl.VPSDE(), {"steps": 100, "corrector_steps": 1}),
    "pc/VE": (dl.pc_sample, dl.VESDE(0.01, 10.0), {"steps": 100, "corrector_steps": 1}),
    "pc/subVP": (dl.pc_sample, dl.SubVPSDE(), {"steps": 100, "corrector_steps": 1}),
    "ode_heun/VP": (dl.heun_sample, dl.VPSDE(), {"steps": 30}),
    "ode_rk45/subVP": (dl.rk45_sample, dl.SubVPSDE(), {"rtol": 1e-4, "atol": 1e-4}),
}


@pytest.mark.parametrize("name", SAMPLERS)
def test_sampler_with_the_exact_score_reproduces_the_mixture(gmm, name):
    """Energy distance ≤ 2× the real-vs-real floor at 5,000 points, and every component's weight
    within 4 standard errors of π_k."""
    sampler, sde, kwargs = SAMPLERS[name]
    x = sampler(gmm.denoiser(sde), (N, 2), generator=torch.Generator().manual_seed(0), **kwargs)
    ratio = energy_ratio(x, gmm)
    assert ratio <= 2.0, ratio
    se = (gmm.weights * (1 - gmm.weights) / N).sqrt()
    assert torch.all((mode_weights(x, gmm) - gmm.weights).abs() < 4 * se), mode_weights(x, gmm)


def test_heun_is_second_order_and_euler_first_order(gmm):
    """Against a tight RK45 solution from the same x_1: halving Δt divides Euler's error by about 2
    and Heun's by about 4."""
    den = gmm.denoiser(dl.VPSDE())
    x1 = torch.randn(500, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ref = dl.rk45_sample(den, x1, t_min=1e-3, rtol=1e-8, atol=1e-8)
    err = lambda f, n: float((f(den, x1, steps=n) - ref).norm(dim=1).mean())  # noqa: E731 (both stop at t = 1e-3)
    e_euler = err(dl.euler_sample, 40) / err(dl.euler_sample, 80)
    e_heun = err(dl.heun_sample, 40) / err(dl.heun_sample, 80)
    assert 1.6 < e_euler < 2.5 and 3.0 < e_heun < 5.0, (e_euler, e_heun)


def test_trajectories_and_determinism(gmm):
    den = gmm.denoiser(dl.VPSDE())
    x1 = torch.randn(40, 2)
    before = x1.clone()
    x, traj = dl.euler_maruyama_sample(den, x1, steps=10, return_trajectory=True,
                                       generator=torch.Generator().manual_seed(1))
    assert traj.shape == (11, 40, 2)
    torch.testing.assert_close(traj[0], before)
    torch.testing.assert_close(traj[-1], x)
    again = dl.euler_maruyama_sample(den, x1, steps=10, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(again, x)
    x, traj = dl.pc_sample(den, x1, steps=5, return_trajectory=True)
    assert traj.shape == (6, 40, 2)
    torch.testing.assert_close(traj[-1], x)
    a = dl.heun_sample(den, x1, steps=5)
    torch.testing.assert_close(a, dl.heun_sample(den, x1, steps=5))
    x, traj = dl.rk45_sample(den, x1, return_trajectory=True)
    torch.testing.assert_close(traj[0], before)
    torch.testing.assert_close(traj[-1], x)
    torch.testing.assert_close(x1, before)
    # Without corrector steps PC is the predictor alone, Song et al.'s (2021) Eq. 47 with VP's DDPM step:
    # x ← (2 − √(1 − β_i)) x + β_i ŝ + √β_i z, β_i = 1 − ᾱ(t_i)/ᾱ(t_{i−1}) (time running backwards).
    vp, g = den.process, torch.Generator().manual_seed(2)
    predictor = dl.pc_sample(den, x1, steps=5, corrector_steps=0, generator=torch.Generator().manual_seed(2))
    manual, times = x1.clone(), vp.time_grid(5)
    for t, t_next in zip(times[:-1], times[1:]):
        beta = float(1 - vp.alpha_bar(t) / vp.alpha_bar(t_next))
        score = den.score(manual, t)
        manual = (2 - (1 - beta) ** 0.5) * manual + beta * score + beta**0.5 * torch.randn(40, 2, generator=g)
    torch.testing.assert_close(predictor, manual)


def test_imputation_of_a_correlated_gaussian():
    """For one correlated Gaussian the exact conditional of x_1 given x_2 = y is
    N(μ_1 + Σ_12/Σ_22 (y − μ_2), Σ_11 − Σ_12²/Σ_22). Replacement only approximates it: measured here,
    mean 0.85 against 1.04 and std 0.52 against 0.47 (the dependence on y is attenuated). The test
    checks that the known coordinate is kept, that the imputed mean moves more than halfway from the
    unconditional mean 0.5 towards the conditional one without overshooting, and the std within 0.1."""
    target = dl.GaussianMixture(torch.tensor([1.0]), torch.tensor([[0.5, -0.3]]),
                                torch.tensor([[[0.4, 0.3], [0.3, 0.5]]]))
    y = 0.6
    known = torch.tensor([[0.0, y]]).expand(2000, 2)
    # Replacement on the VP SDE's time grid (the same sampler serves schedules and SDEs).
    x = dl.inpaint_sample(target.denoiser(dl.VPSDE()), known, torch.tensor([False, True]), steps=200,
                          generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(x[:, 1], known[:, 1])
    mean, std = 0.5 + 0.3 / 0.5 * (y + 0.3), (0.4 - 0.3**2 / 0.5) ** 0.5
    imputed_mean = float(x[:, 0].mean())
    assert 0.5 + 0.5 * (mean - 0.5) < imputed_mean < mean + 0.05, (imputed_mean, mean)
    assert abs(float(x[:, 0].std()) - std) < 0.1, (float(x[:, 0].std()), std)


def test_sampler_input_checks(gmm):
    den = gmm.denoiser(dl.VPSDE())
    with pytest.raises(ValueError, match="x_T must be a tensor or a shape"):
        dl.euler_maruyama_sample(den, (2, -1))
    with pytest.raises(ValueError, match="corrector_steps must be an int >= 0, got -1"):
        dl.pc_sample(den, (2, 2), corrector_steps=-1)
    with pytest.raises(ValueError, match="integrates a reverse-time SDE"):
        dl.pc_sample(gmm.denoiser(dl.linear_path()), (2, 2))
    with pytest.raises(ValueError, match="rk45_sample needs a continuous-time process"):
        dl.rk45_sample(gmm.denoiser(dl.cosine_schedule(10)), (2, 2))
    with pytest.raises(ValueError, match="steps is required in continuous time"):
        dl.ddim_sample(den, (2, 2), steps=None)
