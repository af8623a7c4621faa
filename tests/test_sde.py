"""Forward SDEs: marginals against simulation, the derived reverse drifts, and DDPM as the discretised VP SDE."""

import math

import numpy as np
import pytest
import torch

import diffusion_lab as dl

pytestmark = pytest.mark.usefixtures("one_thread")  # 500 small Euler–Maruyama steps

SDES = [dl.VPSDE(), dl.SubVPSDE(), dl.VESDE(sigma_min=0.01, sigma_max=5.0)]


@pytest.mark.parametrize("sde", SDES, ids=repr)
def test_marginal_matches_a_simulated_forward_sde(sde, gen):
    """From a point x_0, simulate 20,000 Euler–Maruyama paths; at t = 0.3 and t = 1 the mean and std
    must match s(t) x_0 and σ(t): tolerance 5 standard errors plus 1% for the discretisation."""
    n, n_steps = 20_000, 500
    x0 = torch.tensor([[1.5, -0.5]], dtype=torch.float64).expand(n, 2)
    _, traj = dl.forward_sde_simulate(sde, x0, steps=n_steps, generator=gen, return_trajectory=True)
    for i in (150, 500):
        t = torch.tensor([i / n_steps], dtype=torch.float64)
        scale, std = (float(v) for v in sde.scale_std(t))
        x = traj[i]
        se = std / n**0.5
        torch.testing.assert_close(x.mean(0), scale * x0[0], atol=5 * se + 0.01 * std, rtol=0)
        torch.testing.assert_close(x.std(0), torch.full((2,), std, dtype=torch.float64),
                                   atol=5 * std / (2 * n) ** 0.5 + 0.01 * std, rtol=0)


@pytest.mark.parametrize("sde", SDES, ids=repr)
def test_reverse_and_ode_drifts_are_derived_from_the_forward_sde(sde):
    x = torch.randn(6, 2, dtype=torch.float64)
    t = torch.linspace(0.1, 0.9, 6, dtype=torch.float64)
    score = -x * (1 + t[:, None])  # any score will do
    g2 = sde.diffusion(t)[:, None] ** 2
    torch.testing.assert_close(sde.reverse_drift(x, t, score), sde.drift(x, t) - g2 * score)
    torch.testing.assert_close(sde.ode_drift(x, t, score), sde.drift(x, t) - 0.5 * g2 * score)


@pytest.mark.parametrize("sde", SDES, ids=repr)
def test_a_denoisers_velocity_is_the_probability_flow_drift(sde, gmm):
    """ṡ x̂₀ + σ̇ ε̂ = f − ½ g² ŝ for the exact denoiser: the derivatives of scale_std match the SDE."""
    x = torch.randn(6, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    t = torch.linspace(0.05, 1.0, 6, dtype=torch.float64)
    prediction = gmm.denoiser(sde).predict(x, t)
    torch.testing.assert_close(prediction.velocity, sde.ode_drift(x, t, prediction.score))
    # and (ṡ, σ̇) are the derivatives of (s, σ), by central differences
    h = 1e-6
    numeric = [(a - b) / (2 * h) for a, b in zip(sde.scale_std(t + h), sde.scale_std(t - h))]
    for exact, approx in zip(sde.scale_std_derivative(t[:-1]), numeric):
        torch.testing.assert_close(exact, approx[:-1], rtol=1e-5, atol=1e-6)


def test_marginal_variance_solves_its_ode():
    """For dx = f dt + g dw with linear f = −½β x, the variance obeys dΣ/dt = −β Σ + g² (VP, sub-VP);
    for VE, dσ²/dt = g². Checked by finite differences of σ(t)² − s(t)² Var(x_0) with Var(x_0) = 0."""
    t = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
    h = 1e-5
    for sde in SDES:
        var = lambda u: sde.scale_std(u)[1] ** 2
        dvar = (var(t + h) - var(t - h)) / (2 * h)
        beta = sde.beta(t) if isinstance(sde, dl.VPSDE) else torch.zeros_like(t)
        torch.testing.assert_close(dvar, -beta * var(t) + sde.diffusion(t) ** 2, rtol=1e-6, atol=1e-6)


def test_sub_vp_std_is_below_vp_and_priors():
    t = torch.linspace(0.01, 1.0, 50, dtype=torch.float64)
    assert torch.all(dl.SubVPSDE().scale_std(t)[1] < dl.VPSDE().scale_std(t)[1])
    assert dl.VESDE(0.01, 7.0).prior_std == 7.0 and dl.VPSDE().prior_std == 1.0
    torch.testing.assert_close(dl.VPSDE().alpha_bar(torch.tensor(1.0, dtype=torch.float64)),
                               torch.tensor(math.exp(-0.5 * 20.1), dtype=torch.float64))


def test_ddpm_linear_schedule_is_the_discretised_vp_sde():
    """β_i = β(i/T)/T: ᾱ of dl.linear_schedule(T) approaches the VP SDE's ᾱ(i/T), with error O(1/T)."""
    sde = dl.VPSDE()
    errors = []
    for T in (100, 1000, 10_000):
        s = dl.linear_schedule(T)
        ab_sde = sde.alpha_bar(torch.arange(T + 1, dtype=torch.float64) / T).numpy()
        errors.append(np.abs(s.alpha_bar - ab_sde).max())
    assert errors[1] < 3e-3  # DDPM's T = 1000
    assert 5 < errors[0] / errors[1] < 20 and 5 < errors[1] / errors[2] < 20, errors


@pytest.mark.parametrize("sde", SDES, ids=repr)
def test_discretisation_matches_the_marginals(sde):
    """Summing the discretised steps' variances G_i² (and mean factors) over a grid reproduces σ(1)
    for VE and VP exactly and for sub-VP (Euler–Maruyama) up to O(Δt), here about 1%."""
    n = 2000
    times = sde.time_grid(n, t_min=0.0).flip(0)
    x = torch.ones(1, 1, dtype=torch.float64)
    mean, var = 1.0, 0.0
    for i in range(n):
        t = times[i + 1].reshape(1)
        f, G = sde.discretize(x, t, float(times[i + 1] - times[i]))
        factor = 1.0 + float(f[0, 0])
        mean, var = mean * factor, var * factor**2 + float(G[0]) ** 2
    scale, std = (float(v) for v in sde.scale_std(torch.tensor([1.0], dtype=torch.float64)))
    assert mean == pytest.approx(scale, rel=2e-2) and var == pytest.approx(std**2, rel=2e-2)
    if not isinstance(sde, dl.SubVPSDE):
        assert mean == pytest.approx(scale, rel=1e-6) and var == pytest.approx(std**2, rel=1e-6)


def test_sde_input_checks():
    with pytest.raises(ValueError, match="sigma_max must be a finite number > 1, got 0.5"):
        dl.VESDE(1.0, 0.5)
    with pytest.raises(ValueError, match="beta_max must be a finite number > 1, got 0.5"):
        dl.VPSDE(1.0, 0.5)
    with pytest.raises(ValueError, match="steps must be an int >= 1, got 0"):
        dl.VPSDE().time_grid(0)
    with pytest.raises(ValueError, match=r"t_min must be a finite number in \[0, 1\), got 1"):
        dl.VPSDE().time_grid(10, t_min=1.0)
    with pytest.raises(TypeError, match="steps must be an int >= 1"):
        dl.forward_sde_simulate(dl.VPSDE(), torch.zeros(2, 2), steps=2.5)
