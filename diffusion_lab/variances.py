"""The variance ω² of a reverse step p_θ(x_{t'} | x_t) = N(μ_θ, ω² I): fixed, interpolated or learned.

Ho et al. (2020, Sec. 3.2) fix ω² to one of two values that bracket the truth for most data:
β_{t|t'}, the forward step's variance (optimal when x_0 ~ N(0, I)), and β̃_{t,t'}, the forward
posterior's (optimal when x_0 is a single point). Nichol & Dhariwal (2021, Eq. 15) let the network
choose between them, per step and per dimension, by an interpolation in log space:

    ω² = exp(ν log β_{t|t'} + (1 − ν) log β̃_{t,t'}),     ν = 0: β̃,  ν = 1: β.

The paper calls the mixing weight v; the book writes ν, because v is the v-prediction target. A
network that learns ν returns twice the channels of x (``net.learns_variance = True``); the
:class:`~diffusion_lab.Denoiser` reads ν = (r + 1)/2 from the second half r, as Nichol & Dhariwal's
code does, without clamping it to [0, 1] (their Sec. 3.1: it stays inside in practice).

Every sampler and bound that takes ``variance=`` accepts the same four kinds of value:
``"beta"``, ``"beta_tilde"``, a number ν in [0, 1] (a fixed interpolation), or ``"learned"``.
β̃ is 0 on the step that ends at the data (t' = 0); there it is replaced by β̃ of the schedule's
step 2 → 1 (the clipping of Ho et al.'s code), so that a decoder has a width and log β̃ is finite.
"""

from __future__ import annotations

from typing import Any

import torch

from .broadcast import expand_like
from .forward import posterior_coefficients, transition
from .validation import check_float

#: The named reverse variances; a number ν in [0, 1] is accepted as well.
REVERSE_VARIANCES = ("beta", "beta_tilde", "learned")


def check_variance(variance: object) -> str | float:
    """``variance`` if it names a reverse variance or is an interpolation weight ν in [0, 1]; else a clear error."""
    if isinstance(variance, str):
        if variance not in REVERSE_VARIANCES:
            raise ValueError(f"unknown reverse variance {variance!r}; choose one of: {', '.join(REVERSE_VARIANCES)}, "
                             f"or a number nu in [0, 1] (0: beta_tilde, 1: beta)")
        return variance
    if isinstance(variance, (int, float)) and not isinstance(variance, bool):
        return check_float("variance (the interpolation weight nu; 0 is beta_tilde, 1 is beta)", variance, 0.0, 1.0)
    raise TypeError(f"variance must be one of {', '.join(REVERSE_VARIANCES)} or a number nu in [0, 1], "
                    f"got {variance!r}")


def variance_bounds(process: Any, t: torch.Tensor, t_next: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(β_{t|t'}, β̃_{t,t'}) of a step t → t', float64 ``(B,)``, with β̃ clipped on the step to the data."""
    beta = transition(process, t, t_next)[1]
    beta_tilde = posterior_coefficients(process, t, t_next)[2]
    if hasattr(process, "beta_tilde") and process.T >= 2:
        floor = torch.as_tensor(float(process.beta_tilde[2]), dtype=beta_tilde.dtype, device=beta_tilde.device)
    else:  # a continuous process has no step 2: keep log β̃ finite
        floor = torch.as_tensor(torch.finfo(torch.float32).tiny, dtype=beta_tilde.dtype, device=beta_tilde.device)
    return beta, torch.where(beta_tilde > 0, beta_tilde, floor)


def interpolated_variance(process: Any, t: torch.Tensor, t_next: torch.Tensor, nu: float | torch.Tensor,
                          like: torch.Tensor) -> torch.Tensor:
    """ω² = exp(ν log β + (1 − ν) log β̃) (Nichol & Dhariwal 2021, Eq. 15), broadcast against ``like``.

    ``nu`` is a number (one ν for every example) or a tensor shaped like ``like`` (the network's ν).
    """
    beta, beta_tilde = (expand_like(v, like) for v in variance_bounds(process, t, t_next))
    log_beta, log_tilde = beta.log(), beta_tilde.log()
    return torch.exp(nu * log_beta + (1.0 - nu) * log_tilde)


def step_variance(process: Any, t: torch.Tensor, t_next: torch.Tensor, variance: str | float,
                  like: torch.Tensor, nu: torch.Tensor | None = None) -> torch.Tensor:
    """ω² of the step t → t' for ``variance`` (module docstring), broadcast against ``like`` in its dtype.

    ``"learned"`` needs the network's ``nu`` (a :class:`~diffusion_lab.denoiser.Prediction`'s ``nu``).
    """
    variance = check_variance(variance)
    if variance == "learned":
        if nu is None:
            raise ValueError("variance='learned' needs a network that learns its variance "
                             "(net.learns_variance = True, e.g. UNet(..., learns_variance=True))")
        return interpolated_variance(process, t, t_next, nu.double(), like).to(like.dtype)
    if isinstance(variance, str):  # the two ends exactly, without a round trip through log and exp
        beta, beta_tilde = variance_bounds(process, t, t_next)
        return expand_like(beta if variance == "beta" else beta_tilde, like).to(like.dtype)
    return interpolated_variance(process, t, t_next, variance, like).to(like.dtype)


def gaussian_reverse_variance(process: Any, t: torch.Tensor, t_next: torch.Tensor,
                              data_variance: float) -> torch.Tensor:
    """The exact variance of q(x_{t'} | x_t) when x_0 ~ N(0, c² I), float64 ``(B,)``.

    With v_t = s_t² c² + σ_t² the variance of x_t, the pair (x_{t'}, x_t) is jointly Gaussian and
    Var[x_{t'} | x_t] = v_{t'} − s_{t|t'}² v_{t'}² / v_t = v_{t'} β_{t|t'} / v_t. It is the ω² that
    minimises L_{t'} when μ_θ is exact (chapter 3); c = 0 gives β̃, c = 1 gives β.
    """
    c2 = check_float("data_variance", data_variance, 0.0)
    s, sigma = process.scale_std(t)
    s_next, sigma_next = process.scale_std(t_next)
    v, v_next = s**2 * c2 + sigma**2, s_next**2 * c2 + sigma_next**2
    return v_next * transition(process, t, t_next)[1] / v


def nu_of_variance(process: Any, t: torch.Tensor, t_next: torch.Tensor, variance: torch.Tensor) -> torch.Tensor:
    """The interpolation weight ν for which Eq. 15 gives ``variance``: (log ω² − log β̃) / (log β − log β̃)."""
    beta, beta_tilde = variance_bounds(process, t, t_next)
    return (variance.log() - beta_tilde.log()) / (beta.log() - beta_tilde.log())


def log_ratio(process: Any, t: torch.Tensor, t_next: torch.Tensor) -> torch.Tensor:
    """log(β / β̃) of a step, in nats: how far apart the two fixed choices are (large only at small t)."""
    beta, beta_tilde = variance_bounds(process, t, t_next)
    return beta.log() - beta_tilde.log()

