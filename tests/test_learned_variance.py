"""Learned reverse variances (Nichol & Dhariwal 2021): the interpolation, its exact optimum for Gaussian
data, the hybrid and bound losses, importance sampling of t, and the samplers and bounds that use ν."""

import math

import pytest
import sympy as sp
import torch
from torch import nn

import diffusion_lab as dl
from diffusion_lab import elbo, symbolic
from diffusion_lab.variances import (gaussian_reverse_variance, interpolated_variance, log_ratio, nu_of_variance,
                                     step_variance, variance_bounds)

pytestmark = pytest.mark.usefixtures("one_thread")

SCHEDULE = dl.cosine_schedule(100)


def steps(*values):
    return torch.tensor(values)


def test_the_interpolation_ends_at_beta_and_beta_tilde_and_is_monotone():
    t = torch.arange(2, 101)
    like = torch.zeros(len(t), 1, dtype=torch.float64)
    beta, tilde = variance_bounds(SCHEDULE, t, t - 1)
    torch.testing.assert_close(step_variance(SCHEDULE, t, t - 1, 1.0, like).squeeze(1), beta)
    torch.testing.assert_close(step_variance(SCHEDULE, t, t - 1, 0.0, like).squeeze(1), tilde)
    torch.testing.assert_close(beta, torch.tensor(SCHEDULE.beta[2:]))
    torch.testing.assert_close(tilde, torch.tensor(SCHEDULE.beta_tilde[2:]))
    middle = interpolated_variance(SCHEDULE, t, t - 1, 0.5, like).squeeze(1)
    torch.testing.assert_close(middle, (beta * tilde).sqrt())  # ν = ½: the geometric mean
    assert bool((tilde <= middle).all() and (middle <= beta).all())


def test_beta_tilde_is_clipped_on_the_step_to_the_data_as_chapter_two_does():
    like = torch.zeros(1, 1, dtype=torch.float64)
    assert float(step_variance(SCHEDULE, steps(1), steps(0), "beta_tilde", like)) == pytest.approx(
        SCHEDULE.beta_tilde[2], rel=1e-12)
    assert float(step_variance(SCHEDULE, steps(1), steps(0), "beta_tilde", like)) == pytest.approx(
        elbo.reverse_variance(SCHEDULE, "beta_tilde")[1], rel=1e-12)


