"""Forward SDEs dx = f(x, t) dt + g(t) dw on continuous time t ∈ [0, 1] (Song et al. 2021).

=====================  ==========================  ==================================================
code                   symbol                      meaning
=====================  ==========================  ==================================================
``drift(x, t)``        f(x, t)                     drift of the forward SDE
``diffusion(t)``       g(t)                        diffusion coefficient (a scalar per example)
``scale_std``          s(t), σ(t)                  x_t = s(t) x_0 + σ(t) z, z ~ N(0, I)
``reverse_drift``      f − g² ∇log p_t             drift of the reverse-time SDE (Song et al. 2021, Eq. 6)
``ode_drift``          f − ½ g² ∇log p_t           the probability-flow ODE (Song et al. 2021, Eq. 13)
=====================  ==========================  ==================================================

Each SDE defines only its drift, diffusion and marginal; the reverse-time SDE and the
probability-flow ODE are derived once, in :class:`SDE`, from those and a score
(as in score_sde's ``sde_lib.py``). An SDE is a noise process like a schedule or a flow path
(:mod:`diffusion_lab.processes`): a :class:`~diffusion_lab.Denoiser` built on it gives the score,
and its velocity ṡ x̂₀ + σ̇ ε̂ *is* the probability-flow drift. Times ``t`` are float64 tensors of
shape ``(B,)``; per-example coefficients are broadcast with :func:`~diffusion_lab.expand_like`.

**The VP SDE and DDPM.** DDPM's chain x_i = √(1 − β_i) x_{i−1} + √β_i z with β_i = β(i/T)/T is the
Euler–Maruyama discretisation of dx = −½β(t) x dt + √β(t) dw with step 1/T. With β_min = 0.1 and
β_max = 20, β(t) = β_min + t(β_max − β_min) gives β(i/T)/T from 1e-4 to 0.02 for T = 1000, DDPM's
linear schedule (Ho et al. 2020) to first order in 1/T: DDPM takes β_i = β(i/T)/T evaluated at the
step's end, the exact discretisation 1 − ᾱ(i/T)/ᾱ((i−1)/T) differs from it by O(1/T²).
"""

from __future__ import annotations

import math

import torch

from .broadcast import expand_like
from .processes import ContinuousProcess
from .validation import check_float, check_int, check_tensor


