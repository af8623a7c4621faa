"""Samplers: plain functions ``(model, schedule or sde, x_T or shape, *, generator, ...) -> x_0``."""

from ._steps import SPACINGS, sampling_steps
from .ddim import ddim_invert, ddim_sample, ddim_sigma, slerp
from .ddpm import REVERSE_VARIANCES, ddpm_sample
from .dpm_solver import dpm_solver_2m_sample
from .heun import heun_sample, karras_sigma
from .thresholding import ThresholdedEpsModel, dynamic_threshold, static_threshold
from .impute import impute_sample
from .ode import euler_ode_sample, heun_ode_sample, rk45_ode_sample
from .sde import euler_maruyama_sample, pc_sample

__all__ = [
    "REVERSE_VARIANCES",
    "SPACINGS",
    "ThresholdedEpsModel",
    "ddim_invert",
    "ddim_sample",
    "ddim_sigma",
    "ddpm_sample",
    "dpm_solver_2m_sample",
    "dynamic_threshold",
    "euler_maruyama_sample",
    "euler_ode_sample",
    "heun_ode_sample",
    "heun_sample",
    "impute_sample",
    "karras_sigma",
    "pc_sample",
    "rk45_ode_sample",
    "sampling_steps",
    "slerp",
    "static_threshold",
]
