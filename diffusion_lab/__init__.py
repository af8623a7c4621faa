"""diffusion_lab: the small, tested package behind the Diffusion Lab book.

Conventions that every module follows (see the book's notation page):

* a **noise process** noises data as x_t = s(t) x_0 + σ(t) ε: a discrete schedule (steps t = 1..T,
  arrays indexed so that ``alpha_bar[t]`` is ᾱ_t), an SDE, a flow path or NCSN's noise levels;
  continuous time runs from data (t = 0) to noise (t = 1);
* a **network** maps ``(x, t[, y]) -> tensor shaped like x``; a :class:`Denoiser` wraps it once with
  its process, what it predicts, labels, guidance and an x̂₀ clip, and every sampler takes that
  denoiser and ``steps=``;
* losses return per-example values ``(B,)``; randomness is passed in through ``generator=`` or
  ``noise=``.
"""

from . import homework, pretrained
from .autoencoder import Autoencoder, autoencoder_loss, fit_latent_scale, train_autoencoder
from .broadcast import expand_like
from .compute import cpu_or_gpu, device, on_gpu, seed_everything
from .data2d import GaussianMixture, moons, swiss_roll
from .denoiser import PARAMETERIZATIONS, Denoiser, Prediction
from .consistency import (
    ConsistencyNet,
    consistency_coefficients,
    consistency_distillation_loss,
    consistency_grid,
    consistency_model,
    consistency_sample,
    consistency_times,
    consistency_training_loss,
    train_consistency,
)
from .distillation import distill, distillation_grid, distillation_target, progressive_distillation_loss
from .dit import DiT, dit_config
from .elbo import bits_per_dim, direct_bound, elbo_terms, gaussian_kl, prior_term, stratified_bound
from .evaluation import (
    IMAGE_SAMPLERS,
    fld_report,
    guidance_tradeoff,
    guided_accuracy,
    nfe,
    parameter_count,
    sample_images,
    seconds_per_sample,
)
from .fitting import EMA, TrainResult, fit, minibatch
from .flow_matching import reflow_pairs, straightness
from .forward import q_mean_std, q_posterior, q_sample, q_step_sample, randn_like
from .guidance import ClassifierGuidance
from .image_data import DataFileError, digits_8x8, load_images, read_cifar10, read_idx, read_mnist
from .image_metrics import fld, fld_floor, frechet_distance, frechet_distance_features, inception_fid, masked_mse, psnr
from .image_training import ImageTrainConfig, train_images
from .lenet import LeNet, accuracy, predict, train_lenet
from .likelihood import divergence, ode_log_likelihood
from .losses import DSM_WEIGHTINGS, classifier_loss, continuous_dsm_loss, diffusion_loss, hybrid_loss, vlb_loss
from .metrics import (
    energy_distance,
    energy_distance_floor,
    energy_distance_to_mixture,
    energy_ratio,
    identification_accuracy,
    mean_pairwise_distance,
    mixture_mean_distance,
    sobol_normal,
)
from .mlp import NoiseConditionalScoreNet, NoisyClassifier, TimeMLP, sinusoidal_embedding
from .observations import ascii_image, bicubic_upsample, box_downsample, harmonic_fill, low_pass, nearest_upsample
from .processes import GaussianPath, NoiseLevels, geometric_sigmas, linear_path, vp_path
from .samplers import (
    annealed_langevin_dynamics,
    ddim_invert,
    ddim_noise_std,
    ddim_sample,
    ddim_step,
    ddpm_sample,
    ddpm_step,
    dpm_solver_2m_sample,
    euler_maruyama_sample,
    euler_sample,
    heun_sample,
    ilvr_sample,
    inpaint_sample,
    langevin_dynamics,
    pc_sample,
    repaint_schedule,
    replacement_sample,
    reverse_mean_variance,
    rk45_sample,
    sdedit_sample,
    slerp,
)
from .schedules import (
    SCHEDULES,
    NoiseSchedule,
    cosine_schedule,
    from_betas,
    linear_schedule,
    make_schedule,
    sigmoid_schedule,
)
from .score_matching import denoising_score_matching_loss, explicit_score_matching_loss, sliced_score_matching_loss
from .sde import SDE, SubVPSDE, VESDE, VPSDE, forward_sde_simulate
from .spacing import SPACINGS, respace, sampling_steps
from .thresholding import dynamic_threshold, static_threshold
from .time_sampler import ImportanceTimeSampler
from .training import OBJECTIVES, train_classifier, train_diffusion, train_score
from .translation import TranslationCycle, ddib_cycle, ddib_translate
from .unet import UNet, summarize, unet_config

