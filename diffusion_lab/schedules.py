"""Noise schedules for discrete-time diffusion: β_t and everything derived from it.

Indexing convention, followed by the whole package:

* Discrete steps are t = 1, ..., T, as in the papers. Every array has T + 1 entries and entry 0
  stands for t = 0, the data itself (β_0 = 0, α_0 = 1, ᾱ_0 = 1), so ``alpha_bar[t]`` *is* ᾱ_t.
* Continuous time, used by the SDE chapters, is t / T ∈ [0, 1] (:meth:`NoiseSchedule.continuous_time`).

=================  ==========================  ============================================
code               symbol                      meaning
=================  ==========================  ============================================
``beta``           β_t                         variance of the noise added at step t
``alpha``          α_t = 1 − β_t               signal kept by one step (squared)
``alpha_bar``      ᾱ_t = ∏_{s≤t} α_s           signal kept after t steps (squared)
``snr``            ᾱ_t / (1 − ᾱ_t)             signal-to-noise ratio of x_t
``log_snr``        log SNR(t)                  log of the above (∞ at t = 0)
``beta_tilde``     β̃_t                         variance of q(x_{t−1} | x_t, x_0) (0 at t ≤ 1)
=================  ==========================  ============================================

Schedules are built in float64 and are immutable (their arrays are read-only); values are cast
to the data's dtype and device only at use, by :meth:`NoiseSchedule.gather`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from .spacing import sampling_steps
from .validation import check_choice, check_int
from .broadcast import expand_like

SCHEDULES = ("linear", "cosine", "sigmoid")
QUANTITIES = ("beta", "alpha", "alpha_bar", "snr", "log_snr", "beta_tilde")


def _read_only(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class NoiseSchedule:
    """An immutable discrete noise schedule.

    Args:
        beta: array of shape ``(T + 1,)`` with ``beta[0] == 0`` and every β_t (t ≥ 1) in (0, 1).
            Use :func:`from_betas` to build one from the T values β_1, ..., β_T.
        name: a label for plots and tables.
    """

    beta: np.ndarray
    name: str = "custom"

    def __post_init__(self) -> None:
        beta = np.asarray(self.beta, dtype=np.float64)
        if beta.ndim != 1 or beta.shape[0] < 2:
            raise ValueError(
                f"beta must be a 1-D array of length T + 1 >= 2 (entry 0 is t = 0), got shape {beta.shape}"
            )
        if beta[0] != 0.0:
            raise ValueError(f"beta[0] stands for t = 0 and must be 0, got {beta[0]}")
        _check_betas_in_unit_interval(beta[1:])
        object.__setattr__(self, "beta", _read_only(beta))

    @property
    def T(self) -> int:
        """Number of diffusion steps."""
        return self.beta.shape[0] - 1

    @cached_property
    def alpha(self) -> np.ndarray:
        """α_t = 1 − β_t, shape ``(T + 1,)``."""
        return _read_only(1.0 - self.beta)

    @cached_property
    def alpha_bar(self) -> np.ndarray:
        """ᾱ_t = ∏_{s=1}^t α_s, shape ``(T + 1,)``, with ᾱ_0 = 1."""
        return _read_only(np.cumprod(self.alpha))

    @cached_property
    def snr(self) -> np.ndarray:
        """SNR(t) = ᾱ_t / (1 − ᾱ_t), shape ``(T + 1,)``; infinite at t = 0."""
        with np.errstate(divide="ignore"):
            return _read_only(self.alpha_bar / (1.0 - self.alpha_bar))

    @cached_property
    def log_snr(self) -> np.ndarray:
        """log SNR(t), shape ``(T + 1,)``; +∞ at t = 0."""
        with np.errstate(divide="ignore"):
            return _read_only(np.log(self.alpha_bar) - np.log1p(-self.alpha_bar))

    @cached_property
    def beta_tilde(self) -> np.ndarray:
        """β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t (Ho et al. 2020, Eq. 7), shape ``(T + 1,)``.

        β̃_1 = 0 because x_0 is known exactly given x_1 and x_0; entry 0 is set to 0 as well.
        """
        out = np.zeros_like(self.beta)
        ab = self.alpha_bar
        out[1:] = (1.0 - ab[:-1]) / (1.0 - ab[1:]) * self.beta[1:]
        return _read_only(out)

    def continuous_time(self, t: int | np.ndarray | torch.Tensor):
        """Map discrete steps t ∈ {0, ..., T} to continuous time t / T ∈ [0, 1]."""
        return t / self.T

    def timesteps(
        self, t: int | torch.Tensor, batch_size: int, device: torch.device | str = "cpu", *, min_t: int = 1
    ) -> torch.Tensor:
        """Validate ``t`` and return it as a long tensor of shape ``(batch_size,)``.

        ``t`` may be an int (used for every example) or an integer tensor of shape ``(batch_size,)``.
        Valid steps are ``min_t, ..., T``; anything else raises a ``ValueError`` naming the range.
        """
        if isinstance(t, torch.Tensor):
            if t.dtype.is_floating_point or t.dtype == torch.bool or t.is_complex():
                raise TypeError(f"t must hold integer steps in {min_t}..{self.T}, got dtype {t.dtype}")
            if t.ndim == 0:
                t = t.expand(batch_size)
            if t.shape != (batch_size,):
                raise ValueError(f"t must have shape ({batch_size},) to match the batch, got {tuple(t.shape)}")
            if t.device.type != torch.device(device).type:
                raise ValueError(f"t is on {t.device} but the data is on {device}; move t to the data's device")
            t = t.long()
        else:
            t = torch.full((batch_size,), check_int("t", t), dtype=torch.long, device=device)
        if t.numel() and (int(t.min()) < min_t or int(t.max()) > self.T):
            bad = int(t.min()) if int(t.min()) < min_t else int(t.max())
            raise ValueError(f"t = {bad} is outside the valid steps {min_t}..{self.T} of this schedule (T = {self.T})")
        return t

    # --- The noise-process interface shared with SDEs and flow paths (see diffusion_lab.processes) ---

    discrete = True  # time is an integer step
    prior_std = 1.0  # ᾱ_T ≈ 0: sampling starts from N(0, I)

    def check_time(self, t: int | torch.Tensor, x: torch.Tensor, *, min_t: int = 0) -> torch.Tensor:
        """Steps ``t`` validated for data ``x``: a long tensor ``(B,)`` in ``min_t..T``."""
        return self.timesteps(t, x.shape[0], x.device, min_t=min_t)

    def sample_time(self, n: int, generator: torch.Generator | None, device: torch.device | str) -> torch.Tensor:
        """n training steps t ~ Uniform{1..T} (Ho et al. 2020, Algorithm 1): long ``(n,)``."""
        return torch.randint(1, self.T + 1, (n,), generator=generator, device=device)

    def scale_std(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(s, σ) = (√ᾱ_t, √(1 − ᾱ_t)) at long steps ``t``: float64 tensors shaped like t."""
        alpha_bar = torch.from_numpy(np.array(self.alpha_bar))[t.cpu()].to(t.device)
        return alpha_bar.sqrt(), (1.0 - alpha_bar).sqrt()

    def scale_std_derivative(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise ValueError("a discrete schedule has no time derivatives, so no velocity; use a continuous-time "
                         "process (a VPSDE or a GaussianPath) for flows and the probability-flow ODE in t")

    def time_grid(self, steps: int | Sequence[int] | None = None, *, start: int | None = None,
                  spacing: str = "uniform") -> torch.Tensor:
        """The steps a sampler visits, from ``start`` (default T) down to 0: long tensor ``(S + 1,)``.

        ``steps`` is None (every step), an int S, or an explicit increasing sequence (see
        :func:`sampling_steps`); the grid is τ_S > ... > τ_1 > 0.
        """
        if steps is None:  # every step from start (default T) down
            steps = self.T if start is None else int(start)
        taus = sampling_steps(self, steps, spacing, start=start)
        return torch.tensor(taus[::-1] + (0,), dtype=torch.long)

    def gather(self, quantity: str, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Look up a schedule quantity at steps ``t`` and broadcast it against ``like``.

        Args:
            quantity: one of ``beta, alpha, alpha_bar, snr, log_snr, beta_tilde``.
            t: long tensor of shape ``(B,)`` (already validated by :meth:`timesteps`).
            like: data of shape ``(B, ...)``; the result takes its dtype and device.

        Returns:
            Tensor of shape ``(B, 1, ..., 1)``: float64 values cast at use.
        """
        check_choice("schedule quantity", quantity, QUANTITIES)
        t = self.timesteps(t, t.shape[0] if isinstance(t, torch.Tensor) and t.ndim else 1, like.device, min_t=0)
        values = torch.from_numpy(np.array(getattr(self, quantity)))[t.cpu()]  # (B,) float64
        return expand_like(values, like)

    def __repr__(self) -> str:
        return f"NoiseSchedule(name={self.name!r}, T={self.T})"


def _check_betas_in_unit_interval(betas: np.ndarray) -> None:
    if not np.all(np.isfinite(betas)) or np.any(betas <= 0.0) or np.any(betas >= 1.0):
        bad = betas[~(np.isfinite(betas) & (betas > 0.0) & (betas < 1.0))][0]
        raise ValueError(f"every beta_t must lie in the open interval (0, 1), got {bad:g}")


def from_betas(betas, name: str = "custom") -> NoiseSchedule:
    """Build a schedule from the T values β_1, ..., β_T (an entry β_0 = 0 is prepended)."""
    betas = np.asarray(betas, dtype=np.float64)
    if betas.ndim != 1 or betas.shape[0] < 1:
        raise ValueError(f"betas must be a 1-D array of the T >= 1 values beta_1..beta_T, got shape {betas.shape}")
    return NoiseSchedule(np.concatenate([[0.0], betas]), name=name)


def _default_beta_range(T: int, beta_start: float | None, beta_end: float | None) -> tuple[float, float]:
    # DDPM's range 1e-4..0.02 is for T = 1000; scale it by 1000 / T (Nichol & Dhariwal 2021,
    # improved-diffusion) so that ᾱ_T stays close to 0 for other T.
    scale = 1000.0 / T
    beta_start = 1e-4 * scale if beta_start is None else float(beta_start)
    beta_end = 0.02 * scale if beta_end is None else float(beta_end)
    for label, b in (("beta_start", beta_start), ("beta_end", beta_end)):
        if not 0.0 < b < 1.0:
            raise ValueError(
                f"{label} = {b:g} is outside the open interval (0, 1); with T = {T} the default range "
                f"(1e-4..0.02 scaled by 1000/T) is invalid, so pass beta_start and beta_end explicitly"
            )
    return beta_start, beta_end


def linear_schedule(T: int = 1000, beta_start: float | None = None, beta_end: float | None = None) -> NoiseSchedule:
    """β_t linear from ``beta_start`` to ``beta_end`` (Ho et al. 2020, Sec. 4: 1e-4 to 0.02 for T = 1000).

    When the range is not given, DDPM's range is scaled by 1000 / T.
    """
    T = check_int("T (the number of diffusion steps)", T, 1)
    beta_start, beta_end = _default_beta_range(T, beta_start, beta_end)
    return from_betas(np.linspace(beta_start, beta_end, T), name="linear")


def cosine_schedule(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> NoiseSchedule:
    """ᾱ_t = f(t) / f(0) with f(t) = cos²(((t/T + s) / (1 + s)) · π/2) (Nichol & Dhariwal 2021, Eq. 17).

    β_t = 1 − ᾱ_t / ᾱ_{t−1} is clipped to ``max_beta`` = 0.999, as in the paper, to avoid the
    singularity at t = T.
    """
    T = check_int("T (the number of diffusion steps)", T, 1)
    if not 0.0 < max_beta < 1.0:
        raise ValueError(f"max_beta must lie in (0, 1), got {max_beta:g}")
    steps = np.arange(T + 1, dtype=np.float64) / T
    f = np.cos((steps + s) / (1.0 + s) * math.pi / 2.0) ** 2
    alpha_bar = f / f[0]
    betas = np.minimum(1.0 - alpha_bar[1:] / alpha_bar[:-1], max_beta)
    return from_betas(betas, name="cosine")


def sigmoid_schedule(
    T: int = 1000, beta_start: float | None = None, beta_end: float | None = None, steepness: float = 6.0
) -> NoiseSchedule:
    """β_t = β_start + (β_end − β_start) · sigmoid(u_t), u_t evenly spaced on [−steepness, steepness].

    The sigmoid β schedule of GeoDiff (Xu et al. 2022). β_t rises monotonically from β_start to
    β_end; its *increments* are largest in the middle (flat at both ends, steepest at t = T/2).
    Default range as in :func:`linear_schedule`.
    """
    T = check_int("T (the number of diffusion steps)", T, 1)
    beta_start, beta_end = _default_beta_range(T, beta_start, beta_end)
    u = np.linspace(-steepness, steepness, T)
    return from_betas(beta_start + (beta_end - beta_start) / (1.0 + np.exp(-u)), name="sigmoid")


_BUILDERS = {"linear": linear_schedule, "cosine": cosine_schedule, "sigmoid": sigmoid_schedule}


def make_schedule(name: str, T: int = 1000, **kwargs) -> NoiseSchedule:
    """Build a schedule by name: ``linear``, ``cosine`` or ``sigmoid`` (keyword arguments pass through)."""
    check_choice("schedule", name, SCHEDULES)
    return _BUILDERS[name](T, **kwargs)

