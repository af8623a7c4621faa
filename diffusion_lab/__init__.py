"""diffusion_lab: the small, tested package behind the Diffusion Lab book.

Conventions that every module follows (see the book's notation page):
discrete steps t = 1..T with arrays indexed so that ``alpha_bar[t]`` is ᾱ_t; models map
``(x, t) -> tensor shaped like x``; losses return per-example values ``(B,)``; randomness is
passed in through ``generator=`` or ``noise=``.
"""

from .broadcast import expand_like
from .classifier import NoisyClassifier, classifier_loss, train_classifier
from .compute import cpu_or_gpu, device, on_gpu, seed_everything
from .data2d import GaussianMixture, moons, swiss_roll
from .ema import EMA
from .forward import q_mean_std, q_posterior, q_sample, q_step_sample, randn_like
from .guidance import ClassifierFreeGuidance, ClassifierGuidance, guidance_tradeoff, mean_pairwise_distance
from .image_data import digits_8x8
from . import pretrained
from .cfg import GuidedEps
from .lenet import LeNet, train_lenet
from .image_data import DataFileError, digits_8x8, load_images, read_cifar10, read_idx, read_mnist
from .image_training import ImageTrainConfig, train_images
from .langevin import annealed_langevin_dynamics, geometric_sigmas, langevin_dynamics
from .likelihood import divergence, ode_log_likelihood
from .losses import ddpm_loss
from .metrics import energy_distance, energy_distance_floor, energy_ratio, identification_accuracy
from .mlp import TimeMLP, sinusoidal_embedding
from .ncsn import NoiseConditionalScoreNet
from .parameterization import PARAMETERIZATIONS, EpsModel
from .samplers import (
    ThresholdedEpsModel,
    ddim_invert,
    ddim_sample,
    ddim_sigma,
    ddpm_sample,
    dpm_solver_2m_sample,
    dynamic_threshold,
    euler_maruyama_sample,
    euler_ode_sample,
    heun_ode_sample,
    heun_sample,
    impute_sample,
    karras_sigma,
    pc_sample,
    rk45_ode_sample,
    sampling_steps,
    slerp,
    static_threshold,
)
from .respacing import RespacedModel, respace
from .sample_quality import fld, fld_floor, frechet_distance, frechet_distance_features, inception_fid
from .schedules import (
    SCHEDULES,
    NoiseSchedule,
    cosine_schedule,
    from_betas,
    linear_schedule,
    make_schedule,
    sigmoid_schedule,
)
from .thresholding import ClippedEps
from .score_matching import (
    denoising_score_matching_loss,
    explicit_score_matching_loss,
    sliced_score_matching_loss,
)
from .score_training import train_score_model
from .sde import SDE, SubVPSDE, VESDE, VPSDE, forward_sde_simulate, time_grid
from .training import TrainResult, train
from .unet import UNet, summarize, unet_config

__version__ = "0.1.0"

