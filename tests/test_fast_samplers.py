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
    with pytest.raises(ValueError, match=r"steps must be an int in 1..1000, got 1001"):
        dl.sampling_steps(s, 1001)
    with pytest.raises(ValueError, match="strictly increasing"):
        dl.sampling_steps(s, [5, 3])
    with pytest.raises(ValueError, match=r"every step must lie in 1..1000, got 0..3"):
        dl.sampling_steps(s, [0, 3])
    with pytest.raises(TypeError, match="steps must be an int"):
        dl.sampling_steps(s, 2.5)
    # The samplers visit exactly these steps, from the top down to 0.
    assert s.time_grid(50).tolist() == list(range(1000, 0, -20)) + [0]
    assert s.time_grid([1, 10, 500]).tolist() == [500, 10, 1, 0]


def test_ddim_noise_std_with_eta_one_is_ddpm_posterior_std():
    s = dl.linear_schedule(100)
    den = dl.Denoiser(lambda x, t: torch.zeros_like(x), s)
    t = torch.tensor([2, 10, 50, 100])
    omega = dl.ddim_noise_std(den, t, t - 1, 1.0)
    np.testing.assert_allclose(omega.numpy(), np.sqrt(s.beta_tilde[t.numpy()]), rtol=1e-12)
    # Over a skipped stretch t → t': η σ̃ with σ̃² = (1 − ᾱ_t')/(1 − ᾱ_t) · (1 − ᾱ_t/ᾱ_t') (Song et al. 2021, Eq. 16).
    ab = s.alpha_bar
    expected = 0.5 * math.sqrt((1 - ab[40]) / (1 - ab[60]) * (1 - ab[60] / ab[40]))
    omega = float(dl.ddim_noise_std(den, torch.tensor([60]), torch.tensor([40]), 0.5))
    assert omega == pytest.approx(expected, rel=1e-12)
    assert float(dl.ddim_noise_std(den, torch.tensor([10]), torch.tensor([9]), 0.0)) == 0.0
    with pytest.raises(ValueError, match="eta must be a finite number >= 0, got -1.0"):
        dl.ddim_noise_std(den, t, t - 1, -1.0)


