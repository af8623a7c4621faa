"""Consistency models (Song et al. 2023): the boundary condition, the losses, the multistep sampler."""

import functools

import pytest
import torch
from _energy import energy_ratio

import diffusion_lab as dl
from diffusion_lab.consistency import ConsistencyNet, boundary_time

F64 = torch.float64


@pytest.fixture(scope="module")
def ring():
    return dl.GaussianMixture.ring(8, radius=1.5, std=0.2)


@pytest.fixture(scope="module")
def schedule():
    return dl.cosine_schedule(100)


def ode_endpoint(exact, x, t):
    """The exact consistency function: the probability-flow ODE from (x, t) to step 0, by DDIM on every step."""
    return x if t == 0 else dl.ddim_sample(exact, x, steps=t, t_start=t)


class IdealF(torch.nn.Module):
    """The network F for which c_skip x + c_out F(c_in x, t) is the exact consistency function."""

    def __init__(self, exact, sigma_data):
        super().__init__()
        self.exact, self.sigma_data = exact, sigma_data

    def forward(self, u, t):
        a_skip, a_out, c_in = (dl.expand_like(c, u) for c in dl.consistency_coefficients(self.exact.process, t,
                                                                                         self.sigma_data))
        x = u / c_in
        endpoint = torch.empty_like(x)
        for step in t.unique().tolist():  # one ODE solve per distinct time of the batch
            rows = t == step
            endpoint[rows] = ode_endpoint(self.exact, x[rows], step)
        return (endpoint - a_skip * x) / a_out


# --- The parameterisation -------------------------------------------------------------------------

@pytest.mark.parametrize("process", [dl.cosine_schedule(1000), dl.VPSDE()], ids=["schedule", "vp-sde"])
def test_boundary_condition_holds_exactly_for_any_network(process, gen):
    torch.manual_seed(0)
    model = dl.consistency_model(dl.TimeMLP(hidden=32, n_blocks=1), process, sigma_data=0.7)
    x = 3 * torch.randn(64, 2, generator=gen)
    eps = boundary_time(process)
    assert torch.equal(model.x0(x, eps), x)  # f(x, ε) = x, bit for bit
    late = torch.full((64,), 500 if process.discrete else 0.5)
    assert not torch.allclose(model.x0(x, late), x)  # elsewhere the network matters


def test_coefficients_are_the_papers_in_y_equals_x_over_s(gen):
    # a_skip = s_ε c_skip(κ) / s and a_out = s_ε c_out(κ), with c_skip, c_out of Song et al. 2023 (App. C).
    sde, sigma_data = dl.VPSDE(), 0.5
    t = torch.rand(50, generator=gen, dtype=F64) * 0.98 + 0.01
    s, sigma = sde.scale_std(t)
    s_e, sigma_e = sde.scale_std(torch.tensor([sde.t_end], dtype=F64))
    kappa, kappa_e = sigma / s, sigma_e / s_e
    c_skip = sigma_data**2 / ((kappa - kappa_e) ** 2 + sigma_data**2)
    c_out = sigma_data * (kappa - kappa_e) / (sigma_data**2 + kappa**2).sqrt()
    a_skip, a_out, c_in = dl.consistency_coefficients(sde, t, sigma_data)
    assert torch.allclose(a_skip, s_e * c_skip / s, rtol=1e-12)
    assert torch.allclose(a_out, s_e * c_out, rtol=1e-12)
    assert torch.allclose(c_in, 1 / (s * (sigma_data**2 + kappa**2).sqrt()), rtol=1e-12)
    # Bounded at the top of a cosine schedule, where s_T ≈ 5e-5 (nothing is divided by s).
    a_skip, a_out, c_in = dl.consistency_coefficients(dl.cosine_schedule(1000), torch.tensor([1000]), 1.0)
    assert a_skip.item() < 1e-4 and abs(a_out.item() - 1) < 1e-6 and abs(c_in.item() - 1) < 1e-6


# --- The exact consistency function and the sampler ----------------------------------------------

def test_consistency_training_target_is_a_teacher_step_with_the_true_noise(schedule, gen):
    # CT's x_{t_n} = s_n x_0 + σ_n z is one DDIM (Euler) step from x_{t_{n+1}} whose ε̂ is the true z.
    x0, z = torch.randn(32, 2, generator=gen, dtype=F64), torch.randn(32, 2, generator=gen, dtype=F64)
    t_next, t_n = torch.full((32,), 60), torch.full((32,), 45)
    x_next = dl.q_sample(schedule, x0, t_next, noise=z)
    oracle = dl.Denoiser(lambda x, t: z, schedule, predicts="eps")
    assert torch.allclose(dl.ddim_step(oracle, x_next, t_next, t_n), dl.q_sample(schedule, x0, t_n, noise=z),
                          atol=1e-12)


@functools.lru_cache(maxsize=None)
def _ideal_samples(steps):
    ring = dl.GaussianMixture.ring(8, radius=1.5, std=0.2)
    exact = ring.denoiser(dl.cosine_schedule(100))
    ideal = dl.consistency_model(IdealF(exact, 1.0), exact.process, sigma_data=1.0)
    x_T = torch.randn(2000, 2, generator=torch.Generator().manual_seed(5), dtype=F64)
    return exact, x_T, dl.consistency_sample(ideal, x_T, steps=steps, generator=torch.Generator().manual_seed(6))