__all__ = [
    "ClassifierFreeGuidance",
    "ClassifierGuidance",
    "EMA",
    "NoisyClassifier",
    "ClippedEps",
    "DataFileError",
    "GuidedEps",
    "ImageTrainConfig",
    "LeNet",
    "RespacedModel",
    "UNet",
    "fld",
    "fld_floor",
    "frechet_distance",
    "frechet_distance_features",
    "inception_fid",
    "load_images",
    "pretrained",
    "read_cifar10",
    "read_idx",
    "read_mnist",
    "respace",
    "summarize",
    "train_classifier",
    "train_images",
    "unet_config",
    "PARAMETERIZATIONS",
    "SCHEDULES",
    "EpsModel",
    "GaussianMixture",
    "NoiseSchedule",
    "ThresholdedEpsModel",
    "TimeMLP",
    "TrainResult",
    "classifier_loss",
    "cosine_schedule",
    "cpu_or_gpu",
    "ddim_invert",
    "ddim_sample",
    "ddim_sigma",
    "ddpm_loss",
    "ddpm_sample",
    "device",
    "digits_8x8",
    "dpm_solver_2m_sample",
    "dynamic_threshold",
    "energy_distance",
    "energy_distance_floor",
    "energy_ratio",
    "expand_like",
    "heun_sample",
    "guidance_tradeoff",
    "identification_accuracy",
    "from_betas",
    "karras_sigma",
    "linear_schedule",
    "make_schedule",
    "mean_pairwise_distance",
    "moons",
    "on_gpu",
    "q_mean_std",
    "q_posterior",
    "q_sample",
    "q_step_sample",
    "randn_like",
    "sampling_steps",
    "seed_everything",
    # Scores and SDEs (chapters 5 and 6).
    "SDE",
    "SubVPSDE",
    "VESDE",
    "VPSDE",
    "NoiseConditionalScoreNet",
    "annealed_langevin_dynamics",
    "denoising_score_matching_loss",
    "divergence",
    "euler_maruyama_sample",
    "euler_ode_sample",
    "explicit_score_matching_loss",
    "geometric_sigmas",
    "heun_ode_sample",
    "impute_sample",
    "langevin_dynamics",
    "ode_log_likelihood",
    "pc_sample",
    "rk45_ode_sample",
    "sliced_score_matching_loss",
    "forward_sde_simulate",
    "time_grid",
    "train_score_model",
    "sigmoid_schedule",
    "sinusoidal_embedding",
    "slerp",
    "static_threshold",
    "swiss_roll",
    "train",
    "train_lenet",
]

# DDIM and fast sampling (chapter 7): the energy distance to an isotropic mixture's exact law.
from .mixture_energy import energy_distance_to_mixture, mixture_mean_distance, sobol_normal  # noqa: E402

__all__ += ["energy_distance_to_mixture", "mixture_mean_distance", "sobol_normal"]

# Applications (chapter 10): inpainting, SDEdit, super-resolution.
from .inpainting import harmonic_fill, inpaint_sample, masked_mse, repaint_schedule, replacement_sample
from .sdedit import ascii_image, sdedit_sample
from .super_resolution import bicubic_upsample, box_downsample, ilvr_sample, low_pass, nearest_upsample, psnr

__all__ += [
    "ascii_image",
    "bicubic_upsample",
    "box_downsample",
    "harmonic_fill",
    "ilvr_sample",
    "inpaint_sample",
    "low_pass",
    "masked_mse",
    "nearest_upsample",
    "psnr",
    "repaint_schedule",
    "replacement_sample",
    "sdedit_sample",
]

# Beyond DDPM (latent diffusion, progressive distillation, flow matching).
from . import distillation, flow_matching
from .autoencoder import Autoencoder, autoencoder_loss, fit_latent_scale, train_autoencoder
from .distillation import distill, distillation_target, progressive_distillation_loss
from .fitting import fit
from .flow_matching import (
    ClippedVelocity,
    ContinuousTime,
    GaussianPath,
    flow_matching_loss,
    linear_path,
    mixture_velocity,
    reflow_pairs,
    straightness,
    train_flow_matching,
    velocity_from_score,
    vp_path,
)
from .latent import latent_sample, parameter_count, seconds_per_sample
from .samplers.flow import flow_euler_sample, flow_heun_sample

__all__ += [
    "Autoencoder",
    "ClippedVelocity",
    "ContinuousTime",
    "GaussianPath",
    "autoencoder_loss",
    "distill",
    "distillation",
    "distillation_target",
    "fit",
    "fit_latent_scale",
    "flow_euler_sample",
    "flow_heun_sample",
    "flow_matching",
    "flow_matching_loss",
    "latent_sample",
    "linear_path",
    "mixture_velocity",
    "parameter_count",
    "progressive_distillation_loss",
    "reflow_pairs",
    "seconds_per_sample",
    "straightness",
    "train_autoencoder",
    "train_flow_matching",
    "velocity_from_score",
    "vp_path",
]

# Homework: self-grading programming exercises, student versions and autograding (the "For instructors" page).
from . import homework  # noqa: E402

__all__ += ["homework"]
