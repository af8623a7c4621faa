"""Issue 15, item 6: the fast samplers against DDPM on the shipped 8×8 digits model.

The bar: DDIM with 50 steps and DPM-Solver++(2M) with 20 steps reach an FLD within 1.25 times that
of DDPM with 100 steps, at the same number of samples n, against the same test images and the same
real-vs-real floor, from the same starting noise. All three get the same denoiser,
``dl.pretrained.load("digits8-unet").denoiser``, whose x̂₀ clip (to [−1, 1]) applies to every
sampler; the old chapter clipped on DDPM's path only and printed 11x the floor for DDIM.

Measured on the model shipped in commit 3b14c05 (6000 steps of 128 images), unconditional samples,
n = 500 (every digits8 test image), floor 3.68 (``fld_report``, generator seed 0), FLD of
DDPM-100 / DDIM-50 / DPM-Solver++(2M)-20:

    seed 1: 3.58 / 8.31 / 8.99   ratios 2.32 / 2.51
    seed 2: 6.30 / 10.57 / 11.55 ratios 1.68 / 1.83
    seed 3: 4.22 / 6.58 / 6.53   ratios 1.56 / 1.55

so the bar is not met, at any seed tried: the two ratio tests are strict xfails that record this.
It is not DDIM's discretisation: at seed 1 DDIM with 100 and 250 steps gives 8.35 and 8.21. DDPM's
own FLD moves with its noise (seed 1 with 50 / 250 steps: 6.86 / 5.77), so the ratio is noisy, but
the fast samplers are worse at every seed. With class labels (the test labels, w = 0) the three
samplers all lie within the floor's spread (seed 1: 3.18 / 3.15 / 3.14, ratios 0.99 / 0.99): there the
bar is met, and ``test_fast_sampler_reaches_ddpm_quality_with_labels`` holds it. The test that the clip
reaches the deterministic samplers passes and would catch the old bug (DDIM-50 without the clip:
FLD 134).

The unconditional gap is the null label's: the network sees it in 15 % of its training examples. A
retrained model with label_dropout 0.30 (same recipe otherwise, not shipped) did not close it:
unconditional ratios DDIM / DPM-Solver++ 1.66 / 1.88, 1.32 / 1.45, 2.86 / 3.02 at seeds 1-3, while with
labels drawn from the training labels they were 0.72 / 0.73, 0.94 / 0.98, 0.79 / 0.82.
"""

import pytest
import torch

import diffusion_lab as dl

N = 500  # every digits8 test image: the floor and the FLD are least noisy there
SEED = 1
BAR = 1.25
SAMPLERS = {"ddpm": 100, "ddim": 50, "dpm++2m": 20}
MEASURED = ("not met by the shipped digits8-unet (commit 3b14c05), unconditional, n = 500, floor 3.68: "
            "FLD DDPM-100 3.58, DDIM-50 8.31 (2.32x), DPM-Solver++(2M)-20 8.99 (2.51x) at seed 1; "
            "1.68x / 1.83x at seed 2, 1.56x / 1.55x at seed 3")


@pytest.fixture(scope="module")
def quality(one_thread):
    """FLD reports of the three samplers (and of DDIM without the clip) at the same n, seed and floor."""
    loaded = dl.pretrained.load("digits8-unet")
    judge = dl.pretrained.load("digits8-classifier").model
    train_x, _ = dl.load_images("digits8", split="train")
    test_x, _ = dl.load_images("digits8", split="test")

    def report(denoiser, sampler, labels=None):
        samples = dl.sample_images(denoiser, N, sampler=sampler, steps=SAMPLERS[sampler], labels=labels,
                                   generator=torch.Generator().manual_seed(SEED))
        return dl.fld_report(judge, samples, train_x, test_x, generator=torch.Generator().manual_seed(0))

    reports = {sampler: report(loaded.denoiser, sampler) for sampler in SAMPLERS}
    reports["ddim, no clip"] = report(loaded.denoiser.replace(clip=None), "ddim")
    _, test_y = dl.load_images("digits8", split="test")
    for sampler in SAMPLERS:  # the class-conditional branch: the test digits' own labels, w = 0
        reports[sampler, "labels"] = report(loaded.denoiser, sampler, labels=test_y)
    return loaded, reports


def test_the_samplers_are_compared_at_the_same_n_and_floor(quality):
    loaded, reports = quality
    assert loaded.denoiser.clip == 1.0  # the clip is the denoiser's, so every sampler gets it
    assert {r["n"] for r in reports.values()} == {N}
    assert len({r["floor"] for r in reports.values()}) == 1
    # DDPM itself is near the floor: the comparison is against a good reference, not a weak one.
    assert reports["ddpm"]["ratio"] < 1.5


def test_the_clip_reaches_the_deterministic_samplers(quality):
    """Without the clip DDIM ends far from the data (the old chapter's 11x); with it, far closer."""
    _, reports = quality
    assert reports["ddim, no clip"]["fld"] > 5 * reports["ddim"]["fld"]


@pytest.mark.xfail(strict=True, reason=MEASURED)
@pytest.mark.parametrize("sampler", ["ddim", "dpm++2m"])
def test_fast_sampler_reaches_ddpm_quality(quality, sampler):
    _, reports = quality
    ratio = reports[sampler]["fld"] / reports["ddpm"]["fld"]
    assert ratio <= BAR, (f"{sampler} with {SAMPLERS[sampler]} steps: FLD {reports[sampler]['fld']:.3g} = "
                          f"{ratio:.2f} x DDPM-100's {reports['ddpm']['fld']:.3g} (bar {BAR}x)")


@pytest.mark.parametrize("sampler", ["ddim", "dpm++2m"])
def test_fast_sampler_reaches_ddpm_quality_with_labels(quality, sampler):
    """With the test digits' labels (w = 0) the fast samplers are within the bar of DDPM-100 (measured 0.99x)."""
    _, reports = quality
    ratio = reports[sampler, "labels"]["fld"] / reports["ddpm", "labels"]["fld"]
    assert ratio <= BAR, f"{sampler} with labels: {ratio:.2f} x DDPM-100 (bar {BAR}x)"
    assert reports[sampler, "labels"]["ratio"] < 1.25  # and near the real-vs-real floor, not merely near DDPM
