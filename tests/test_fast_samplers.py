"""DDIM, DDIM inversion, Heun, DPM-Solver++(2M), slerp and thresholding, against closed forms and the oracle."""

import math
from functools import partial

import numpy as np
import pytest
import torch

import diffusion_lab as dl


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def ring():
    return dl.GaussianMixture.ring(n_components=8, radius=1.5, std=0.15)


def test_sampling_steps_are_evenly_spaced_and_end_at_T():
    s = dl.cosine_schedule(1000)
    assert dl.sampling_steps(s, 50) == tuple(range(20, 1001, 20))
    assert dl.sampling_steps(s, 1000) == tuple(range(1, 1001))
    taus = dl.sampling_steps(dl.cosine_schedule(100), 7)
    assert taus[-1] == 100 and len(taus) == 7 and all(b > a for a, b in zip(taus, taus[1:]))
    assert dl.sampling_steps(s, [1, 10, 500]) == (1, 10, 500)
    with pytest.raises(ValueError, match="must lie in 1..T"):
        dl.sampling_steps(s, 1001)
    with pytest.raises(ValueError, match="strictly increasing"):
        dl.sampling_steps(s, [5, 3])
    with pytest.raises(ValueError, match="every step must lie in 1..T"):
        dl.sampling_steps(s, [0, 3])
    with pytest.raises(TypeError, match="steps must be an int"):
        dl.sampling_steps(s, 2.5)


def test_ddim_sigma_with_eta_one_is_ddpm_posterior_std():
    s = dl.linear_schedule(100)
    for t in (2, 10, 50, 100):
        sigma = dl.ddim_sigma(s.alpha_bar[t], s.alpha_bar[t - 1], 1.0)
        assert sigma == pytest.approx(math.sqrt(s.beta_tilde[t]), rel=1e-12)
    assert dl.ddim_sigma(s.alpha_bar[10], s.alpha_bar[9], 0.0) == 0.0
    with pytest.raises(ValueError, match="eta must be >= 0"):
        dl.ddim_sigma(0.5, 0.6, -1.0)


