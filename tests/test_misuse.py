"""Misuse of the public API gets a clear error: a ValueError or TypeError naming the argument.

Each row is one bad call a reader or a careless script could make, with the words its message must
contain (the argument, and where it helps the valid range). No row may end in a bare IndexError,
AttributeError, ZeroDivisionError or a torch error from deep inside, and none may return a silently
wrong result (a NaN sample, pure noise, the wrong step).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import diffusion_lab as dl
from diffusion_lab.unet import unet_config

S = dl.cosine_schedule(100)
RING = dl.GaussianMixture.ring()
D = RING.denoiser(S)
X = torch.randn(8, 2, generator=torch.Generator().manual_seed(0))
IMAGES = torch.zeros(2, 1, 8, 8)
NET = dl.TimeMLP()
COND_NET = dl.TimeMLP(num_classes=3)
UNET = dl.UNet(**unet_config((1, 8, 8), "tiny", num_classes=10))
VP = dl.VPSDE()
T8 = torch.full((8,), 10)


def _raises(call, error, *words):
    return call, error, words


CASES = {
    # Steps and times.
    "a raw step tensor beyond T": _raises(lambda: S.gather("alpha_bar", torch.tensor([101]), X[:1]), ValueError, "101", "0..100"),
    "a negative step": _raises(lambda: dl.q_sample(S, X, -1), ValueError, "-1", "0..100"),
    "a step tensor of floats": _raises(lambda: dl.q_sample(S, X, torch.full((8,), 3.0)), TypeError, "integer steps"),
    "a step tensor of the wrong shape": _raises(lambda: dl.q_sample(S, X, torch.full((8, 1), 3)), ValueError, "shape (8,)"),
    "a step given as a string": _raises(lambda: dl.q_sample(S, X, "10"), TypeError, "t"),
    "a bool step": _raises(lambda: dl.q_sample(S, X, True), TypeError, "t"),
    "a continuous time below 0": _raises(lambda: dl.q_sample(VP, X, -0.005), ValueError, "-0.005", "[0, 1]"),
    "a continuous time above 1": _raises(lambda: dl.q_sample(VP, X, 1.5), ValueError, "1.5"),
    "a NaN time": _raises(lambda: dl.q_sample(VP, X, float("nan")), ValueError, "t"),
    "a denoiser queried beyond T": _raises(lambda: D.eps(X, 101), ValueError, "101"),
    "q_posterior at t = 0": _raises(lambda: dl.q_posterior(S, X, X, 0), ValueError, "1..100"),
    "q_posterior without t_prev in continuous time": _raises(lambda: dl.q_posterior(VP, X, X, 0.5), ValueError, "t_prev"),
    "q_posterior with t_prev after t": _raises(lambda: dl.q_posterior(VP, X, X, 0.5, t_prev=0.7), ValueError, "t_prev"),
    # Data.
    "integer data to q_sample": _raises(lambda: dl.q_sample(S, torch.ones(4, 2, dtype=torch.long), 10), TypeError, "x0", "float"),
    "a numpy array to q_sample": _raises(lambda: dl.q_sample(S, np.zeros((4, 2)), 10), TypeError, "x0", "torch.Tensor"),
    "1-D data to q_sample": _raises(lambda: dl.q_sample(S, torch.zeros(4), 10), ValueError, "x0", "(B, ...)"),
    "noise of another shape": _raises(lambda: dl.q_sample(S, X, 10, noise=torch.zeros(8, 3)), ValueError, "noise", "shape"),
    "integer x_T to a sampler": _raises(lambda: dl.ddim_sample(D, torch.zeros(4, 2, dtype=torch.long)), TypeError, "x_T"),
    "NaN in x_T": _raises(lambda: dl.ddim_sample(D, torch.full((4, 2), float("nan"))), ValueError, "x_T", "NaN"),
    "a shape with a zero": _raises(lambda: dl.ddim_sample(D, (0, 2)), ValueError, "x_T"),
    "a shape of one axis": _raises(lambda: dl.ddim_sample(D, (4,)), ValueError, "x_T"),
    # Sampler options.
    "NaN eta": _raises(lambda: dl.ddim_sample(D, (4, 2), eta=float("nan")), ValueError, "eta"),
    "negative eta": _raises(lambda: dl.ddim_sample(D, (4, 2), eta=-0.1), ValueError, "eta", ">= 0"),
    "zero steps": _raises(lambda: dl.ddim_sample(D, (4, 2), steps=0), ValueError, "steps", "1..100"),
    "more steps than T": _raises(lambda: dl.ddim_sample(D, (4, 2), steps=101), ValueError, "steps", "1..100"),
    "steps as a float": _raises(lambda: dl.ddim_sample(D, (4, 2), steps=10.0), TypeError, "steps"),
    "steps not increasing": _raises(lambda: dl.ddim_sample(D, (4, 2), steps=[10, 5]), ValueError, "increasing"),
    "an unknown reverse variance": _raises(lambda: dl.ddpm_sample(D, (4, 2), variance="sigma"), ValueError, "beta", "beta_tilde"),
    "continuous-time DDPM without steps": _raises(lambda: dl.ddpm_sample(RING.denoiser(VP), (4, 2)), ValueError, "steps"),
    "an integer as generator": _raises(lambda: dl.ddpm_sample(D, (4, 2), generator=0), TypeError, "generator", "manual_seed"),
    "a generator on another device than the data": _raises(lambda: dl.randn_like(torch.zeros(2, device="meta"), torch.Generator()), ValueError, "generator"),
    "a network instead of a denoiser": _raises(lambda: dl.ddpm_sample(NET, (4, 2)), TypeError, "Denoiser"),
    "RK45 on a discrete schedule": _raises(lambda: dl.rk45_sample(D, (4, 2)), ValueError, "continuous-time"),
    "an SDE sampler on a schedule": _raises(lambda: dl.euler_maruyama_sample(D, (4, 2), steps=10), ValueError, "SDE"),
    "negative corrector steps": _raises(lambda: dl.pc_sample(RING.denoiser(VP), (4, 2), steps=5, corrector_steps=-1), ValueError, "corrector_steps"),
    "a zero snr": _raises(lambda: dl.pc_sample(RING.denoiser(VP), (4, 2), steps=5, snr=0), ValueError, "snr"),
    "a negative Langevin step": _raises(lambda: dl.langevin_dynamics(RING.score, (4, 2), step_size=-1.0, steps=5), ValueError, "step_size"),
    "a NaN Langevin step": _raises(lambda: dl.langevin_dynamics(RING.score, (4, 2), step_size=float("nan"), steps=5), ValueError, "step_size"),
    "Langevin levels not decreasing": _raises(lambda: dl.annealed_langevin_dynamics(RING.denoiser(dl.NoiseLevels()), (4, 2), times=[1.0, 2.0], step_size=0.1, steps_each=2), ValueError, "decreasing"),
    "negative fixed-point iterations": _raises(lambda: dl.ddim_invert(D, X, fixed_point_iters=-1), ValueError, "fixed_point_iters"),
    "resamplings of zero": _raises(lambda: dl.inpaint_sample(D, X, torch.tensor([True, False]), resamplings=0), ValueError, "resamplings"),
    "a mask that does not broadcast": _raises(lambda: dl.inpaint_sample(D, X, torch.tensor([True, False, True])), ValueError, "mask"),
    "a mask of 0.5": _raises(lambda: dl.inpaint_sample(D, X, torch.tensor([0.5, 1.0])), ValueError, "mask"),
    "SDEdit beyond T": _raises(lambda: dl.sdedit_sample(D, X, 101), ValueError, "101"),
    "an inpainting start beyond T": _raises(lambda: dl.inpaint_sample(D, X, torch.tensor([True, False]), t_start=101), ValueError, "101"),
    "a translation target beyond the classes": _raises(lambda: dl.ddib_translate(D, X, 0, 9), ValueError, "target", "0..7"),
    "a translation with an unconditional denoiser": _raises(lambda: dl.ddib_translate(dl.Denoiser(NET, S), X, 0, 1), ValueError, "class-conditional"),
    "a downsampling factor that does not divide the image": _raises(lambda: dl.box_downsample(torch.zeros(1, 1, 7, 7), 2), ValueError, "divisible"),
    "a factor of zero": _raises(lambda: dl.nearest_upsample(IMAGES, 0), ValueError, "factor"),
    # The denoiser.
    "an unknown parameterization": _raises(lambda: dl.Denoiser(NET, S, predicts="noise"), ValueError, "eps", "velocity"),
    "a velocity net on a schedule": _raises(lambda: dl.Denoiser(NET, S, predicts="velocity"), ValueError, "continuous-time"),
    "a schedule name instead of a process": _raises(lambda: dl.Denoiser(NET, "cosine"), TypeError, "process"),
    "NaN guidance": _raises(lambda: dl.Denoiser(COND_NET, S, labels=0, guidance=float("nan")), ValueError, "guidance"),
    "negative guidance": _raises(lambda: dl.Denoiser(COND_NET, S, labels=0, guidance=-1.0), ValueError, "guidance"),
    "labels for an unconditional net": _raises(lambda: dl.Denoiser(NET, S, labels=1), ValueError, "class-conditional"),
    "a label out of range": _raises(lambda: dl.Denoiser(COND_NET, S, labels=7).eps(X, 10), ValueError, "labels", "0..2"),
    "a negative label": _raises(lambda: dl.Denoiser(COND_NET, S, labels=-1).eps(X, 10), ValueError, "labels"),
    "a clip of zero": _raises(lambda: dl.Denoiser(NET, S, clip=0.0), ValueError, "clip"),
    "a clip pair in the wrong order": _raises(lambda: dl.Denoiser(NET, S, clip=(1.0, -1.0)), ValueError, "low < high"),
    "a zero time scale": _raises(lambda: dl.Denoiser(NET, VP, time_scale=0), ValueError, "time_scale"),
    "a net returning the wrong shape": _raises(lambda: dl.Denoiser(lambda x, t: x[:, :1], S).eps(X, 10), ValueError, "shaped like x"),
    # Networks.
    "a UNet label 11": _raises(lambda: UNET(IMAGES, torch.full((2,), 5), torch.full((2,), 11)), ValueError, "y", "0..9"),
    "a UNet label -1": _raises(lambda: UNET(IMAGES, torch.full((2,), 5), torch.full((2,), -1)), ValueError, "y"),
    "a time tensor of shape (B, 1)": _raises(lambda: dl.sinusoidal_embedding(torch.zeros(4, 1), 8), ValueError, "(B,)"),
    "an odd embedding size": _raises(lambda: dl.sinusoidal_embedding(torch.zeros(4), 7), ValueError, "even"),
    "a TimeMLP given images": _raises(lambda: NET(IMAGES, torch.zeros(2)), ValueError, "(B, 2)"),
    "a TimeMLP given integer data": _raises(lambda: NET(torch.ones(2, 2, dtype=torch.long), torch.zeros(2)), TypeError, "float"),
    "labels for an unconditional TimeMLP": _raises(lambda: NET(X, T8, T8), ValueError, "unconditional"),
    "num_classes of zero": _raises(lambda: dl.TimeMLP(num_classes=0), ValueError, "num_classes"),
    "a noisy classifier with one class": _raises(lambda: dl.NoisyClassifier(num_classes=1), ValueError, "num_classes"),
    "a LeNet for 10x10 images": _raises(lambda: dl.LeNet(image_size=10), ValueError, "divisible by 4"),
    # Schedules and processes.
    "T of zero": _raises(lambda: dl.cosine_schedule(0), ValueError, "T"),
    "T as a float": _raises(lambda: dl.linear_schedule(10.5), TypeError, "T"),
    "an unknown schedule": _raises(lambda: dl.make_schedule("cosin"), ValueError, "linear", "cosine", "sigmoid"),
    "beta outside (0, 1)": _raises(lambda: dl.from_betas([0.1, 1.2]), ValueError, "(0, 1)"),
    "respace to zero steps": _raises(lambda: dl.respace(S, 0), ValueError, "steps"),
    "a numpy step count to respace is fine": (lambda: dl.respace(S, np.int64(10)), None, ()),
    "an unknown spacing": _raises(lambda: dl.sampling_steps(S, 10, "log"), ValueError, "uniform", "quadratic"),
    "a VP SDE with beta_min > beta_max": _raises(lambda: dl.VPSDE(20.0, 0.1), ValueError, "beta_max"),
    "a VE SDE with NaN sigma": _raises(lambda: dl.VESDE(float("nan"), 10.0), ValueError, "sigma_min"),
    "noise levels with sigma_min <= 0": _raises(lambda: dl.NoiseLevels(0.0, 1.0), ValueError, "sigma_min"),
    "geometric sigmas with zero levels": _raises(lambda: dl.geometric_sigmas(10.0, 0.01, 0), ValueError, "n_levels"),
    "a grid of zero steps": _raises(lambda: VP.time_grid(0), ValueError, "steps"),
    # Metrics.
    "energy distance of an empty sample": _raises(lambda: dl.energy_distance(torch.zeros(0, 2), X), ValueError, "x", "n >= 1"),
    "energy distance of 1-D samples": _raises(lambda: dl.energy_distance(torch.zeros(4), X), ValueError, "(n, D)"),
    "energy distance across dimensions": _raises(lambda: dl.energy_distance(torch.zeros(4, 3), X), ValueError, "dimension"),
    "an energy floor of size zero": _raises(lambda: dl.energy_distance_floor(lambda n, s: dl.swiss_roll(n, seed=s), 0), ValueError, "n"),
    "the exact energy distance of one sample": _raises(lambda: dl.energy_distance_to_mixture(X[:1], RING), ValueError, "2 samples"),
    "pairwise distance of one point": _raises(lambda: dl.mean_pairwise_distance(X[:1]), ValueError, "n >= 2"),
    "an FLD of one image": _raises(lambda: dl.frechet_distance_features(torch.zeros(1, 4), torch.zeros(5, 4)), ValueError, "N >= 2"),
    "PSNR of different shapes": _raises(lambda: dl.psnr(IMAGES, torch.zeros(2, 1, 4, 4)), ValueError, "shape"),
    "an empty masked region": _raises(lambda: dl.masked_mse(IMAGES, IMAGES, torch.zeros(1, 8, 8, dtype=torch.bool)), ValueError, "empty"),
    "bits per dimension of zero dimensions": _raises(lambda: dl.bits_per_dim(torch.ones(2), 0), ValueError, "dims"),
    "an unknown image sampler": _raises(lambda: dl.sample_images(D, 4, sampler="euler"), ValueError, "ddpm", "dpm++2m"),
    # Data sets.
    "a swiss roll of zero points": _raises(lambda: dl.swiss_roll(0), ValueError, "n"),
    "moons of -5 points": _raises(lambda: dl.moons(-5), ValueError, "n"),
    "a mixture whose weights do not sum to 1": _raises(lambda: dl.GaussianMixture(torch.tensor([0.5, 0.6]), torch.zeros(2, 2), torch.eye(2).expand(2, 2, 2)), ValueError, "weights"),
    "a mixture component out of range": _raises(lambda: RING.component(8), ValueError, "0..7"),
    "a mixture score at scale = std = 0": _raises(lambda: RING.score(X, 0.0, 0.0), ValueError, "scale", "std"),
    "an unknown data set": _raises(lambda: dl.load_images("cifar100"), ValueError, "digits8", "mnist"),
    "an unknown digit": _raises(lambda: dl.digits_8x8(digit=10), ValueError, "digit"),
    "MNIST from a folder without its files": _raises(lambda: dl.load_images("mnist", "/nonexistent"), FileNotFoundError, "mnist", "download=True"),
    # Training.
    "training on NaN data": _raises(lambda: dl.train_diffusion(dl.Denoiser(dl.TimeMLP(), S), torch.full((16, 2), float("nan")), steps=5, progress=False), ValueError, "data", "NaN"),
    "training for zero steps": _raises(lambda: dl.train_diffusion(dl.Denoiser(dl.TimeMLP(), S), X, steps=0, progress=False), ValueError, "steps"),
    "a LeNet trained for zero steps": _raises(lambda: dl.train_lenet(dl.LeNet(image_size=8), IMAGES, torch.zeros(2, dtype=torch.long), steps=0, progress=False), ValueError, "steps"),
    "a batch of zero": _raises(lambda: dl.train_diffusion(dl.Denoiser(dl.TimeMLP(), S), X, steps=2, batch_size=0, progress=False), ValueError, "batch_size"),
    "a negative learning rate": _raises(lambda: dl.fit(dl.TimeMLP(), lambda g: torch.zeros(2, requires_grad=True), steps=1, lr=-1.0), ValueError, "lr"),
    "label dropout of 1": _raises(lambda: dl.train_diffusion(dl.Denoiser(dl.TimeMLP(num_classes=2), S), X, labels=torch.zeros(8, dtype=torch.long), label_dropout=1.0, steps=1, progress=False), ValueError, "label_dropout"),
    "label dropout without labels": _raises(lambda: dl.train_diffusion(dl.Denoiser(dl.TimeMLP(num_classes=2), S), X, label_dropout=0.1, steps=1, progress=False), ValueError, "labels"),
    "labels of the wrong length": _raises(lambda: dl.train_diffusion(dl.Denoiser(dl.TimeMLP(num_classes=2), S), X, labels=torch.zeros(3, dtype=torch.long), steps=1, progress=False), ValueError, "labels", "(8,)"),
    "an EMA decay of 1": _raises(lambda: dl.EMA(NET, 1.0), ValueError, "decay"),
    "an image config with negative grad clip": _raises(lambda: dl.ImageTrainConfig(grad_clip=-1).check(), ValueError, "grad_clip"),
    # Checkpoints and devices.
    "an unknown checkpoint": _raises(lambda: dl.pretrained.load("digits9-unet"), ValueError, "digits8-unet"),
    "the device 'gpu'": _raises(lambda: dl.pretrained.load("digits8-classifier", device="gpu"), ValueError, "cpu", "cuda"),
    # Others.
    "slerp of different shapes": _raises(lambda: dl.slerp(X, X[:4], 0.5), ValueError, "same shape"),
    "a threshold percentile of 0": _raises(lambda: dl.dynamic_threshold(X, percentile=0.0), ValueError, "percentile"),
    "a negative threshold bound": _raises(lambda: dl.static_threshold(X, bound=-1.0), ValueError, "bound"),
    "an ascii image with ragged rows": _raises(lambda: dl.ascii_image(["##", "#"]), ValueError, "equal length"),
    "a RePaint schedule of zero steps": _raises(lambda: dl.repaint_schedule(0), ValueError, "steps"),
    "a distillation grid of zero steps": _raises(lambda: dl.distillation_grid(S, 0), ValueError, "student_steps"),
    "an unknown divergence method": _raises(lambda: dl.ode_log_likelihood(RING.denoiser(VP), X, divergence_method="exactly"), ValueError, "hutchinson"),
    "likelihood on a schedule": _raises(lambda: dl.ode_log_likelihood(D, X), ValueError, "continuous-time"),
    "an unknown trace": _raises(lambda: dl.explicit_score_matching_loss(lambda x: x, X, trace="approx"), ValueError, "exact", "hutchinson"),
    "a non-positive DSM sigma": _raises(lambda: dl.denoising_score_matching_loss(lambda x, s: x, X, 0.0), ValueError, "sigma"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_misuse_gets_a_clear_error(name, one_thread):
    call, error, words = CASES[name]
    if error is None:  # a case that must simply work
        call()
        return
    with pytest.raises((ValueError, TypeError, FileNotFoundError)) as info:
        call()
    assert isinstance(info.value, error), f"{name}: raised {type(info.value).__name__}: {info.value}"
    message = str(info.value)
    for word in words:
        assert word in message, f"{name}: the message {message!r} does not mention {word!r}"
