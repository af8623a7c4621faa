"""Samplers, grouped by integrator; each takes a :class:`~diffusion_lab.Denoiser` and ``steps=``.

=====================  =================================================================
module                 samplers
=====================  =================================================================
``discrete``           DDPM (ancestral; fixed, interpolated or learned ω²), DDIM (η), DDIM inversion, slerp
``ode``                Euler, Heun, RK45 on the probability-flow ODE (flows, Karras' form)
``dpm_solver``         DPM-Solver++(2M)
``sde``                Euler–Maruyama and predictor–corrector on the reverse-time SDE
``langevin``           Langevin and annealed Langevin dynamics
``conditional``        replacement / RePaint, inpainting, ILVR, SDEdit
=====================  =================================================================
"""

from .conditional import ilvr_sample, inpaint_sample, repaint_schedule, replacement_sample, sdedit_sample
from ..variances import REVERSE_VARIANCES
from .discrete import (
    ddim_invert,
    ddim_noise_std,
    ddim_sample,
    ddim_step,
    ddpm_sample,
    ddpm_step,
    reverse_mean_variance,
    slerp,
)
from .dpm_solver import dpm_solver_2m_sample
from .langevin import annealed_langevin_dynamics, langevin_dynamics, langevin_step
from .ode import euler_sample, heun_sample, integrate, ode_nfe, rk45_sample
from .sde import euler_maruyama_sample, pc_sample, reverse_diffusion_step

__all__ = [
    "REVERSE_VARIANCES",
    "annealed_langevin_dynamics",
    "ddim_invert",
    "ddim_noise_std",
    "ddim_sample",
    "ddim_step",
    "ddpm_sample",
    "ddpm_step",
    "dpm_solver_2m_sample",
    "euler_maruyama_sample",
    "euler_sample",
    "heun_sample",
    "ilvr_sample",
    "inpaint_sample",
    "integrate",
    "langevin_dynamics",
    "langevin_step",
    "ode_nfe",
    "pc_sample",
    "repaint_schedule",
    "replacement_sample",
    "reverse_diffusion_step",
    "reverse_mean_variance",
    "rk45_sample",
    "sdedit_sample",
    "slerp",
]