def test_ddim_with_eta_one_on_every_step_is_ddpm(ring):
    """η = 1 on all T steps is Algorithm 2 of DDPM with σ_t² = β̃_t: same noise, same samples."""
    s = dl.cosine_schedule(50)
    x_T = torch.randn(200, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a = dl.ddim_sample(ring.eps_model(s), s, x_T, steps=50, eta=1.0, generator=torch.Generator().manual_seed(1))
    b = dl.ddpm_sample(ring.eps_model(s), s, x_T, variance="beta_tilde", generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def _gaussian_ode_solution(mean, std, schedule, x_T):
    """The exact probability-flow ODE map for data N(mean, std² I): x̃ = mean + √(std² + σ²) z."""
    sigma_T = dl.karras_sigma(schedule, schedule.T)
    x_tilde_T = x_T / math.sqrt(schedule.alpha_bar[-1])
    return mean + std * (x_tilde_T - mean) / math.sqrt(std**2 + sigma_T**2)


@pytest.mark.parametrize("sampler, order", [(dl.ddim_sample, 1), (dl.heun_sample, 2), (dl.dpm_solver_2m_sample, 2)])
def test_ode_solvers_converge_to_the_exact_flow_at_their_order(sampler, order):
    """With Gaussian data the probability-flow ODE has a closed-form solution; doubling the steps
    must divide the error by about 2^order."""
    mean, std = torch.tensor([0.5, -1.0], dtype=torch.float64), 0.3
    gauss = dl.GaussianMixture(torch.ones(1), mean[None], std**2 * torch.eye(2)[None])
    s = dl.linear_schedule(1000)
    x_T = torch.randn(500, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = _gaussian_ode_solution(mean, std, s, x_T)
    errors = [float((sampler(gauss.eps_model(s), s, x_T, steps=n) - exact).abs().max()) for n in (20, 40, 80)]
    rates = [math.log2(errors[i] / errors[i + 1]) for i in range(2)]
    assert errors[-1] < 0.1, errors
    assert all(r > order - 0.5 for r in rates), (errors, rates)


def _mean_pairwise(x: torch.Tensor, chunk: int = 4096) -> float:
    x = x.double()
    return sum(torch.cdist(x[i:i + chunk], x).sum().item() for i in range(0, len(x), chunk)) / (len(x) * (len(x) - 1))


def test_fast_solvers_match_ddpm_1000_in_energy_distance(ring):
    """Issue bar: with the exact mixture denoiser, DPM-Solver++(2M) at 10 and 20 NFE and DDIM (η = 0)
    at 50 steps reach an energy distance within 10 % of DDPM with 1000 steps.

    "Energy distance" is that of n = 2,000 samples to the data law, E[V_n] = D² + E_P|X − X'| / n:
    the sampler's true squared distance D² plus a floor (0.96e-3 here). The earlier version of this
    test compared 3 batches of 2,000 against a reference sample; single batches scatter by about ±60 % of
    the floor, so it measured noise (and DDIM with 1000 steps scored like the fast samplers).

    Here the deterministic samplers start from scrambled-Sobol noise, so the energy distance of
    their samples to the exact law (``unbiased=False``: of the empirical measure) has a floor of
    about 4e-7 instead of E|Y − Y'|/n, and D² is resolved to < 0.1 % of the bar's floor (checked
    below on the data law itself and across two scrambles). DDPM is judged by its lower bound
    E[V_2000] ≥ W/2000 (D² ≥ 0), W its samples' mean pairwise distance, so noise in DDPM's own D²
    cannot make the bar easier; W is checked against the data's E|Y − Y'|. Measured (see
    benchmarks/fast_samplers.py): D² = 8.1e-5 (DDIM 50), 8.9e-5 (DPM++ 10 NFE), 1.8e-5 (20 NFE),
    i.e. 8.4 %, 9.3 % and 1.9 % of the floor: the bar is met, narrowly at 10 NFE and 50 DDIM steps.
    """
    bar_n, n = 2000, 2**13
    s = dl.cosine_schedule(1000)
    eps = ring.eps_model(s)
    spread = dl.mixture_mean_distance(ring)
    quadratic = partial(dl.sampling_steps, s, spacing="quadratic")
    runs = {
        "dpm++(2M), 10 NFE": lambda x: dl.dpm_solver_2m_sample(eps, s, x, steps=quadratic(10)),
        "dpm++(2M), 20 NFE": lambda x: dl.dpm_solver_2m_sample(eps, s, x, steps=quadratic(20)),
        "ddim, 50 steps": lambda x: dl.ddim_sample(eps, s, x, steps=50),
        "ddim, 10 steps": lambda x: dl.ddim_sample(eps, s, x, steps=10),
    }
    expected = {}
    for name, run in runs.items():
        samples = [run(dl.sobol_normal(n, seed=scramble)) for scramble in (0, 1)]
        d2 = [dl.energy_distance_to_mixture(x, ring, unbiased=False) for x in samples]
        # Two independent scrambles agree to far better than 1 % of the floor.
        assert abs(d2[0] - d2[1]) < 0.01 * spread / bar_n, (name, d2)
        expected[name] = np.mean(d2) + np.mean([_mean_pairwise(x) for x in samples]) / bar_n
    # The quasi-Monte Carlo floor, on the data law itself: far below 1 % of the bar's floor.
    u = torch.quasirandom.SobolEngine(3, scramble=True, seed=100).draw(n, dtype=torch.float64)
    data = ring.means[(u[:, 0] * 8).long()] + 0.15 * torch.special.ndtri(u[:, 1:].clamp(1e-12, 1 - 1e-12))
    assert dl.energy_distance_to_mixture(data, ring, unbiased=False) < 0.01 * spread / bar_n
    # DDPM with 1000 steps: its expected energy distance at 2,000 samples is at least W / 2000.
    ddpm = dl.ddpm_sample(eps, s, torch.randn(4000, 2, generator=torch.Generator().manual_seed(8), dtype=torch.float64),
                          generator=torch.Generator().manual_seed(9))
    w_ddpm = _mean_pairwise(ddpm)
    w_se = 2 * float(dl.mixture_mean_distance(ring, ddpm).std()) / np.sqrt(4000)
    assert abs(w_ddpm - spread) < 3 * w_se, (w_ddpm, spread, w_se)  # DDPM-1000 has the data's spread
    ddpm_lower = min(w_ddpm, spread) / bar_n
    ratios = {name: value / ddpm_lower for name, value in expected.items()}
    print(ratios)
    for name in ("dpm++(2M), 10 NFE", "dpm++(2M), 20 NFE", "ddim, 50 steps"):
        assert ratios[name] <= 1.10, (name, ratios)
    # Not a vacuous bar: 10 DDIM steps are far worse.
    assert ratios["ddim, 10 steps"] > 1.5, ratios


def test_ddim_inversion_then_generation_reconstructs_x0(ring):
    """Issue bar: inversion followed by DDIM generation (100 steps, oracle) has MSE < 1e-3."""
    s = dl.cosine_schedule(1000)
    eps = ring.eps_model(s)
    x0 = ring.sample(1000, generator=torch.Generator().manual_seed(3))
    latent = dl.ddim_invert(eps, s, x0, steps=100)
    reconstruction = dl.ddim_sample(eps, s, latent, steps=100)
    mse = float((reconstruction - x0).pow(2).mean())
    assert mse < 1e-3, mse
    # The latent looks like N(0, I) noise: unit variance per coordinate.
    assert abs(float(latent.var()) - 1.0) < 0.1
    # Fixed-point refinement makes the round trip (almost) exact.
    refined = dl.ddim_invert(eps, s, x0, steps=100, fixed_point_iters=3)
    assert float((dl.ddim_sample(eps, s, refined, steps=100) - x0).pow(2).mean()) < 0.1 * mse


def test_trajectories_are_indexed_by_step_and_inputs_are_untouched(ring):
    s = dl.cosine_schedule(100)
    x_T = torch.randn(30, 2)
    before = x_T.clone()
    for sampler in (dl.ddim_sample, dl.heun_sample, dl.dpm_solver_2m_sample):
        x0, traj = sampler(ring.eps_model(s), s, x_T, steps=10, return_trajectory=True)
        assert traj.shape == (11, 30, 2)
        torch.testing.assert_close(traj[-1], x_T)
        torch.testing.assert_close(traj[0], x0)
    torch.testing.assert_close(x_T, before)
    latent, traj = dl.ddim_invert(ring.eps_model(s), s, x0, steps=10, return_trajectory=True)
    assert traj.shape == (11, 30, 2)
    torch.testing.assert_close(traj[0], x0)
    torch.testing.assert_close(traj[-1], latent)


def test_samplers_count_model_calls_and_serve_images():
    s = dl.linear_schedule(100)
    calls = []

    def zero_eps(x, t):
        calls.append(int(t[0]))
        return torch.zeros_like(x)

    for sampler, nfe in ((dl.ddim_sample, 10), (dl.heun_sample, 18), (dl.dpm_solver_2m_sample, 10)):
        calls.clear()
        out = sampler(zero_eps, s, (2, 1, 8, 8), steps=10, generator=torch.Generator().manual_seed(0))
        assert out.shape == (2, 1, 8, 8) and len(calls) == nfe, (sampler.__name__, calls)
    stochastic = [dl.ddim_sample(zero_eps, s, (2, 3), eta=0.5, generator=torch.Generator().manual_seed(4))
                  for _ in range(2)]
    torch.testing.assert_close(*stochastic)


def test_slerp_endpoints_and_norm():
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(4, 3, 8, 8, generator=g), torch.randn(4, 3, 8, 8, generator=g)
    torch.testing.assert_close(dl.slerp(z0, z1, 0.0), z0)
    torch.testing.assert_close(dl.slerp(z0, z1, 1.0), z1, rtol=1e-5, atol=1e-5)
    a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    torch.testing.assert_close(dl.slerp(a, b, 0.5), torch.tensor([[0.5**0.5, 0.5**0.5]]))
    torch.testing.assert_close(dl.slerp(a, a, 0.3), a)  # parallel: no division by zero
    with pytest.raises(ValueError, match="same shape"):
        dl.slerp(a, torch.zeros(2, 2), 0.5)


def test_thresholds():
    x = torch.tensor([[0.5, -3.0, 2.0, 0.1], [0.2, 0.3, -0.4, 0.5]])
    torch.testing.assert_close(dl.static_threshold(x), x.clamp(-1, 1))
    out = dl.dynamic_threshold(x, percentile=1.0)
    torch.testing.assert_close(out[0], x[0] / 3.0)  # s = max|x| = 3: rescaled, not clipped
    torch.testing.assert_close(out[1], x[1])  # already inside [-1, 1]: untouched
    assert float(dl.dynamic_threshold(x, percentile=0.5).abs().max()) <= 1.0
    with pytest.raises(ValueError, match="percentile must lie in"):
        dl.dynamic_threshold(x, percentile=0.0)
    with pytest.raises(ValueError, match="bound must be positive"):
        dl.static_threshold(x, bound=0)


def test_thresholded_model_keeps_x0_hat_in_range():
    s = dl.cosine_schedule(100)
    t = torch.full((64,), 60)
    x_t = 3.0 * torch.randn(64, 2, generator=torch.Generator().manual_seed(0))

    def eps(x, t):
        return -x  # implies x̂₀ far outside [-1, 1]

    ab = s.gather("alpha_bar", t, x_t)
    for threshold in (dl.static_threshold, partial(dl.dynamic_threshold, percentile=0.9)):
        wrapped = dl.ThresholdedEpsModel(eps, s, threshold)
        x0_hat = (x_t - (1 - ab).sqrt() * wrapped(x_t, t)) / ab.sqrt()
        assert float(x0_hat.abs().max()) <= 1.0 + 1e-5
    identity = dl.ThresholdedEpsModel(eps, s, lambda x0: x0)
    torch.testing.assert_close(identity(x_t, t), eps(x_t, t), rtol=1e-5, atol=1e-5)
    samples = dl.ddim_sample(dl.ThresholdedEpsModel(eps, s), s, (64, 2), steps=10,
                             generator=torch.Generator().manual_seed(1))
    assert float(samples.abs().max()) <= 1.0 + 1e-5