@pytest.mark.parametrize("bad, match", [(1.5, "nu"), (-0.1, "nu"), ("sigma", "learned"), (None, "nu in")])
def test_a_bad_variance_is_refused_with_the_valid_choices(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        dl.ddpm_sample(dl.GaussianMixture.ring().denoiser(SCHEDULE), (4, 2), steps=5, variance=bad)


def test_learned_needs_a_network_that_learns_its_variance():
    with pytest.raises(ValueError, match="learns_variance"):
        dl.ddpm_sample(dl.GaussianMixture.ring().denoiser(SCHEDULE), (4, 2), steps=5, variance="learned")
    plain = dl.Denoiser(dl.TimeMLP(2), SCHEDULE)
    with pytest.raises(ValueError, match="learns_variance"):
        dl.hybrid_loss(plain, torch.zeros(3, 2))


def test_the_gaussian_reverse_variance_is_chapter_three_s_sympy_result():
    derived = symbolic.derive_reverse_variance_gaussian_data().result["variance"]
    S = symbolic.S
    for c2 in (0.0, 0.09, 0.25, 1.0, 2.0):
        for t in (1, 2, 10, 60, 100):
            value = derived.subs({S.sigma_data2: c2, S.alpha: SCHEDULE.alpha[t], S.beta: SCHEDULE.beta[t],
                                  S.alpha_bar_prev: SCHEDULE.alpha_bar[t - 1]})
            ours = float(gaussian_reverse_variance(SCHEDULE, steps(t), steps(t - 1), c2))
            assert ours == pytest.approx(float(sp.N(value)), rel=1e-9, abs=1e-15)


def test_the_gaussian_reverse_variance_matches_monte_carlo(gen):
    """Var[x_{t−1} | x_t] by regression on joint samples of (x_{t−1}, x_t) for x_0 ~ N(0, c²)."""
    c2, t, n = 0.25, 30, 400_000
    x0 = math.sqrt(c2) * torch.randn(n, 1, generator=gen, dtype=torch.float64)
    prev = dl.q_sample(SCHEDULE, x0, torch.full((n,), t - 1), generator=gen)
    x_t = dl.q_step_sample(SCHEDULE, prev, torch.full((n,), t), generator=gen)
    slope = float((prev * x_t).mean() / (x_t * x_t).mean())  # zero means: E[x_{t−1} | x_t] = slope · x_t
    residual = float((prev - slope * x_t).var())
    exact = float(gaussian_reverse_variance(SCHEDULE, steps(t), steps(t - 1), c2))
    assert residual == pytest.approx(exact, rel=0.01)
    # and the two fixed choices bracket it
    assert SCHEDULE.beta_tilde[t] < exact < SCHEDULE.beta[t]


class FixedNu(nn.Module):
    """An exact mixture ε̂ with a constant ν: a network with a learned-variance head, without training."""

    learns_variance = True

    def __init__(self, oracle, nu: float) -> None:
        super().__init__()
        self.oracle, self.nu = oracle, nu

    def forward(self, x, t):
        return torch.cat([self.oracle.eps(x, t), torch.full_like(x, 2 * self.nu - 1)], dim=1)


def test_the_bound_loss_is_an_unbiased_estimate_of_the_bound_terms(gen):
    """T · E_t[L_{t−1}] per dimension (vlb_loss) equals Σ of elbo_terms' rows 0..T−1 at the same fixed ν."""
    schedule = dl.cosine_schedule(20)
    ring = dl.GaussianMixture.ring()
    nu = 0.3
    denoiser = dl.Denoiser(FixedNu(ring.denoiser(schedule), nu), schedule)
    x0 = ring.sample(4000, generator=gen).double()
    terms = elbo.elbo_terms(ring.denoiser(schedule), x0, variance=nu, generator=gen).terms
    exact = float(terms[:-1].sum(0).mean()) / 2  # per dimension
    repeated = x0.repeat(10, 1)
    losses = dl.vlb_loss(denoiser, repeated, generator=gen)
    estimate, se = float(losses.mean()), float(losses.std()) / math.sqrt(len(losses))
    assert abs(estimate - exact) < 4 * se + 0.02 * abs(exact)


class TwoScalars(nn.Module):
    """Output (a, b) everywhere: a is the prediction, b the variance head."""

    learns_variance = True

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Parameter(torch.tensor(0.2)), nn.Parameter(torch.tensor(-0.3))

    def forward(self, x, t):
        return torch.cat([self.a.expand_as(x), self.b.expand_as(x)], dim=1)


def grads(loss_fn, **options):
    net = TwoScalars()
    denoiser = dl.Denoiser(net, SCHEDULE)
    x0 = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    loss = loss_fn(denoiser, x0, generator=torch.Generator().manual_seed(1), **options).mean()
    a, b = torch.autograd.grad(loss, [net.a, net.b])
    return float(a), float(b)


def test_the_hybrid_loss_stops_the_bound_s_gradient_on_the_mean():
    a_simple, b_simple = grads(dl.hybrid_loss, vlb_weight=0.0)
    a_hybrid, b_hybrid = grads(dl.hybrid_loss, vlb_weight=1.0)
    assert b_simple == 0.0 and b_hybrid != 0.0  # only L_vlb trains the variance
    assert a_hybrid == pytest.approx(a_simple, rel=1e-6)  # and it does not touch the mean
    a_vlb, _ = grads(dl.vlb_loss)
    assert a_vlb != 0.0  # the bound alone trains the mean as well


def test_importance_sampling_is_uniform_until_warm_then_unbiased(gen):
    T = 8
    sampler = dl.ImportanceTimeSampler(T, history=3)
    t, weights = sampler.sample(5, gen)
    assert not sampler.warm and bool((weights == 1).all())
    values = torch.tensor([50.0, 10.0, 2.0, 1.0, 1.0, 0.5, 0.5, 0.2])  # L_t for t = 1..T
    for _ in range(3):
        all_t = torch.arange(1, T + 1)
        sampler.update(all_t, values[all_t - 1])
    assert sampler.warm
    p = sampler.probabilities()
    assert float(p.sum()) == pytest.approx(1.0)
    assert int(p.argmax()) == 0
    t, weights = sampler.sample(200_000, gen)
    weighted = float((weights.double() * values[t - 1].double()).mean())
    assert weighted == pytest.approx(float(values.mean()), rel=0.01)  # E_p[w L] = uniform mean
    plain_var = float(values.var(unbiased=False))
    weighted_var = float((weights.double() * values[t - 1].double()).var())
    assert weighted_var < plain_var / 5  # the point of it


def test_importance_sampling_needs_the_bound_objective():
    net = dl.TimeMLP(2, hidden=16, n_blocks=1, learns_variance=True)
    with pytest.raises(ValueError, match="objective='vlb'"):
        dl.train_diffusion(dl.Denoiser(net, SCHEDULE), torch.zeros(10, 2), steps=1, objective="hybrid",
                           importance_sampling=True, progress=False)
    with pytest.raises(ValueError, match="objective"):
        dl.train_diffusion(dl.Denoiser(net, SCHEDULE), torch.zeros(10, 2), steps=1, objective="elbo",
                           progress=False)


def test_a_network_with_the_wrong_number_of_channels_is_named():
    net = dl.TimeMLP(2, hidden=16, n_blocks=1)
    net.learns_variance = True  # claims a variance head it does not have
    with pytest.raises(ValueError, match="twice x's channels"):
        dl.Denoiser(net, SCHEDULE).eps(torch.zeros(3, 2), 5)


def test_guidance_keeps_the_conditional_variance():
    net = dl.TimeMLP(2, hidden=16, n_blocks=1, num_classes=3, learns_variance=True)
    base = dl.Denoiser(net, SCHEDULE)
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 0])
    guided = base.replace(labels=y, guidance=3.0).predict(x, 10)
    conditional = base.replace(labels=y).predict(x, 10)
    torch.testing.assert_close(guided.nu, conditional.nu)