def test_one_step_with_the_ideal_consistency_function_is_the_ode_endpoint(one_thread):
    exact, x_T, one_step = _ideal_samples(1)
    assert torch.allclose(one_step, dl.ddim_sample(exact, x_T, steps=100), atol=1e-9)


@pytest.mark.parametrize("steps", [1, 2, 4])
def test_ideal_consistency_sampling_reproduces_the_data(ring, steps, one_thread):
    # A perfect sampler scatters around 1 (std ~0.3 at n = 2000); a wrong re-noising lands far off.
    assert energy_ratio(_ideal_samples(steps)[2].float(), ring) < 2.0


def test_multistep_sampler_renoises_to_the_forward_marginal(schedule, gen):
    # With f = identity (a "model" that returns x_t), each re-noise from x to τ draws q(x_τ | x_0 = x).
    identity = dl.Denoiser(lambda x, t: x, schedule, predicts="x0")
    x_T = torch.zeros(20000, 1, dtype=F64)
    out = dl.consistency_sample(identity, x_T, steps=[100, 40], generator=torch.Generator().manual_seed(0))
    s, sigma = schedule.scale_std(torch.tensor([40]))
    assert abs(out.std().item() - sigma.item()) < 0.02 and abs(out.mean().item()) < 0.02


# --- The losses and training ---------------------------------------------------------------------

def test_losses_are_per_example_and_only_the_model_gets_gradients(schedule, ring, gen):
    torch.manual_seed(0)
    model = dl.consistency_model(dl.TimeMLP(hidden=32, n_blocks=1), schedule, sigma_data=1.0)
    target = model.replace(net=ConsistencyNet(dl.TimeMLP(hidden=32, n_blocks=1), schedule, 1.0).requires_grad_(False))
    x0 = ring.sample(16, generator=gen)
    cd = dl.consistency_distillation_loss(model, target, ring.denoiser(schedule), x0, n_steps=10, generator=gen)
    ct = dl.consistency_training_loss(model, target, x0, n_steps=10, generator=gen)
    assert cd.shape == ct.shape == (16,) and bool((cd >= 0).all() & (ct >= 0).all())
    (cd.mean() + ct.mean()).backward()
    assert all(p.grad is not None for p in model.net.parameters())


def test_distillation_loss_vanishes_for_the_ideal_function_with_an_exact_teacher_step(schedule, ring, gen):
    # With N = T the teacher's one DDIM step is one step of the ideal function's own DDIM chain.
    exact = ring.denoiser(schedule)
    ideal = dl.consistency_model(IdealF(exact, 1.0), schedule, sigma_data=1.0)
    x0 = ring.sample(8, generator=gen).double()
    loss = dl.consistency_distillation_loss(ideal, ideal, exact, x0, n_steps=100, generator=gen)
    assert loss.max().item() < 1e-12


def test_train_consistency_runs_through_fit(schedule, ring):
    data = ring.sample(256, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    for teacher in (ring.denoiser(schedule), None):
        model = dl.consistency_model(dl.TimeMLP(hidden=16, n_blocks=1), schedule, sigma_data=1.0)
        result = dl.train_consistency(model, data, teacher=teacher, n_steps=8, steps=5, batch_size=32)
        assert result.loss_history.shape == (5,) and isinstance(result.denoiser.net, ConsistencyNet)
        x = dl.consistency_sample(result.denoiser, (10, 2), steps=2, generator=torch.Generator().manual_seed(0))
        assert x.shape == (10, 2) and bool(torch.isfinite(x).all())


# --- Bad inputs ----------------------------------------------------------------------------------

def test_bad_inputs_raise_clear_errors(schedule, ring):
    model = dl.consistency_model(dl.TimeMLP(hidden=16, n_blocks=1), schedule, sigma_data=1.0)
    with pytest.raises(ValueError, match=r"steps must be an int in 1\.\.100, got 0"):
        dl.consistency_sample(model, (4, 2), steps=0)
    with pytest.raises(ValueError, match=r"steps must be decreasing times in \(0, 100\], got \[100, 0\]"):
        dl.consistency_sample(model, (4, 2), steps=[100, 0])
    with pytest.raises(ValueError, match=r"\(0, 100\], got \[101\]"):
        dl.consistency_sample(model, (4, 2), steps=[101])
    with pytest.raises(ValueError, match=r"decreasing"):
        dl.consistency_sample(model, (4, 2), steps=[50, 80])
    with pytest.raises(ValueError, match=r"n_steps must be an int in 1\.\.100, got 0"):
        dl.consistency_grid(schedule, 0)
    with pytest.raises(ValueError, match=r"sigma_data must be a finite number > 0"):
        dl.consistency_model(dl.TimeMLP(), schedule, sigma_data=0.0)
    data = ring.sample(64)
    with pytest.raises(TypeError, match="consistency_model"):
        dl.train_consistency(ring.denoiser(schedule), data, n_steps=8, steps=1)
    with pytest.raises(ValueError, match="same noise process"):
        dl.train_consistency(model, data, teacher=ring.denoiser(dl.linear_schedule(100)), n_steps=8, steps=1)
    with pytest.raises(ValueError, match=r"n_steps must be an int in 1\.\.100"):
        dl.train_consistency(model, data, n_steps=101, steps=1)
