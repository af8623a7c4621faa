"""Latent diffusion, progressive distillation and flow matching (chapter "Beyond DDPM")."""

import pytest
import torch

import diffusion_lab as dl
from diffusion_lab.distillation import ddim_step, distillation_grid, x0_from_output
from diffusion_lab.flow_matching import conditional_velocity, interpolate


@pytest.fixture(scope="module")
def ring():
    return dl.GaussianMixture.ring(8, radius=1.5, std=0.2)


# --- Flow matching ------------------------------------------------------------------------------

def test_conditional_velocity_is_the_time_derivative_of_the_path(gen):
    x0, eps = torch.randn(64, 2, generator=gen, dtype=torch.float64), torch.randn(64, 2, generator=gen,
                                                                                  dtype=torch.float64)
    t = torch.rand(64, generator=gen, dtype=torch.float64) * 0.9 + 0.05
    for path in (dl.linear_path(), dl.vp_path()):
        h = 1e-6
        finite = (interpolate(path, x0, eps, t + h) - interpolate(path, x0, eps, t - h)) / (2 * h)
        assert torch.allclose(conditional_velocity(path, x0, eps, t), finite, atol=1e-6)
    assert torch.allclose(conditional_velocity(dl.linear_path(), x0, eps, t), eps - x0)


def test_vp_velocity_through_the_score_is_the_probability_flow_drift(ring, gen, one_thread):
    sde = dl.VPSDE()
    x = torch.randn(256, 2, generator=gen, dtype=torch.float64)
    t = torch.rand(256, generator=gen, dtype=torch.float64) * 0.98 + 0.01
    score = ring.score_model(sde)(x, t)
    velocity = dl.velocity_from_score(dl.vp_path(sde), x, t, score)
    assert torch.allclose(velocity, sde.ode_drift(x, t, ring.score_model(sde)), atol=1e-10)


def test_exact_mixture_velocity_matches_the_score_formula(ring, gen, one_thread):
    path = dl.linear_path()
    x = 2 * torch.randn(256, 2, generator=gen, dtype=torch.float64)
    for t_value in (0.1, 0.5, 0.9):
        t = torch.full((256,), t_value, dtype=torch.float64)
        score = ring.score_at(x, 1 - t, t)
        assert torch.allclose(dl.mixture_velocity(ring, path)(x, t), dl.velocity_from_score(path, x, t, score),
                              atol=1e-9)


def test_flow_sampler_with_the_exact_velocity_reproduces_the_mixture(ring, one_thread):
    n = 2000
    velocity = dl.mixture_velocity(ring, dl.linear_path())
    x = dl.flow_heun_sample(velocity, torch.randn(n, 2, generator=torch.Generator().manual_seed(0),
                                                  dtype=torch.float64), steps=40)
    real = ring.sample(n, generator=torch.Generator().manual_seed(1)).double()
    floor = dl.energy_distance_floor(lambda m, s: ring.sample(m, generator=torch.Generator().manual_seed(s)), n)
    assert dl.energy_distance(x, real) < 2.0 * floor
    # One Euler step only moves every point to the data mean: far from the mixture.
    x1 = dl.flow_euler_sample(velocity, torch.randn(n, 2, generator=torch.Generator().manual_seed(0),
                                                    dtype=torch.float64), steps=1)
    assert dl.energy_distance(x1, real) > 10 * floor


def test_clipped_velocity_moves_to_the_clipped_prediction(gen):
    x = 3 * torch.randn(64, 2, generator=gen, dtype=torch.float64)
    t = torch.rand(64, generator=gen, dtype=torch.float64) * 0.9 + 0.1

    def velocity(y, s):
        return -2 * y  # implied x0_hat = y (1 + 2 t): often outside [-1, 1]

    clipped = dl.ClippedVelocity(velocity, -1.0, 1.0)
    x0_hat = (x * (1 + 2 * t[:, None])).clamp(-1, 1)
    assert torch.allclose(x - t[:, None] * clipped(x, t), x0_hat)  # one Euler step to t = 0 lands on it
    assert torch.allclose(clipped(x, torch.zeros(64, dtype=torch.float64)), velocity(x, None))


def test_flow_matching_loss_matches_the_definition(gen):
    x0, eps = torch.randn(16, 1, 4, 4, generator=gen), torch.randn(16, 1, 4, 4, generator=gen)
    t = torch.rand(16, generator=gen, dtype=torch.float64)

    def model(x, s):
        return 0.5 * x

    loss = dl.flow_matching_loss(model, x0, t=t, noise=eps)
    x_t = (1 - t).reshape(-1, 1, 1, 1).float() * x0 + t.reshape(-1, 1, 1, 1).float() * eps
    assert loss.shape == (16,)
    assert torch.allclose(loss, (0.5 * x_t - (eps - x0)).pow(2).flatten(1).mean(1), atol=1e-6)
    with pytest.raises(ValueError, match="lie in \\[0, 1\\]"):
        dl.flow_matching_loss(model, x0, t=t + 1.5, noise=eps)