def test_learned_variance_networks_round_trip_through_a_checkpoint(tmp_path):
    for kind, net, config in [
        ("timemlp", dl.TimeMLP(2, hidden=16, n_blocks=1, learns_variance=True),
         dict(data_dim=2, hidden=16, n_blocks=1, learns_variance=True)),
        ("unet", dl.UNet(1, 8, channels=8, channel_mults=(1, 2), attention_resolutions=(), groups=4,
                         learns_variance=True),
         dict(in_channels=1, image_size=8, channels=8, channel_mults=(1, 2), attention_resolutions=(), groups=4,
              learns_variance=True)),
    ]:
        path = tmp_path / f"{kind}.pt"
        dl.pretrained.save_checkpoint(path, net, kind=kind, config=config, info=dict(schedule="cosine", T=100))
        loaded = dl.pretrained.load_checkpoint(path)
        assert loaded.model.learns_variance
        x = torch.zeros(2, 2) if kind == "timemlp" else torch.zeros(2, 1, 8, 8)
        assert loaded.model(x, torch.tensor([3, 4])).shape[1] == 2 * x.shape[1]


def test_a_learned_variance_sampler_and_bound_run():
    net = dl.TimeMLP(2, hidden=16, n_blocks=1, learns_variance=True)
    denoiser = dl.Denoiser(net, SCHEDULE, clip=3.0)  # untrained: keep x̂₀ in a box
    x = dl.ddpm_sample(denoiser, (16, 2), steps=10, variance="learned", generator=torch.Generator().manual_seed(0))
    assert x.shape == (16, 2) and bool(torch.isfinite(x).all())
    bound = elbo.elbo_terms(denoiser, torch.zeros(4, 2), variance="learned").total
    assert bool(torch.isfinite(bound).all())


def test_hybrid_training_learns_the_optimal_variance_of_gaussian_data():
    """The exact check of the chapter: with x_0 ~ N(0, c² I), the learned log ω² approaches the closed form."""
    c2 = 0.25
    data = math.sqrt(c2) * torch.randn(4000, 2, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    denoiser = dl.Denoiser(dl.TimeMLP(2, hidden=64, n_blocks=2, learns_variance=True), SCHEDULE)
    trained = dl.train_diffusion(denoiser, data, steps=1500, batch_size=256, lr=2e-3, objective="hybrid",
                                 progress=False).denoiser
    for t in (2, 5, 10, 20, 40):
        tt = torch.full((2000,), t)
        x_t = dl.q_sample(SCHEDULE, data[:2000], tt, generator=torch.Generator().manual_seed(1))
        nu = float(trained.predict(x_t, tt).nu.mean())
        exact = nu_of_variance(SCHEDULE, tt[:1], tt[:1] - 1, gaussian_reverse_variance(SCHEDULE, tt[:1], tt[:1] - 1, c2))
        # the error in log ω² is (ν − ν*) log(β/β̃); ν alone is ill-determined where β ≈ β̃
        error = abs(nu - float(exact)) * float(log_ratio(SCHEDULE, tt[:1], tt[:1] - 1))
        assert error < 0.03, (t, nu, float(exact))


def test_the_stratified_bound_is_unbiased_for_the_full_bound(gen):
    """Stratified over t with 5 blocks, the estimate's mean equals elbo_terms' total (the ring's oracle)."""
    schedule = dl.cosine_schedule(40)
    ring = dl.GaussianMixture.ring()
    oracle = ring.denoiser(schedule)
    x0 = ring.sample(3000, generator=gen).double()
    full = elbo.elbo_terms(oracle, x0, variance="beta_tilde", generator=gen).total
    strat = elbo.stratified_bound(oracle, x0, strata=5, variance="beta_tilde", generator=gen)
    se = math.sqrt(float(full.var()) / len(x0) + float(strat.var()) / len(x0))
    assert abs(float(strat.mean()) - float(full.mean())) < 4 * se
    with pytest.raises(ValueError, match="strata"):
        elbo.stratified_bound(oracle, x0, strata=0)