__version__ = "0.2.0"

__all__ = [
    "Autoencoder",
    "ClassifierGuidance",
    "ConsistencyNet",
    "DSM_WEIGHTINGS",
    "DataFileError",
    "Denoiser",
    "DiT",
    "EMA",
    "GaussianMixture",
    "GaussianPath",
    "IMAGE_SAMPLERS",
    "ImageTrainConfig",
    "ImportanceTimeSampler",
    "LeNet",
    "NoiseConditionalScoreNet",
    "NoiseLevels",
    "NoiseSchedule",
    "NoisyClassifier",
    "OBJECTIVES",
    "PARAMETERIZATIONS",
    "Prediction",
    "SCHEDULES",
    "SDE",
    "SPACINGS",
    "SubVPSDE",
    "TimeMLP",
    "TrainResult",
    "TranslationCycle",
    "UNet",
    "VESDE",
    "VPSDE",
    "accuracy",
    "annealed_langevin_dynamics",
    "ascii_image",
    "autoencoder_loss",
    "bicubic_upsample",
    "bits_per_dim",
    "box_downsample",
    "classifier_loss",
    "consistency_coefficients",
    "consistency_distillation_loss",
    "consistency_grid",
    "consistency_model",
    "consistency_sample",
    "consistency_times",
    "consistency_training_loss",
    "continuous_dsm_loss",
    "cosine_schedule",
    "cpu_or_gpu",
    "ddib_cycle",
    "ddib_translate",
    "ddim_invert",
    "ddim_noise_std",
    "ddim_sample",
    "ddim_step",
    "ddpm_sample",
    "ddpm_step",
    "denoising_score_matching_loss",
    "device",
    "diffusion_loss",
    "digits_8x8",
    "direct_bound",
    "distill",
    "distillation_grid",
    "distillation_target",
    "dit_config",
    "divergence",
    "dpm_solver_2m_sample",
    "dynamic_threshold",
    "elbo_terms",
    "energy_distance",
    "energy_distance_floor",
    "energy_distance_to_mixture",
    "energy_ratio",
    "euler_maruyama_sample",
    "euler_sample",
    "expand_like",
    "explicit_score_matching_loss",
    "fit",
    "fit_latent_scale",
    "fld",
    "fld_floor",
    "fld_report",
    "forward_sde_simulate",
    "frechet_distance",
    "frechet_distance_features",
    "from_betas",
    "gaussian_kl",
    "geometric_sigmas",
    "guidance_tradeoff",
    "guided_accuracy",
    "harmonic_fill",
    "heun_sample",
    "homework",
    "hybrid_loss",
    "identification_accuracy",
    "ilvr_sample",
    "inception_fid",
    "inpaint_sample",
    "langevin_dynamics",
    "linear_path",
    "linear_schedule",
    "load_images",
    "low_pass",
    "make_schedule",
    "masked_mse",
    "mean_pairwise_distance",
    "minibatch",
    "mixture_mean_distance",
    "moons",
    "nearest_upsample",
    "nfe",
    "ode_log_likelihood",
    "on_gpu",
    "parameter_count",
    "pc_sample",
    "predict",
    "pretrained",
    "prior_term",
    "progressive_distillation_loss",
    "psnr",
    "q_mean_std",
    "q_posterior",
    "q_sample",
    "q_step_sample",
    "randn_like",
    "read_cifar10",
    "read_idx",
    "read_mnist",
    "reflow_pairs",
    "repaint_schedule",
    "replacement_sample",
    "respace",
    "reverse_mean_variance",
    "rk45_sample",
    "sample_images",
    "sampling_steps",
    "sdedit_sample",
    "seconds_per_sample",
    "seed_everything",
    "sigmoid_schedule",
    "sinusoidal_embedding",
    "slerp",
    "sliced_score_matching_loss",
    "sobol_normal",
    "static_threshold",
    "straightness",
    "stratified_bound",
    "summarize",
    "swiss_roll",
    "train_autoencoder",
    "train_classifier",
    "train_consistency",
    "train_diffusion",
    "train_images",
    "train_lenet",
    "train_score",
    "unet_config",
    "vlb_loss",
    "vp_path",
]