class SDE(ContinuousProcess):
    """Base class of the forward SDEs: subclasses define the drift, diffusion and marginal (s, σ).

    Samplers stop at ``t_end`` = 10⁻³ rather than 0, where the score of VP-type SDEs blows up
    (Song et al. 2021, App. C).
    """

    t_end = 1e-3

    def drift(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """f(x, t), shaped like x."""
        raise NotImplementedError

    def diffusion(self, t: torch.Tensor) -> torch.Tensor:
        """g(t), shape ``(B,)`` (float64)."""
        raise NotImplementedError

    # --- Derived once for every SDE -------------------------------------------------------------

    def reverse_drift(self, x: torch.Tensor, t: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
        """f(x, t) − g(t)² ∇ log p_t(x) given the score at (x, t): the reverse-time SDE runs
        dx = [this] dt + g dw̄ backwards in time (Anderson 1982; Song et al. 2021, Eq. 6)."""
        g2 = expand_like(self.diffusion(t) ** 2, x)
        return self.drift(x, t) - g2 * score

    def ode_drift(self, x: torch.Tensor, t: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
        """f(x, t) − ½ g(t)² ∇ log p_t(x) given the score at (x, t): the probability-flow ODE dx/dt,
        whose solutions have the same marginals p_t as the SDE (Song et al. 2021, Eq. 13). It
        equals a denoiser's velocity ṡ x̂₀ + σ̇ ε̂ (checked in the tests)."""
        g2 = expand_like(self.diffusion(t) ** 2, x)
        return self.drift(x, t) - 0.5 * g2 * score

    def discretize(self, x: torch.Tensor, t: torch.Tensor, dt: float) -> tuple[torch.Tensor, torch.Tensor]:
        """One forward step from t − dt to t as x_t = x + f_i + G_i z: returns (f_i like x, G_i ``(B,)``).

        The default is Euler–Maruyama, f_i = f(x, t) dt and G_i = g(t) √dt; VE and VP override it
        with the discretisations of NCSN and DDPM (Song et al. 2021, App. E).
        """
        return self.drift(x, t) * dt, self.diffusion(t) * math.sqrt(dt)

    def corrector_alpha(self, t: torch.Tensor, dt: float) -> torch.Tensor:
        """Song et al.'s α_i in the Langevin corrector's step size 2 α_i (r ‖z‖ / ‖ŝ‖)² (Song et al. 2021,
        Algorithms 4 and 5): 1 for VE, 1 − β_i (the DDPM step's α) for VP; shape ``(B,)``."""
        return torch.ones_like(t)


class VESDE(SDE):
    """Variance exploding: dx = √(d[σ_VE²(t)]/dt) dw (Song et al. 2021, Eq. 9).

    The continuous limit of NCSN's noise levels σ_VE(t) = σ_min (σ_max / σ_min)^t. x_t = x_0 + σ z
    with σ² = σ_VE(t)² − σ_min², the exact marginal of the SDE started at the data (score_sde uses
    σ_VE(t), which assumes x_0 already carries noise σ_min). The prior is N(0, σ_max² I); σ_max
    should exceed the data's largest pairwise distance (Song & Ermon 2020, Technique 1).
    """

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 10.0) -> None:
        self.sigma_min = check_float("sigma_min", sigma_min, 0.0, low_open=True)
        self.sigma_max = check_float("sigma_max", sigma_max, self.sigma_min, low_open=True)

    def noise_level(self, t: torch.Tensor) -> torch.Tensor:
        """σ_VE(t) = σ_min (σ_max / σ_min)^t, NCSN's geometric noise level, shape ``(B,)``."""
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def drift(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)

    def diffusion(self, t: torch.Tensor) -> torch.Tensor:
        return self.noise_level(t) * math.sqrt(2 * math.log(self.sigma_max / self.sigma_min))

    def scale_std(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """s = 1 and σ(t) = √(σ_VE(t)² − σ_min²)."""
        t = torch.as_tensor(t, dtype=torch.float64)
        return torch.ones_like(t), (self.noise_level(t) ** 2 - self.sigma_min**2).clamp_min(0.0).sqrt()

    def scale_std_derivative(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ṡ = 0 and σ̇ = σ_VE² log(σ_max/σ_min) / σ."""
        t = torch.as_tensor(t, dtype=torch.float64)
        return torch.zeros_like(t), self.noise_level(t) ** 2 * math.log(self.sigma_max / self.sigma_min) / self.scale_std(t)[1]

    @property
    def prior_std(self) -> float:
        return self.sigma_max

    def discretize(self, x: torch.Tensor, t: torch.Tensor, dt: float) -> tuple[torch.Tensor, torch.Tensor]:
        """NCSN's step: x_i = x_{i−1} + √(σ_i² − σ_{i−1}²) z (Song et al. 2021, Eq. 45)."""
        return torch.zeros_like(x), (self.noise_level(t) ** 2 - self.noise_level(t - dt) ** 2).sqrt()

    def __repr__(self) -> str:
        return f"VESDE(sigma_min={self.sigma_min:g}, sigma_max={self.sigma_max:g})"


class VPSDE(SDE):
    """Variance preserving: dx = −½ β(t) x dt + √β(t) dw, β(t) = β_min + t (β_max − β_min) (Song et al. 2021, Eq. 11).

    The continuous limit of DDPM: x_t = s(t) x_0 + √(1 − s(t)²) z with
    log s(t) = −¼ t² (β_max − β_min) − ½ t β_min, so s(t)² plays the role of ᾱ. Prior N(0, I).
    """

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0) -> None:
        self.beta_min = check_float("beta_min", beta_min, 0.0, low_open=True)
        self.beta_max = check_float("beta_max", beta_max, self.beta_min, low_open=True)

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        """β(t), shape ``(B,)``."""
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def log_scale(self, t: torch.Tensor) -> torch.Tensor:
        """log s(t) = −½ ∫₀ᵗ β(u) du."""
        return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def alpha_bar(self, t: torch.Tensor) -> torch.Tensor:
        """ᾱ(t) = s(t)² = exp(−∫₀ᵗ β(u) du): DDPM's ᾱ_t in continuous time, shape ``(B,)``."""
        return torch.exp(2 * self.log_scale(torch.as_tensor(t, dtype=torch.float64)))

    def drift(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return -0.5 * expand_like(self.beta(t), x) * x

    def diffusion(self, t: torch.Tensor) -> torch.Tensor:
        return self.beta(t).sqrt()

    def scale_std(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """s(t) = exp(−½∫₀ᵗβ) and σ(t) = √(1 − s²)."""
        t = torch.as_tensor(t, dtype=torch.float64)
        log_s = self.log_scale(t)
        return log_s.exp(), (-torch.expm1(2 * log_s)).sqrt()

    def scale_std_derivative(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ṡ = −½ β(t) s and σ̇ = −s ṡ / σ."""
        s, sigma = self.scale_std(t)
        ds = -0.5 * self.beta(torch.as_tensor(t, dtype=torch.float64)) * s
        return ds, -s * ds / sigma

    @property
    def prior_std(self) -> float:
        return 1.0

    def _beta_i(self, t: torch.Tensor, dt: float) -> torch.Tensor:
        # β_i = 1 − ᾱ(t) / ᾱ(t − dt) = β(t) dt + O(dt²): the DDPM step that matches the marginals exactly.
        return -torch.expm1(2 * (self.log_scale(t) - self.log_scale(t - dt)))

    def discretize(self, x: torch.Tensor, t: torch.Tensor, dt: float) -> tuple[torch.Tensor, torch.Tensor]:
        """DDPM's step: x_i = √(1 − β_i) x_{i−1} + √β_i z (Ho et al. 2020, Eq. 2; Song et al. 2021, Eq. 46)."""
        beta_i = self._beta_i(t, dt)
        return (expand_like((1.0 - beta_i).sqrt(), x) - 1.0) * x, beta_i.sqrt()

    def corrector_alpha(self, t: torch.Tensor, dt: float) -> torch.Tensor:
        return 1.0 - self._beta_i(t, dt)

    def __repr__(self) -> str:
        return f"VPSDE(beta_min={self.beta_min:g}, beta_max={self.beta_max:g})"


class SubVPSDE(VPSDE):
    """sub-VP: dx = −½ β(t) x dt + √(β(t)(1 − e^{−2∫₀ᵗβ})) dw (Song et al. 2021, Eq. 17).

    Same mean as VP, std σ(t) = 1 − s(t)² below VP's √(1 − s(t)²) at every t. Prior N(0, I).
    Its discretisation is the default Euler–Maruyama one.
    """

    def diffusion(self, t: torch.Tensor) -> torch.Tensor:
        return (self.beta(t) * -torch.expm1(4 * self.log_scale(t))).sqrt()

    def scale_std(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """s(t) as for VP, σ(t) = 1 − s²."""
        t = torch.as_tensor(t, dtype=torch.float64)
        log_s = self.log_scale(t)
        return log_s.exp(), -torch.expm1(2 * log_s)

    def scale_std_derivative(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ṡ as for VP, σ̇ = −2 s ṡ."""
        s, _ = self.scale_std(t)
        ds = -0.5 * self.beta(torch.as_tensor(t, dtype=torch.float64)) * s
        return ds, -2.0 * s * ds

    def discretize(self, x: torch.Tensor, t: torch.Tensor, dt: float) -> tuple[torch.Tensor, torch.Tensor]:
        return SDE.discretize(self, x, t, dt)

    def __repr__(self) -> str:
        return f"SubVPSDE(beta_min={self.beta_min:g}, beta_max={self.beta_max:g})"


def forward_sde_simulate(
    sde: SDE,
    x0: torch.Tensor,
    *,
    steps: int = 1000,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Simulate the forward SDE from x_0 at t = 0 to t = 1 by Euler–Maruyama, x ← x + f Δt + g √Δt z.

    Returns x_1, and with ``return_trajectory`` the states ``(steps + 1, B, ...)`` at the times
    ``linspace(0, 1, steps + 1)``; used to check :meth:`SDE.scale_std` by simulation.
    """
    check_tensor("x0", x0, floating=True, ndim_min=2)
    steps = check_int("steps", steps, 1)
    times = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)  # 0 = t_0 < ... < t_N = 1
    x = x0
    trajectory = [x] if return_trajectory else None
    for i in range(steps):
        t = times[i].expand(x.shape[0]).to(x.device)
        dt = float(times[i + 1] - times[i])
        # Euler–Maruyama step.
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        x = x + sde.drift(x, t) * dt + expand_like(sde.diffusion(t), x) * dt**0.5 * z
        if trajectory is not None:
            trajectory.append(x)
    if trajectory is None:
        return x
    return x, torch.stack(trajectory)
