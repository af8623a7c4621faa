"""Noise processes: each answers one question, the signal scale s(t) and noise std σ(t) at time t.

Every model in the book noises data the same way,

    x_t = s(t) x_0 + σ(t) ε,   ε ~ N(0, I),

and differs only in its time axis and in s and σ. A :class:`~diffusion_lab.Denoiser` and every
sampler read nothing else from a process, so one sampler serves them all:

=====================================  ===============  ========================  =====================
process                                time t           s(t)                      σ(t)
=====================================  ===============  ========================  =====================
:class:`~diffusion_lab.NoiseSchedule`  steps 0..T       √ᾱ_t                      √(1 − ᾱ_t)
:class:`~diffusion_lab.VPSDE`          [0, 1]           exp(−½∫₀ᵗβ)               √(1 − s²)
:class:`~diffusion_lab.VESDE`          [0, 1]           1                         √(σ_VE(t)² − σ_min²)
:class:`GaussianPath` (flows)          [0, 1]           1 − t (linear)            t (linear)
:class:`NoiseLevels` (NCSN, EDM)       σ ∈ [0, ∞)       1                         t itself
=====================================  ===============  ========================  =====================

The methods every process has:

* ``check_time(t, x)``: t as a tensor of shape ``(B,)`` (long steps for a schedule, float64 times
  otherwise), validated against the process's range;
* ``scale_std(t)``: ``(s, σ)``, float64 tensors shaped like t;
* ``scale_std_derivative(t)``: ``(ṡ, σ̇)`` (continuous time only; a velocity needs them);
* ``time_grid(steps, start=...)``: the decreasing times a sampler visits, ``(steps + 1,)``;
* ``prior_std``: the std of the Gaussian that sampling starts from; ``discrete``: integer steps?

Continuous time runs from data (t = 0) to noise (t = 1) in the whole book, flow matching included.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .validation import check_float, check_int, check_tensor

Coefficient = Callable[[torch.Tensor], torch.Tensor]


class ContinuousProcess:
    """Shared methods of the processes with a continuous time axis [``t_low``, ``t_high``]."""

    discrete = False
    t_low, t_high = 0.0, 1.0
    t_end = 0.0  # where samplers stop by default (SDEs stop a little before 0)

    def scale_std(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def scale_std_derivative(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    @property
    def prior_std(self) -> float:
        """σ of the prior N(0, σ² I) that sampling starts from: the noise std at the end of time."""
        s, sigma = self.scale_std(torch.tensor([self.t_high], dtype=torch.float64))
        return float(torch.sqrt(s**2 + sigma**2))

    def prior_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log N(x; 0, σ_T² I) per example of the prior that sampling starts from: shape ``(B,)``, float64."""
        x = x.double().flatten(1)
        var = self.prior_std**2
        return -0.5 * (x.pow(2).sum(1) / var + x.shape[1] * math.log(2 * math.pi * var))

    def check_time(self, t: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Times as a float64 tensor of shape ``(B,)`` on x's device, inside [t_low, t_high]."""
        if isinstance(t, torch.Tensor):
            if t.is_complex() or t.dtype == torch.bool:
                raise TypeError(f"t must hold real times, got dtype {t.dtype}")
            t = t.to(device=x.device, dtype=torch.float64)
        else:
            t = torch.tensor(check_float("t", t), dtype=torch.float64, device=x.device)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        if t.shape != (x.shape[0],):
            raise ValueError(f"t must be a number or a tensor of shape ({x.shape[0]},) to match the batch, "
                             f"got shape {tuple(t.shape)}")
        if not bool(torch.isfinite(t).all()) or bool(((t < self.t_low) | (t > self.t_high)).any()):
            bad = t[~(torch.isfinite(t) & (t >= self.t_low) & (t <= self.t_high))][0].item()
            raise ValueError(f"t = {bad:g} is outside the time range [{self.t_low:g}, {self.t_high:g}] of {self!r}")
        return t

    def sample_time(self, n: int, generator: torch.Generator | None, device: torch.device | str) -> torch.Tensor:
        """n training times t ~ U(t_end, t_high), float64 ``(n,)`` (Song et al. 2021: t ~ U(ε, 1))."""
        u = torch.rand(n, generator=generator, device=device, dtype=torch.float64)
        return self.t_end + (self.t_high - self.t_end) * u

    def time_grid(self, steps: int, *, start: float | None = None, t_min: float | None = None) -> torch.Tensor:
        """``steps + 1`` evenly spaced times from ``start`` (default: the noise end) down to ``t_min``.

        ``t_min`` defaults to ``t_end``: the data end (0), or a small positive time for SDEs.
        """
        steps = check_int("steps", steps, 1)
        start = self.t_high if start is None else check_float("start", start, self.t_low, self.t_high)
        t_min = self.t_end if t_min is None else t_min
        t_min = check_float("t_min", t_min, self.t_low, start, high_open=True)
        return torch.linspace(start, t_min, steps + 1, dtype=torch.float64)


@dataclass(frozen=True, eq=False)
class GaussianPath(ContinuousProcess):
    """x_t = s(t) x_0 + σ(t) ε for t ∈ [0, 1]: four functions of float64 times ``(B,)`` returning ``(B,)``.

    The paths of flow matching (Lipman et al. 2023). Build them with :func:`linear_path` and
    :func:`vp_path`.
    """

    name: str
    scale: Coefficient
    std: Coefficient
    d_scale: Coefficient
    d_std: Coefficient

    def scale_std(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.scale(t), self.std(t)

    def scale_std_derivative(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.d_scale(t), self.d_std(t)

    def __repr__(self) -> str:
        return f"GaussianPath({self.name!r})"


def linear_path() -> GaussianPath:
    """s = 1 − t, σ = t: rectified flow (Liu et al. 2023) and the conditional OT path (Lipman et al. 2023)."""
    return GaussianPath("linear", lambda t: 1.0 - t, lambda t: t, lambda t: -torch.ones_like(t),
                        lambda t: torch.ones_like(t))


def vp_path(beta_min: float = 0.1, beta_max: float = 20.0) -> GaussianPath:
    """The VP SDE's marginals as a path: s = exp(−½∫₀ᵗβ), σ = √(1 − s²) (Song et al. 2021, Eq. 29)."""
    from .sde import VPSDE

    sde = VPSDE(beta_min, beta_max)

    def d_scale(t):
        return -0.5 * sde.beta(t) * sde.scale_std(t)[0]

    def d_std(t):
        s, sigma = sde.scale_std(t)
        return -s * d_scale(t) / sigma

    return GaussianPath("vp", lambda t: sde.scale_std(t)[0], lambda t: sde.scale_std(t)[1], d_scale, d_std)


class NoiseLevels(ContinuousProcess):
    """x_σ = x_0 + σ ε, with time *being* the noise level σ (Song & Ermon 2019's NCSN; Karras et al. 2022).

    A model of this process is conditioned on σ itself, as a noise-conditional score network is.
    ``time_grid`` gives geometric levels from σ_max down to σ_min (Song & Ermon 2019, Sec. 4.2).
    """

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 10.0) -> None:
        self.sigma_min = check_float("sigma_min", sigma_min, 0.0, low_open=True)
        self.sigma_max = check_float("sigma_max", sigma_max, self.sigma_min, low_open=True)
        self.t_high, self.t_end = math.inf, self.sigma_min

    def scale_std(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.ones_like(t), t

    def scale_std_derivative(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros_like(t), torch.ones_like(t)

    @property
    def prior_std(self) -> float:
        return self.sigma_max

    def sample_time(self, n: int, generator: torch.Generator | None, device: torch.device | str) -> torch.Tensor:
        """n training levels, log-uniform on [σ_min, σ_max], float64 ``(n,)``."""
        u = torch.rand(n, generator=generator, device=device, dtype=torch.float64)
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** u

    def time_grid(self, steps: int, *, start: float | None = None, t_min: float | None = None) -> torch.Tensor:
        """``steps + 1`` geometric levels from ``start`` (σ_max) down to ``t_min`` (σ_min)."""
        steps = check_int("steps", steps, 1)
        start = self.sigma_max if start is None else check_float("start", start, 0.0, low_open=True)
        t_min = self.sigma_min if t_min is None else check_float("t_min", t_min, 0.0, start, low_open=True, high_open=True)
        return start * (t_min / start) ** torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)

    def __repr__(self) -> str:
        return f"NoiseLevels(sigma_min={self.sigma_min:g}, sigma_max={self.sigma_max:g})"


def geometric_sigmas(sigma_max: float, sigma_min: float, n_levels: int) -> torch.Tensor:
    """σ_1 = σ_max > ... > σ_L = σ_min with a constant ratio (Song & Ermon 2019, Sec. 4.2): ``(L,)`` float64."""
    n_levels = check_int("n_levels", n_levels, 1)
    if n_levels == 1:
        return torch.tensor([check_float("sigma_max", sigma_max, 0.0, low_open=True)], dtype=torch.float64)
    return NoiseLevels(sigma_min, sigma_max).time_grid(n_levels - 1)


def broadcast_time(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """One time (a 0-d tensor or a float) repeated for every example of ``x``: shape ``(B,)``."""
    check_tensor("x", x)
    return torch.as_tensor(t, device=x.device).reshape(()).expand(x.shape[0])

