"""Inpainting, RePaint, SDEdit and ILVR super-resolution (chapter 10).

Closed forms first: with Gaussian data the conditional of the unknown coordinates, and the output
distribution of SDEdit, are known exactly. Then cheap checks on images and the chapter's bars on
the shipped digits model.
"""

import math

import pytest
import torch

import diffusion_lab as dl

pytestmark = pytest.mark.usefixtures("one_thread")

ROTATION = torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=torch.float64) / math.sqrt(2)


def gaussian(mean, cov) -> dl.GaussianMixture:
    return dl.GaussianMixture(torch.tensor([1.0]), torch.tensor([mean]), torch.tensor([cov]))


# --- RePaint's schedule -----------------------------------------------------------------------


@pytest.mark.parametrize("T, U, j", [(1, 1, 1), (10, 1, 1), (10, 3, 3), (25, 5, 5), (50, 10, 1), (7, 4, 10)])
def test_repaint_schedule_moves_and_cost(T, U, j):
    # T: the number of steps of the sampler's grid (index 0 is its data end).
    steps = dl.repaint_schedule(T, U, j)
    assert steps[0] == T and steps[-1] == 0
    moves = [b - a for a, b in zip(steps[:-1], steps[1:])]
    assert set(moves) <= {-1, j}
    assert max(steps) == T and min(steps) == 0
    assert moves.count(-1) == T + (U - 1) * j * ((T - 1) // j if j < T else 0)


def test_repaint_schedule_without_resampling_is_plain_descent():
    assert dl.repaint_schedule(5) == [5, 4, 3, 2, 1, 0]
    assert dl.repaint_schedule(5, 1, 3) == [5, 4, 3, 2, 1, 0]
    for bad in (dict(steps=0), dict(steps=5, resamplings=0)):
        with pytest.raises(ValueError, match="must be an int >= 1, got 0"):
            dl.repaint_schedule(**bad)
    with pytest.raises(TypeError, match="jump_length must be an int >= 1, got 1.5"):
        dl.repaint_schedule(5, jump_length=1.5)


# --- Inpainting on 2D Gaussians, against the exact conditional ---------------------------------


def test_replacement_is_exact_when_the_coordinates_are_independent():
    """For N(μ, diag) the unknown coordinate does not depend on the known one, so replacement
    samples p(x_1 | x_2) = N(μ_1, Σ_11) exactly (up to the discretisation of 100 steps)."""
    target = gaussian([0.5, -0.3], [[0.4, 0.0], [0.0, 0.5]])
    schedule = dl.cosine_schedule(100)
    known = torch.tensor([[0.0, 1.2]]).expand(4000, 2)
    x = dl.inpaint_sample(target.denoiser(schedule), known, torch.tensor([False, True]),
                          generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(x[:, 1], known[:, 1])
    # Standard error of the mean 0.63 / √4000 = 0.01.
    assert abs(float(x[:, 0].mean()) - 0.5) < 0.04
    assert abs(float(x[:, 0].std()) - 0.4**0.5) < 0.04


def test_repaint_corrects_the_bias_of_replacement_on_a_correlated_gaussian():
    """Exact: x_1 | x_2 = 0.6 ~ N(1.04, 0.469²). Measured (4000 samples, 50 steps): replacement
    mean 0.83, RePaint (U = 10, j = 1) 1.01: resampling lets the unknown part follow the known one."""
    target = gaussian([0.5, -0.3], [[0.4, 0.3], [0.3, 0.5]])
    y = 0.6
    exact_mean = 0.5 + 0.3 / 0.5 * (y + 0.3)
    exact_std = (0.4 - 0.3**2 / 0.5) ** 0.5
    schedule = dl.cosine_schedule(50)
    known = torch.tensor([[0.0, y]]).expand(4000, 2)
    mask = torch.tensor([False, True])
    plain = dl.inpaint_sample(target.denoiser(schedule), known, mask, generator=torch.Generator().manual_seed(0))
    repaint = dl.inpaint_sample(target.denoiser(schedule), known, mask, resamplings=10,
                                generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(repaint[:, 1], known[:, 1])
    plain_error = abs(float(plain[:, 0].mean()) - exact_mean)
    repaint_error = abs(float(repaint[:, 0].mean()) - exact_mean)
    assert plain_error > 0.15, plain_error
    assert repaint_error < 0.06, repaint_error
    assert abs(float(repaint[:, 0].std()) - exact_std) < 0.08


def test_replacement_with_a_projection_is_exact_in_the_right_basis():
    """Observing the mean (x_1 + x_2)/2 is ILVR's low-pass measurement on a 2-pixel image. When the
    covariance is diagonal in the (sum, difference) basis, the difference is independent of the
    sum, so its conditional is its marginal N(μ_v, b), and every sample has the observed mean."""
    a, b = 0.6, 0.2
    cov = ROTATION @ torch.diag(torch.tensor([a, b], dtype=torch.float64)) @ ROTATION.T
    mean = torch.tensor([0.3, -0.5], dtype=torch.float64)
    target = gaussian(mean.tolist(), cov.tolist())
    schedule = dl.cosine_schedule(100)
    reference = torch.tensor([[1.0, 0.2]]).expand(4000, 2)  # observed mean 0.6

    def project(x):
        return x.mean(1, keepdim=True).expand_as(x)

    x = dl.replacement_sample(target.denoiser(schedule), reference, project,
                              generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(x.mean(1), torch.full((4000,), 0.6), atol=1e-5, rtol=0)
    v = (x[:, 0] - x[:, 1]) / math.sqrt(2)
    mu_v = float((mean[0] - mean[1]) / math.sqrt(2))
    assert abs(float(v.mean()) - mu_v) < 0.03
    assert abs(float(v.std()) - b**0.5) < 0.03


# --- SDEdit against its closed form ---------------------------------------------------------------


@pytest.mark.parametrize("t0", [150, 400, 700])
def test_sdedit_output_matches_the_gaussian_closed_form(t0):
    """Data N(μ, s² I), guide g: the output is Gaussian with mean μ + c (g − μ),
    c = ᾱ s²/(ᾱ s² + 1 − ᾱ), and variance s² (1 − ᾱ)/(ᾱ s² + 1 − ᾱ) · (1 + c), ᾱ = ᾱ_{t₀} (the posterior of x_0 given a
    draw of q(x_{t₀} | g))."""
    s2, mu = 0.25, torch.tensor([0.5, -1.0])
    target = gaussian(mu.tolist(), (s2 * torch.eye(2)).tolist())
    schedule = dl.cosine_schedule(1000)
    guide = torch.tensor([[-1.5, 1.0]]).expand(4000, 2)
    x = dl.sdedit_sample(target.denoiser(schedule), guide, t0, generator=torch.Generator().manual_seed(0))
    ab = float(schedule.alpha_bar[t0])
    c = ab * s2 / (ab * s2 + 1 - ab)
    std = (s2 * (1 - ab) / (ab * s2 + 1 - ab) * (1 + c)) ** 0.5
    torch.testing.assert_close(x.mean(0), mu + c * (guide[0] - mu), atol=0.03, rtol=0)
    torch.testing.assert_close(x.std(0), torch.full((2,), std), atol=0.03, rtol=0)


def test_sdedit_trajectory_starts_from_the_noised_guide_at_t0():
    schedule = dl.cosine_schedule(50)
    # SDEdit runs the reverse chain on the head of the schedule: steps t₀ > ... > 1 > 0.
    assert schedule.time_grid(start=20).tolist() == list(range(20, -1, -1))
    assert schedule.time_grid(5, start=20).tolist() == [20, 16, 12, 8, 4, 0]
    model = dl.GaussianMixture.ring().denoiser(schedule)
    guide = torch.zeros(5, 2)
    x, trajectory = dl.sdedit_sample(model, guide, 20, return_trajectory=True,
                                     generator=torch.Generator().manual_seed(0))
    assert trajectory.shape == (21, 5, 2)
    torch.testing.assert_close(trajectory[-1], x)
    # Sampling order: first the draw of q(x_{t₀} | guide), from the same generator.
    noised = dl.q_sample(schedule, guide, 20, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(trajectory[0], noised)
    again = dl.sdedit_sample(model, guide, 20, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(again, x)
    fewer, short = dl.sdedit_sample(model, guide, 20, steps=5, return_trajectory=True,
                                    generator=torch.Generator().manual_seed(0))
    assert short.shape == (6, 5, 2) and fewer.shape == (5, 2)
    for bad in (0, 51):
        with pytest.raises(ValueError, match=f"t0 must be an int in 1..50, got {bad}"):
            dl.sdedit_sample(model, guide, bad)
    with pytest.raises(TypeError, match="t0 must be an int in 1..50, got 2.5"):
        dl.sdedit_sample(model, guide, 2.5)
    with pytest.raises(ValueError, match=r"t0 must be a finite number in \(0.001, 1\], got 0"):
        dl.sdedit_sample(dl.GaussianMixture.ring().denoiser(dl.VPSDE()), guide, 0.0)


def test_ascii_image():
    img = dl.ascii_image(["#+.", "..#"])
    torch.testing.assert_close(img, torch.tensor([[[1.0, 0.0, -1.0], [-1.0, -1.0, 1.0]]]))
    with pytest.raises(ValueError, match="equal length"):
        dl.ascii_image(["##", "#"])


# --- Cheap checks on images ---------------------------------------------------------------------


def image_model(schedule, shape=(1, 4, 4)):
    """The exact x̂₀ of a 16-dimensional Gaussian mixture, as a denoiser of 4×4 images."""
    D = math.prod(shape)
    g = torch.Generator().manual_seed(0)
    means = torch.randn(3, D, generator=g, dtype=torch.float64) * 0.5
    covs = 0.1 * torch.eye(D, dtype=torch.float64).expand(3, D, D).clone()
    oracle = dl.GaussianMixture(torch.full((3,), 1 / 3, dtype=torch.float64), means, covs).denoiser(schedule)
    return dl.Denoiser(lambda x, t: oracle.x0(x.flatten(1), t).reshape(x.shape), schedule, predicts="x0")


def test_inpainting_images_keeps_the_known_pixels_and_replays_its_noise():
    schedule = dl.cosine_schedule(20)
    model = image_model(schedule)
    known = torch.rand(6, 1, 4, 4, generator=torch.Generator().manual_seed(1)) * 2 - 1
    mask = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    mask[..., :2, :] = True
    x, trajectory = dl.inpaint_sample(model, known, mask, resamplings=3, jump_length=4,
                                      return_trajectory=True, generator=torch.Generator().manual_seed(2))
    assert trajectory.shape == (len(dl.repaint_schedule(20, 3, 4)), 6, 1, 4, 4)
    torch.testing.assert_close(trajectory[-1], x)
    torch.testing.assert_close(x[..., :2, :], known[..., :2, :])
    again = dl.inpaint_sample(model, known, mask.float(), resamplings=3, jump_length=4,
                              generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(again, x)


def test_ilvr_is_consistent_with_the_low_resolution_image():
    schedule = dl.cosine_schedule(20)
    model = image_model(schedule)
    low = torch.rand(6, 1, 2, 2, generator=torch.Generator().manual_seed(1)) * 2 - 1
    x = dl.ilvr_sample(model, low, 2, resamplings=2, jump_length=5,
                       generator=torch.Generator().manual_seed(0))
    assert x.shape == (6, 1, 4, 4)
    torch.testing.assert_close(dl.box_downsample(x, 2), low, atol=1e-5, rtol=0)


def test_low_pass_is_an_orthogonal_projection():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(3, 2, 8, 8, generator=g), torch.randn(3, 2, 8, 8, generator=g)
    low = torch.randn(3, 2, 4, 4, generator=g)
    torch.testing.assert_close(dl.box_downsample(dl.nearest_upsample(low, 2), 2), low)  # D D⁺ = I
    torch.testing.assert_close(dl.low_pass(dl.low_pass(x, 2), 2), dl.low_pass(x, 2))  # P² = P
    torch.testing.assert_close((dl.low_pass(x, 2) * y).sum(), (x * dl.low_pass(y, 2)).sum())  # P = Pᵀ
    assert dl.bicubic_upsample(low, 2).shape == (3, 2, 8, 8)
    with pytest.raises(ValueError, match="not divisible by the factor 3"):
        dl.box_downsample(x, 3)
    with pytest.raises(ValueError, match="images of shape"):
        dl.box_downsample(torch.zeros(3, 8), 2)


def test_harmonic_fill_reproduces_a_linear_ramp():
    """A linear function is harmonic: given its values on the border, the fill is the ramp itself."""
    ramp = torch.linspace(-1, 1, 8).expand(2, 1, 8, 8).clone()
    mask = torch.ones(1, 1, 8, 8, dtype=torch.bool)
    mask[..., 2:6, 1:7] = False
    filled = dl.harmonic_fill(torch.where(mask, ramp, torch.zeros(())), mask, iterations=500)
    torch.testing.assert_close(filled, ramp, atol=1e-4, rtol=0)


def test_input_checks():
    schedule = dl.cosine_schedule(10)
    model = image_model(schedule)
    known = torch.zeros(2, 1, 4, 4)
    with pytest.raises(ValueError, match="does not broadcast"):
        dl.inpaint_sample(model, known, torch.ones(3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="hold only 0 and 1"):
        dl.inpaint_sample(model, known, torch.full((4, 4), 0.5))
    with pytest.raises(ValueError, match="unknown reverse variance 'sigma'"):
        dl.inpaint_sample(model, known, torch.ones(4, 4), variance="sigma")
    with pytest.raises(ValueError, match=r"known must have shape \(B, ...\)"):
        dl.inpaint_sample(model, torch.zeros(4), torch.ones(4))
    with pytest.raises(ValueError, match="factor must be an int >= 1"):
        dl.ilvr_sample(model, torch.zeros(2, 1, 2, 2), 0)
    with pytest.raises(ValueError, match=r"x_T and reference must have the same shape"):
        dl.inpaint_sample(model, known, torch.ones(4, 4), x_T=torch.zeros(3, 1, 4, 4))


# --- The chapter's bars on the shipped digits model (cheap versions) -----------------------------


@pytest.fixture(scope="module")
def digits():
    denoiser = dl.pretrained.load("digits8-unet").denoiser  # unconditional (the null class), x̂₀ clipped
    test_x, _ = dl.digits_8x8(split="test")
    train_x, _ = dl.digits_8x8(split="train")
    return denoiser, test_x[:50], train_x


def test_repaint_beats_the_baselines_on_the_hole(digits):
    """Centre 4×4 hole, 50 test digits, 25 steps, RePaint U = 5, j = 5 (the chapter's setting on
    100 digits). Both baselines must be beaten on the masked region by a margin of 10%."""
    denoiser, x0, train_x = digits
    mask = torch.ones(1, 1, 8, 8, dtype=torch.bool)
    mask[..., 2:6, 2:6] = False
    mask = mask.expand_as(x0)
    out = dl.inpaint_sample(denoiser, x0, mask, steps=25, resamplings=5, jump_length=5,
                            generator=torch.Generator().manual_seed(0)).clamp(-1, 1)
    ours = dl.masked_mse(out, x0, ~mask).mean().item()
    harmonic = dl.masked_mse(dl.harmonic_fill(x0, mask), x0, ~mask).mean().item()
    mean_image = dl.masked_mse(torch.where(mask, x0, train_x.mean(0)), x0, ~mask).mean().item()
    # Measured: 0.42, 0.49, 0.44 for seeds 0, 1, 2 against 0.64 (harmonic) and 0.58 (mean image).
    assert ours < 0.9 * min(harmonic, mean_image), (ours, harmonic, mean_image)


def test_ilvr_beats_bicubic_in_psnr(digits):
    """8×8 from the 4×4 block means of 50 test digits, plain ILVR with 25 steps. Measured: 14.9, 15.8,
    15.5 dB for seeds 0, 1, 2 against 13.5 dB for bicubic."""
    denoiser, x0, _ = digits
    low = dl.box_downsample(x0, 2)
    out = dl.ilvr_sample(denoiser, low, 2, steps=25, generator=torch.Generator().manual_seed(0))
    ours = dl.psnr(out, x0).mean().item()
    bicubic = dl.psnr(dl.bicubic_upsample(low, 2), x0).mean().item()
    assert ours > bicubic + 1.0, (ours, bicubic)
