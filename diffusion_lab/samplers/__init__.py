"""Samplers: plain functions ``(model, schedule, x_T or shape, *, generator, ...) -> x_0``."""

from .ddpm import REVERSE_VARIANCES, ddpm_sample

__all__ = ["REVERSE_VARIANCES", "ddpm_sample"]
