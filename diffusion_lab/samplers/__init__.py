"""Samplers: plain functions ``(model, schedule, x_T or shape, *, generator, ...) -> x_0``."""

from ._steps import SPACINGS, sampling_steps
from .ddim import ddim_invert, ddim_sample, ddim_sigma, slerp
from .ddpm import REVERSE_VARIANCES, ddpm_sample
from .dpm_solver import dpm_solver_2m_sample
from .heun import heun_sample, karras_sigma
from .thresholding import ThresholdedEpsModel, dynamic_threshold, static_threshold

__all__ = [
    "SPACINGS",
    "REVERSE_VARIANCES",
    "ThresholdedEpsModel",
    "ddim_invert",
    "ddim_sample",
    "ddim_sigma",
    "ddpm_sample",
    "dpm_solver_2m_sample",
    "dynamic_threshold",
    "heun_sample",
    "karras_sigma",
    "sampling_steps",
    "slerp",
    "static_threshold",
]