def test_ddim_with_eta_one_on_every_step_is_ddpm(ring):
    """η = 1 on all T steps is Algorithm 2 of DDPM with σ_t² = β̃_t: same noise, same samples."""
    s = dl.cosine_schedule(50)
    x_T = torch.randn(200, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a = dl.ddim_sample(ring.denoiser(s), x_T, steps=50, eta=1.0, generator=torch.Generator().manual_seed(1))
    b = dl.ddpm_sample(ring.denoiser(s), x_T, variance="beta_tilde", generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def _gaussian_ode_solution(mean, std, schedule, x_T):
    """The exact probability-flow ODE map for data N(mean, std² I): x̃ = mean + √(std² + σ²) z."""
    sigma_T = math.sqrt((1 - schedule.alpha_bar[-1]) / schedule.alpha_bar[-1])  # Karras' κ_T = σ_T / s_T
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
    errors = [float((sampler(gauss.denoiser(s), x_T, steps=n) - exact).abs().max()) for n in (20, 40, 80)]
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
    eps = ring.denoiser(s)
    spread = dl.mixture_mean_distance(ring)
    quadratic = partial(dl.sampling_steps, s, spacing="quadratic")
    runs = {
        "dpm++(2M), 10 NFE": lambda x: dl.dpm_solver_2m_sample(eps, x, steps=quadratic(10)),
        "dpm++(2M), 20 NFE": lambda x: dl.dpm_solver_2m_sample(eps, x, steps=quadratic(20)),
        "ddim, 50 steps": lambda x: dl.ddim_sample(eps, x, steps=50),
        "ddim, 10 steps": lambda x: dl.ddim_sample(eps, x, steps=10),
    }
    expected = {}
    for name, run in runs.items():
        samples = [run(dl.sobol_normal(n, seed=scramble)) for scramble in (0, 1)]
        d2 = [dl.energy_distance_to_mixture(x, ring, unbiased=False) for x in samples]
        # Two independent scrambles agree to far better than 1 % of the floor.
        assert abs(d2[0] - d2[1]) < 0.01 * spread / bar_n, (name, d2)
        # The samples' mean pairwise distance W from the same sum (no second n² pass): the V-statistic
        # D² = 2 E|x_i − Y| − W (n − 1)/n − E|Y − Y'|.
        w = [(2 * float(dl.mixture_mean_distance(ring, x).mean()) - spread - d) * n / (n - 1)
             for x, d in zip(samples, d2)]
        expected[name] = np.mean(d2) + np.mean(w) / bar_n
    # The quasi-Monte Carlo floor, on the data law itself: far below 1 % of the bar's floor.
    u = torch.quasirandom.SobolEngine(3, scramble=True, seed=100).draw(n, dtype=torch.float64)
    data = ring.means[(u[:, 0] * 8).long()] + 0.15 * torch.special.ndtri(u[:, 1:].clamp(1e-12, 1 - 1e-12))
    assert dl.energy_distance_to_mixture(data, ring, unbiased=False) < 0.01 * spread / bar_n
    # DDPM with 1000 steps: its expected energy distance at 2,000 samples is at least W / 2000.
    ddpm = dl.ddpm_sample(eps, torch.randn(4000, 2, generator=torch.Generator().manual_seed(8), dtype=torch.float64),
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
    eps = ring.denoiser(s)
    x0 = ring.sample(1000, generator=torch.Generator().manual_seed(3))
    latent = dl.ddim_invert(eps, x0, steps=100)
    reconstruction = dl.ddim_sample(eps, latent, steps=100)
    mse = float((reconstruction - x0).pow(2).mean())
    assert mse < 1e-3, mse
    # The latent looks like N(0, I) noise: unit variance per coordinate.
    assert abs(float(latent.var()) - 1.0) < 0.1
    # Fixed-point refinement makes the round trip (almost) exact.
    refined = dl.ddim_invert(eps, x0, steps=100, fixed_point_iters=3)
    assert float((dl.ddim_sample(eps, refined, steps=100) - x0).pow(2).mean()) < 0.1 * mse


def test_trajectories_are_in_sampling_order_and_inputs_are_untouched(ring):
    s = dl.cosine_schedule(100)
    x_T = torch.randn(30, 2)
    before = x_T.clone()
    for sampler in (dl.ddim_sample, dl.heun_sample, dl.dpm_solver_2m_sample):
        x0, traj = sampler(ring.denoiser(s), x_T, steps=10, return_trajectory=True)
        assert traj.shape == (11, 30, 2)
        torch.testing.assert_close(traj[0], x_T)
        torch.testing.assert_close(traj[-1], x0)
        # traj[i] is the state at grid time t_i: ten more steps from traj[5] with the last five grid times
        # end where the full run ends.
        if sampler is dl.ddim_sample:
            rest = s.time_grid(10)[5:-1].flip(0).tolist()  # steps 10, 20, ..., 50
            torch.testing.assert_close(dl.ddim_sample(ring.denoiser(s), traj[5], steps=rest), x0)
    torch.testing.assert_close(x_T, before)
    latent, traj = dl.ddim_invert(ring.denoiser(s), x0, steps=10, return_trajectory=True)
    assert traj.shape == (11, 30, 2)
    torch.testing.assert_close(traj[0], x0)
    torch.testing.assert_close(traj[-1], latent)


def test_samplers_count_model_calls_and_serve_images():
    s = dl.linear_schedule(100)
    calls = []

    def net(x, t):
        calls.append(int(t[0]))
        return torch.zeros_like(x)

    zero_eps = dl.Denoiser(net, s)
    for sampler, name, nfe in ((dl.ddim_sample, "ddim", 10), (dl.heun_sample, "heun", 18),
                               (dl.dpm_solver_2m_sample, "dpm++2m", 10)):
        calls.clear()
        out = sampler(zero_eps, (2, 1, 8, 8), steps=10, generator=torch.Generator().manual_seed(0))
        assert out.shape == (2, 1, 8, 8) and len(calls) == nfe == dl.nfe(zero_eps, name, 10), (name, calls)
    stochastic = [dl.ddim_sample(zero_eps, (2, 3), eta=0.5, generator=torch.Generator().manual_seed(4))
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
    with pytest.raises(ValueError, match=r"percentile must be a finite number in \(0, 1\], got 0.0"):
        dl.dynamic_threshold(x, percentile=0.0)
    with pytest.raises(ValueError, match="bound must be a finite number > 0, got 0"):
        dl.static_threshold(x, bound=0)


def test_thresholded_model_keeps_x0_hat_in_range():
    s = dl.cosine_schedule(100)
    t = torch.full((64,), 60)
    x_t = 3.0 * torch.randn(64, 2, generator=torch.Generator().manual_seed(0))

    def eps(x, t):
        return -x  # implies x̂₀ far outside [-1, 1]

    ab = s.gather("alpha_bar", t, x_t)
    assert float(dl.Denoiser(eps, s).x0(x_t, t).abs().max()) > 5  # unclipped: far outside
    for clip in (dl.static_threshold, partial(dl.dynamic_threshold, percentile=0.9), 1.0):
        prediction = dl.Denoiser(eps, s, clip=clip).predict(x_t, t)
        assert float(prediction.x0.abs().max()) <= 1.0 + 1e-5
        # ε̂ is recomputed from the clipped x̂₀: x_t = √ᾱ x̂₀ + √(1 − ᾱ) ε̂ still holds.
        x0_hat = (x_t - (1 - ab).sqrt() * prediction.eps) / ab.sqrt()
        torch.testing.assert_close(x0_hat, prediction.x0, rtol=1e-5, atol=1e-5)
    identity = dl.Denoiser(eps, s, clip=lambda x0: x0)
    torch.testing.assert_close(identity.eps(x_t, t), eps(x_t, t), rtol=1e-5, atol=1e-5)
    samples = dl.ddim_sample(dl.Denoiser(eps, s, clip=1.0), (64, 2), steps=10,
                             generator=torch.Generator().manual_seed(1))
    assert float(samples.abs().max()) <= 1.0 + 1e-5
    with pytest.raises(ValueError, match="clip must be a finite number > 0, got -1"):
        dl.Denoiser(eps, s, clip=-1.0)