def test_straightness_is_zero_for_straight_paths_and_reflow_pairs_follow_the_flow(gen):
    start, end = torch.randn(32, 2, generator=gen), torch.randn(32, 2, generator=gen)
    line = torch.stack([start + (end - start) * k / 8 for k in range(9)])
    assert dl.straightness(line) < 1e-10
    bent = line.clone()
    bent[4] += 1.0
    assert dl.straightness(bent) > 1.0

    def constant(x, t):  # v = x_1 − x_0 = 1 for every point: x_0 = x_1 − 1
        return torch.ones_like(x)

    assert torch.allclose(dl.reflow_pairs(constant, start, steps=4), start - 1, atol=1e-6)


def test_train_flow_matching_learns_a_gaussian(gen):
    # Data N(m, 0.25 I): the exact linear-path velocity is linear in x; a short run gets the mean right.
    data = torch.tensor([2.0, -1.0]) + 0.5 * torch.randn(4096, 2, generator=gen)
    torch.manual_seed(0)
    model = dl.ContinuousTime(dl.TimeMLP(hidden=32, n_blocks=1))
    result = dl.train_flow_matching(model, data, steps=200, batch_size=256, lr=3e-3, ema_decay=0.9, seed=0)
    x = dl.flow_heun_sample(result.ema_model, (2000, 2), steps=10, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(x.mean(0), torch.tensor([2.0, -1.0]), atol=0.15)
    assert result.loss_history[-50:].mean() < result.loss_history[:50].mean()


# --- Progressive distillation --------------------------------------------------------------------

def test_grids_nest():
    schedule = dl.cosine_schedule(1000)
    for n in (1, 2, 4, 8, 16, 32):
        grid = distillation_grid(schedule, n)
        assert grid.shape == (2 * n + 1,) and grid[0] == 0 and grid[-1] == 1000
        assert grid[::2].tolist() == [0, *dl.sampling_steps(schedule, n)]


def test_distillation_target_makes_one_step_equal_two_teacher_steps(ring, gen, one_thread):
    schedule = dl.cosine_schedule(1000)
    teacher = ring.eps_model(schedule)
    z = torch.randn(128, 2, generator=gen, dtype=torch.float64)
    for t, t_mid, t_next in ((1000, 750, 500), (500, 250, 0), (40, 20, 1)):
        steps = [torch.full((128,), s) for s in (t, t_mid, t_next)]
        target = dl.distillation_target(teacher, schedule, z, *steps)
        ab = [schedule.gather("alpha_bar", s, z) for s in steps]
        two = ddim_step(z, teacher(z, steps[0]), ab[0], ab[1])
        two = ddim_step(two, teacher(two, steps[1]), ab[1], ab[2])
        # One DDIM step from the x̂₀ = target, written through its ε̂.
        eps_hat = (z - ab[0].sqrt() * target) / (1 - ab[0]).sqrt()
        one = ddim_step(z, eps_hat, ab[0], ab[2])
        assert torch.allclose(one, two, atol=1e-8)
        if t_next == 0:
            assert torch.allclose(target, two)
    with pytest.raises(ValueError, match="t > t_mid > t_next"):
        dl.distillation_target(teacher, schedule, z, *[torch.full((128,), s) for s in (10, 20, 0)])


def test_distillation_loss_vanishes_for_the_exact_student(ring, gen, one_thread):
    schedule = dl.cosine_schedule(200)
    teacher = ring.eps_model(schedule)
    x0 = ring.sample(64, generator=gen).double()
    grid = distillation_grid(schedule, 4)

    def student(z, t):  # outputs the v whose x̂₀ is exactly the target
        k = torch.searchsorted(grid, t)
        target = dl.distillation_target(teacher, schedule, z, t, grid[k - 1], grid[k - 2])
        ab = schedule.gather("alpha_bar", t, z)
        return (ab.sqrt() * z - target) / (1 - ab).sqrt()

    loss = dl.progressive_distillation_loss(student, teacher, schedule, x0, student_steps=4,
                                            generator=torch.Generator().manual_seed(0))
    assert loss.shape == (64,) and loss.max() < 1e-12
    wrong = dl.progressive_distillation_loss(lambda z, t: torch.zeros_like(z), teacher, schedule, x0,
                                             student_steps=4, generator=torch.Generator().manual_seed(0))
    assert wrong.mean() > 0.01


def test_x0_from_output_agrees_with_the_parameterization_module(gen):
    schedule = dl.cosine_schedule(100)
    x0, eps = torch.randn(32, 3, generator=gen, dtype=torch.float64), torch.randn(32, 3, generator=gen,
                                                                                  dtype=torch.float64)
    t = torch.randint(1, 101, (32,), generator=gen)
    ab = schedule.gather("alpha_bar", t, x0)
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    v = ab.sqrt() * eps - (1 - ab).sqrt() * x0
    for kind, out in (("v", v), ("eps", eps), ("x0", x0), ("score", -eps / (1 - ab).sqrt())):
        assert torch.allclose(x0_from_output(kind, out, x_t, ab), x0, atol=1e-8)


def test_one_distillation_round_matches_the_two_step_teacher(one_thread):
    # Oracle teacher on a mixture: a TimeMLP student trained briefly to do in 1 DDIM step what the
    # teacher does in 2 is as good as the 2-step teacher and far better than the 1-step teacher.
    ring = dl.GaussianMixture.ring(4, radius=1.0, std=0.3)
    schedule = dl.cosine_schedule(100)
    exact = ring.eps_model(schedule)

    def teacher(x, t):
        return exact(x.double(), t).float()

    data = ring.sample(4096, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    result = dl.distill(dl.TimeMLP(hidden=64, n_blocks=2), teacher, schedule, data, student_steps=1, steps=300,
                        batch_size=256, lr=3e-3, ema_decay=0.9, seed=0)
    real = ring.sample(1000, generator=torch.Generator().manual_seed(2))

    def distance(eps_model, steps):
        x = dl.ddim_sample(eps_model, schedule, (1000, 2), steps=steps, generator=torch.Generator().manual_seed(3))
        return dl.energy_distance(x, real)

    student = distance(dl.EpsModel(result.ema_model, schedule, "v"), 1)  # measured 0.168
    assert student < 1.25 * distance(teacher, 2)  # measured 0.167
    assert student < 0.5 * distance(teacher, 1)  # measured 0.714


# --- Autoencoder and latent diffusion ------------------------------------------------------------

def test_autoencoder_shapes_and_errors(gen):
    ae = dl.Autoencoder((1, 8, 8), latent_dim=6, hidden=32)
    x = torch.rand(5, 1, 8, 8, generator=gen) * 2 - 1
    mean, log_var = ae.encode(x)
    assert mean.shape == log_var.shape == (5, 6)
    assert ae(x).shape == x.shape and ae.from_latent(ae.to_latent(x)).shape == x.shape
    assert dl.autoencoder_loss(ae, x, generator=gen).shape == (5,)
    with pytest.raises(ValueError, match="images of shape"):
        ae.encode(torch.zeros(5, 64))
    with pytest.raises(ValueError, match="latents of shape"):
        ae.decode(torch.zeros(5, 7))


def test_autoencoder_learns_to_reconstruct_digits():
    train_x, _ = dl.digits_8x8(split="train")
    test_x, _ = dl.digits_8x8(split="test")
    torch.manual_seed(0)
    ae = dl.Autoencoder((1, 8, 8), latent_dim=8, hidden=64)
    result = dl.train_autoencoder(ae, train_x, steps=300, batch_size=128, lr=3e-3, seed=0)
    ae = result.ema_model
    with torch.no_grad():
        error = (ae(test_x) - test_x).pow(2).mean().item()
    mean_image_error = (train_x.mean(0) - test_x).pow(2).mean().item()
    assert error < 0.5 * mean_image_error
    scale = dl.fit_latent_scale(ae, train_x)
    with torch.no_grad():
        assert abs(ae.to_latent(train_x).std().item() - 1.0) < 1e-4
        # Scaling is undone by from_latent: the reconstruction does not change.
        assert torch.allclose(ae.from_latent(ae.to_latent(test_x)), ae(test_x), atol=1e-5)
    assert scale > 0


# --- The chapter's bar, from the shipped checkpoints ----------------------------------------------

def test_shipped_four_step_student_is_within_25_percent_of_its_teacher(one_thread):
    """Issue bar: the distilled model at 4 steps within 25% of the teacher's FLD.

    Teacher: digits8-latent-diffusion, clipped DDIM in 64 steps (NFE 64); student: 4 clipped DDIM steps.
    """
    ae = dl.pretrained.load("digits8-autoencoder").model
    teacher = dl.pretrained.load("digits8-latent-diffusion")
    student = dl.pretrained.load("digits8-latent-distilled-4").model
    judge = dl.pretrained.load("digits8-classifier").model
    test_x, _ = dl.digits_8x8(split="test")
    schedule = teacher.schedule

    def fld(eps_model, steps):
        clipped = dl.ClippedEps(eps_model, schedule, -4.0, 4.0)
        images = dl.latent_sample(clipped, schedule, ae, 500, steps=steps, generator=torch.Generator().manual_seed(1))
        return dl.fld(judge, images, test_x)

    teacher_fld = fld(teacher.model, 64)
    student_fld = fld(dl.EpsModel(student, schedule, "v"), 4)
    assert student_fld <= 1.25 * teacher_fld, (student_fld, teacher_fld)
    # And the teacher's own 4-step DDIM is far worse: distillation, not the sampler, does the work.
    assert fld(teacher.model, 4) > 1.25 * teacher_fld
