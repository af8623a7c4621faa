"""Samplers: plain functions ``(model, schedule or sde, x_T or shape, *, generator, ...) -> x_0``."""

from .ddpm import REVERSE_VARIANCES, ddpm_sample
from .impute import impute_sample
from .ode import euler_ode_sample, heun_ode_sample, rk45_ode_sample
from .sde import euler_maruyama_sample, pc_sample

__all__ = [
    "REVERSE_VARIANCES",
    "ddpm_sample",
    "euler_maruyama_sample",
    "euler_ode_sample",
    "heun_ode_sample",
    "impute_sample",
    "pc_sample",
    "rk45_ode_sample",
]
