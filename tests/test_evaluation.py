"""diffusion_lab.evaluation: named image samplers, the FLD report and guided accuracy, on the shipped 8×8
model (small n)."""

import pytest
import torch

import diffusion_lab as dl
from diffusion_lab.evaluation import IMAGE_SAMPLERS, fld_report, guided_accuracy, nfe, sample_images

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits():
    unet, judge = dl.pretrained.load("digits8-unet"), dl.pretrained.load("digits8-classifier").model
    return unet.denoiser, judge


def test_nfe_per_sampler(digits):
    denoiser, _ = digits
    # Heun in Karras' form on a schedule skips the correction on the first and the last step: 2S − 2.
    assert [nfe(denoiser, s, 10) for s in IMAGE_SAMPLERS] == [10, 10, 10, 18]
    calls = []
    hook = denoiser.net.register_forward_hook(lambda *_: calls.append(1))
    try:
        for sampler in IMAGE_SAMPLERS:  # the count is what the samplers really do
            calls.clear()
            sample_images(denoiser, 2, sampler=sampler, steps=10)
            assert len(calls) == nfe(denoiser, sampler, 10), sampler
    finally:
        hook.remove()
    with pytest.raises(ValueError, match="image sampler"):
        nfe(denoiser, "euler", 10)


def test_every_sampler_gives_images_in_range_reproducibly(digits):
    denoiser, _ = digits
    for sampler in IMAGE_SAMPLERS:
        a = sample_images(denoiser, 6, sampler=sampler, steps=4, batch_size=4,
                          generator=torch.Generator().manual_seed(1))
        b = sample_images(denoiser, 6, sampler=sampler, steps=4, batch_size=4,
                          generator=torch.Generator().manual_seed(1))
        assert a.shape == (6, 1, 8, 8) and float(a.abs().max()) <= 1.0
        torch.testing.assert_close(a, b)
    # Deterministic samplers do not depend on the batching.
    c = sample_images(denoiser, 6, sampler="ddim", steps=4, batch_size=6, generator=torch.Generator().manual_seed(1))
    d = sample_images(denoiser, 6, sampler="ddim", steps=4, batch_size=4, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(c, d, rtol=1e-4, atol=1e-4)


def test_bad_requests_are_named(digits):
    denoiser, judge = digits
    with pytest.raises(ValueError, match="steps must be an int in 1..1000, got 0"):
        sample_images(denoiser, 2, steps=0)
    with pytest.raises(ValueError, match=r"labels must have shape \(2,\)"):
        sample_images(denoiser, 2, labels=torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="only 360 test images|test images to compare"):
        fld_report(judge, torch.zeros(5000, 1, 8, 8), *[dl.digits_8x8(split=s)[0] for s in ("train", "test")])
    with pytest.raises(ValueError, match="class-conditional"):
        guided_accuracy(denoiser.replace(net=dl.UNet(**dl.unet_config((1, 8, 8), "tiny"))), judge, [0.0])


def test_guidance_raises_accuracy_and_real_images_sit_at_the_floor(digits):
    """Guided samples of the shipped model are mostly the requested digit; the FLD of real test
    images against themselves is far below that of pure noise (a sanity check of the report)."""
    denoiser, judge = digits
    rows = guided_accuracy(denoiser, judge, [0.0, 2.0], n_per_class=10, sampler="ddim", steps=20)
    assert [r["n"] for r in rows] == [100, 100]
    assert rows[1]["accuracy"] >= 0.8, rows
    train_x, test_x = dl.digits_8x8(split="train")[0], dl.digits_8x8(split="test")[0]
    real = fld_report(judge, train_x[:200], train_x, test_x)
    noise = fld_report(judge, torch.rand(200, 1, 8, 8) * 2 - 1, train_x, test_x)
    assert real["ratio"] < 2.0 < noise["ratio"], (real, noise)
