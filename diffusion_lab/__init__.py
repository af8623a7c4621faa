"""diffusion_lab: the small, tested package behind the Diffusion Lab book.

Conventions that every module follows (see the book's notation page):
discrete steps t = 1..T with arrays indexed so that ``alpha_bar[t]`` is ᾱ_t; models map
``(x, t) -> tensor shaped like x``; losses return per-example values ``(B,)``; randomness is
passed in through ``generator=`` or ``noise=``.
"""

from .broadcast import expand_like
from .compute import cpu_or_gpu, device, on_gpu, seed_everything
from .data2d import GaussianMixture, moons, swiss_roll
from .ema import EMA
from .forward import q_mean_std, q_posterior, q_sample, q_step_sample, randn_like
from .image_data import digits_8x8
from .langevin import annealed_langevin_dynamics, geometric_sigmas, langevin_dynamics
from .likelihood import divergence, ode_log_likelihood
from .losses import ddpm_loss
from .metrics import energy_distance, energy_distance_floor, energy_ratio, identification_accuracy
from .mlp import TimeMLP, sinusoidal_embedding
from .ncsn import NoiseConditionalScoreNet
from .parameterization import PARAMETERIZATIONS, EpsModel
from .samplers import (
    ddpm_sample,
    euler_maruyama_sample,
    euler_ode_sample,
    heun_ode_sample,
    impute_sample,
    pc_sample,
    rk45_ode_sample,
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
from .score_matching import (
    denoising_score_matching_loss,
    explicit_score_matching_loss,
    sliced_score_matching_loss,
)
from .score_training import train_score_model
from .sde import SDE, SubVPSDE, VESDE, VPSDE, forward_sde_simulate, time_grid
from .training import TrainResult, train

__version__ = "0.1.0"

__all__ = [
    "EMA",
    "PARAMETERIZATIONS",
    "SCHEDULES",
    "EpsModel",
    "GaussianMixture",
    "NoiseSchedule",
    "TimeMLP",
    "TrainResult",
    "cosine_schedule",
    "cpu_or_gpu",
    "ddpm_loss",
    "ddpm_sample",
    "device",
    "digits_8x8",
    "energy_distance",
    "energy_distance_floor",
    "energy_ratio",
    "expand_like",
    "identification_accuracy",
    "from_betas",
    "linear_schedule",
    "make_schedule",
    "moons",
    "on_gpu",
    "q_mean_std",
    "q_posterior",
    "q_sample",
    "q_step_sample",
    "randn_like",
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
    "swiss_roll",
    "train",
]
