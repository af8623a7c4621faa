"""The UNet: one configuration per image size, the shape contract, conditioning and guidance."""

import pytest
import torch

import diffusion_lab as dl
from diffusion_lab.unet import UNet, summarize, unet_config

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models and the 2D oracle: 2 threads only add waiting


def randomize(model, gen):
    """Give every parameter random values (the last conv starts at zero, which hides bugs)."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.1 * torch.randn(p.shape, generator=gen))
    return model


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
def test_one_config_serves_each_image_size(shape, gen):
    model = randomize(UNet(**unet_config(shape, "tiny", num_classes=10)), gen).eval()
    x = torch.randn(3, *shape, generator=gen)
    t = torch.tensor([1, 500, 1000])
    out = model(x, t, torch.tensor([0, 3, 10]))
    assert out.shape == x.shape and torch.isfinite(out).all()
    report = summarize(model)
    assert report.n_params == sum(p.numel() for p in model.parameters())
    assert report.rows[0][1] == (1, 16, shape[1], shape[2]) and report.rows[-1][1] == (1, *shape)
    lowest = min(row[1][-1] for row in report.rows)
    assert lowest == shape[1] // 2 ** (len(model.down) - 1)
    assert "attention" in str(report) and "parameters:" in str(report)


def test_untrained_model_outputs_zero_and_depends_on_t_and_y_once_trained(gen):
    model = UNet(**unet_config((1, 8, 8), "tiny", num_classes=10)).eval()
    x = torch.randn(4, 1, 8, 8, generator=gen)
    t = torch.full((4,), 10)
    assert torch.equal(model(x, t), torch.zeros_like(x))  # zero-initialised output layer
    randomize(model, gen)
    assert not torch.allclose(model(x, t), model(x, t + 100))
    y = torch.tensor([1, 2, 3, 4])
    assert not torch.allclose(model(x, t, y), model(x, t, (y + 1) % 10))
    # y=None means the null class, index num_classes.
    torch.testing.assert_close(model(x, t), model(x, t, torch.full((4,), 10)))


def test_examples_do_not_interact(gen):
    """GroupNorm normalises within one example: a batch's outputs equal one-by-one outputs."""
    model = randomize(UNet(**unet_config((1, 28, 28), "tiny")), gen).eval()
    x = torch.randn(3, 1, 28, 28, generator=gen)
    t = torch.tensor([5, 50, 500])
    batched = model(x, t)
    single = torch.cat([model(x[i:i + 1], t[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-4)


def test_guidance_is_the_extrapolation_of_eq_6(gen):
    model = randomize(UNet(**unet_config((1, 8, 8), "tiny", num_classes=10)), gen).eval()
    x = torch.randn(4, 1, 8, 8, generator=gen)
    t = torch.full((4,), 7)
    y = torch.tensor([0, 1, 2, 9])
    cond, uncond = model(x, t, y), model(x, t)
    den = dl.Denoiser(model, dl.cosine_schedule(1000))
    torch.testing.assert_close(den.replace(labels=y, guidance=2.0).eps(x, t), 3.0 * cond - 2.0 * uncond,
                               atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(den.replace(labels=y).eps(x, t), cond)
    torch.testing.assert_close(den.replace(guidance=3.0).eps(x, t), uncond)  # no labels: the null class, unguided


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="divisible by"):
        UNet(image_size=30, channel_mults=(1, 2, 2))
    with pytest.raises(ValueError, match="choose one of: tiny, small, base, large"):
        unet_config((1, 28, 28), "huge")
    model = UNet(**unet_config((1, 8, 8), "tiny"))
    with pytest.raises(ValueError, match=r"expects x of shape \(B, 1, 8, 8\)"):
        model(torch.zeros(2, 1, 28, 28), torch.ones(2, dtype=torch.long))
    with pytest.raises(ValueError, match="unconditional"):
        model(torch.zeros(2, 1, 8, 8), torch.ones(2, dtype=torch.long), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="class-conditional"):
        dl.Denoiser(model, dl.cosine_schedule(1000), labels=torch.zeros(2, dtype=torch.long), guidance=1.0)


def test_respaced_schedule_keeps_the_marginals():
    schedule = dl.cosine_schedule(1000)
    respaced, tau = dl.respace(schedule, 50)
    assert respaced.T == 50 and tau[0] == 0 and tau[-1] == 1000
    torch.testing.assert_close(torch.tensor(respaced.alpha_bar), torch.tensor(schedule.alpha_bar[tau.numpy()]))
    same, _ = dl.respace(schedule, 1000)
    torch.testing.assert_close(torch.tensor(same.beta), torch.tensor(schedule.beta))
    # A sampler given steps=50 visits exactly τ_50 > ... > τ_1 and calls the network at those steps.
    assert schedule.time_grid(50).tolist() == tau.flip(0).tolist()
    seen = []
    den = dl.Denoiser(lambda x, t: seen.append(t[0].item()) or torch.zeros_like(x), schedule)
    dl.ddpm_sample(den, (2, 1), steps=50, generator=torch.Generator().manual_seed(0))
    assert seen == tau[1:].flip(0).tolist()
    with pytest.raises(ValueError, match="1..1000"):
        dl.respace(schedule, 0)


def test_respaced_ddpm_samples_a_gaussian_mixture_from_its_exact_eps(gen):
    """With the exact ε of a mixture, 50 respaced DDPM steps reproduce the mixture's moments."""
    mixture = dl.GaussianMixture(torch.tensor([0.3, 0.7]), torch.tensor([[-2.0, 0.0], [2.0, 1.0]]),
                                 torch.stack([0.1 * torch.eye(2), 0.2 * torch.eye(2)]))
    schedule = dl.cosine_schedule(1000)
    respaced, tau = dl.respace(schedule, 50)
    n = 4000
    samples = dl.ddpm_sample(mixture.denoiser(schedule), (n, 2), steps=50, generator=gen, variance="beta_tilde")
    # The same chain as DDPM on the respaced schedule (Nichol & Dhariwal 2021, Sec. 4), noise for noise.
    x_T = torch.randn(200, 2, generator=gen)
    for variance in ("beta", "beta_tilde"):
        torch.testing.assert_close(
            dl.ddpm_sample(mixture.denoiser(schedule), x_T, steps=50, variance=variance,
                           generator=torch.Generator().manual_seed(1)),
            dl.ddpm_sample(mixture.denoiser(respaced), x_T, variance=variance,
                           generator=torch.Generator().manual_seed(1)),
            atol=1e-5, rtol=1e-5)
    right = samples[:, 0] > 0
    # Mode weight within 4 standard errors of 0.7, mean of the right mode within a few standard errors.
    assert abs(right.double().mean().item() - 0.7) < 4 * (0.21 / n) ** 0.5
    assert (samples[right].mean(0) - torch.tensor([2.0, 1.0])).abs().max() < 0.05


def test_clipped_eps_implies_the_clipped_x0(gen):
    schedule = dl.cosine_schedule(1000)
    x_t = 3.0 * torch.randn(64, 1, 8, 8, generator=gen)
    t = torch.randint(1, 1001, (64,), generator=gen)
    eps_model = lambda x, s: 0.5 * x  # noqa: E731 (an arbitrary ε-model)
    clipped = dl.Denoiser(eps_model, schedule, clip=1.0).eps(x_t, t)
    alpha_bar = schedule.gather("alpha_bar", t, x_t)
    x0_raw = (x_t - (1 - alpha_bar).sqrt() * eps_model(x_t, t)) / alpha_bar.sqrt()
    x0_clipped = (x_t - (1 - alpha_bar).sqrt() * clipped) / alpha_bar.sqrt()
    torch.testing.assert_close(x0_clipped, x0_raw.clamp(-1, 1), atol=1e-3, rtol=1e-4)
    inside = x0_raw.abs() < 1
    assert inside.any() and (~inside).any()
    torch.testing.assert_close(clipped[inside], eps_model(x_t, t)[inside], atol=1e-4, rtol=1e-4)
