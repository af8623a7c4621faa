"""Forward SDEs dx = f(x, t) dt + g(t) dw on continuous time t ∈ [0, 1] (Song et al. 2021).

=====================  ==========================  ==================================================
code                   symbol                      meaning
=====================  ==========================  ==================================================
``drift(x, t)``        f(x, t)                     drift of the forward SDE
``diffusion(t)``       g(t)                        diffusion coefficient (a scalar per example)
``marginal_mean_std``  s(t), σ(t)                  x_t = s(t) x_0 + σ(t) z, z ~ N(0, I)
``reverse_drift``      f − g² ∇log p_t             drift of the reverse-time SDE (Song et al. 2021, Eq. 6)
``ode_drift``          f − ½ g² ∇log p_t           the probability-flow ODE (Song et al. 2021, Eq. 13)
=====================  ==========================  ==================================================

Each SDE defines only its drift, diffusion, marginal and prior; the reverse-time SDE and the
probability-flow ODE are derived once, in :class:`SDE`, from those and a score model
``(x, t) -> ∇ log p_t(x)`` (as in score_sde's ``sde_lib.py``). Times ``t`` are float tensors of
shape ``(B,)``; per-example coefficients are broadcast with :func:`~diffusion_lab.expand_like`.

**The VP SDE and DDPM.** DDPM's chain x_i = √(1 − β_i) x_{i−1} + √β_i z with β_i = β(i/T)/T is the
Euler–Maruyama discretisation of dx = −½β(t) x dt + √β(t) dw with step 1/T. With β_min = 0.1 and
β_max = 20, β(t) = β_min + t(β_max − β_min) gives β_i from 1e-4 to 0.02 for T = 1000: DDPM's linear
schedule (Ho et al. 2020), which :func:`~diffusion_lab.linear_schedule` ``(T)`` reproduces for any T.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from .broadcast import expand_like

ScoreModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _as_time(t: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Times as a float64 tensor of shape ``(B,)`` on x's device."""
    t = torch.as_tensor(t, dtype=torch.float64, device=x.device)
    if t.ndim == 0:
        t = t.expand(x.shape[0])
    if t.shape != (x.shape[0],):
        raise ValueError(f"t must be a float or a tensor of shape ({x.shape[0]},), got {tuple(t.shape)}")
    return t


class SDE:
    """Base class of the forward SDEs: subclasses define the drift, diffusion, marginal and prior."""

    def drift(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """f(x, t), shaped like x."""
        raise NotImplementedError

    def diffusion(self, t: torch.Tensor) -> torch.Tensor:
        """g(t), shape ``(B,)`` (float64)."""
        raise NotImplementedError

    def marginal_mean_std(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(s(t), σ(t)), each ``(B,)`` float64, with x_t | x_0 ~ N(s(t) x_0, σ(t)² I)."""
        raise NotImplementedError

    @property
    def prior_std(self) -> float:
        """Standard deviation of the prior N(0, σ_T² I) that sampling starts from."""
        raise NotImplementedError

    # --- Derived once for every SDE -------------------------------------------------------------

    def marginal_sample(
        self, x0: torch.Tensor, t: float | torch.Tensor, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Draw x_t = s(t) x_0 + σ(t) z given x_0 of shape ``(B, ...)``."""
        scale, std = self.marginal_mean_std(_as_time(t, x0))
        z = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
        return expand_like(scale, x0) * x0 + expand_like(std, x0) * z

    def prior_sample(self, shape: Sequence[int], *, generator: torch.Generator | None = None) -> torch.Tensor:
        """x_1 ~ N(0, σ_T² I) of the given shape, drawn on the generator's device."""
        device = generator.device if generator is not None else torch.device("cpu")
        return self.prior_std * torch.randn(tuple(shape), generator=generator, device=device)

    def prior_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log N(x; 0, σ_T² I) per example: shape ``(B,)``, float64."""
        x = x.double().flatten(1)
        d = x.shape[1]
        return -0.5 * (x.pow(2).sum(1) / self.prior_std**2 + d * math.log(2 * math.pi * self.prior_std**2))

    def reverse_drift(self, x: torch.Tensor, t: torch.Tensor, score_model: ScoreModel) -> torch.Tensor:
        """f(x, t) − g(t)² ∇ log p_t(x): the reverse-time SDE runs dx = [this] dt + g dw̄ backwards
        in time (Anderson 1982; Song et al. 2021, Eq. 6)."""
        g2 = expand_like(self.diffusion(t) ** 2, x)
        return self.drift(x, t) - g2 * score_model(x, t)

    def ode_drift(self, x: torch.Tensor, t: torch.Tensor, score_model: ScoreModel) -> torch.Tensor:
        """f(x, t) − ½ g(t)² ∇ log p_t(x): the probability-flow ODE dx/dt, whose solutions have the
        same marginals p_t as the SDE (Song et al. 2021, Eq. 13)."""
        g2 = expand_like(self.diffusion(t) ** 2, x)
        return self.drift(x, t) - 0.5 * g2 * score_model(x, t)

    def discretize(self, x: torch.Tensor, t: torch.Tensor, dt: float) -> tuple[torch.Tensor, torch.Tensor]:
        """One forward step from t − dt to t as x_t = x + f_i + G_i z: returns (f_i like x, G_i ``(B,)``).

        The default is Euler–Maruyama, f_i = f(x, t) dt and G_i = g(t) √dt; VE and VP override it
        with the discretisations of NCSN and DDPM (Song et al. 2021, App. E).
        """
        return self.drift(x, t) * dt, self.diffusion(t) * math.sqrt(dt)

    def corrector_alpha(self, t: torch.Tensor, dt: float) -> torch.Tensor:
        """α_i in the Langevin corrector's step size ε_i = 2 α_i (r ‖z‖ / ‖s‖)² (Song et al. 2021,
        Algorithms 4 and 5): 1 for VE, 1 − β_i for VP; shape ``(B,)``."""
        return torch.ones_like(t)


class VESDE(SDE):
    """Variance exploding: dx = √(d[σ²(t)]/dt) dw with σ(t) = σ_min (σ_max / σ_min)^t (Song et al. 2021, Eq. 9).

    The continuous limit of NCSN's noise levels. x_t = x_0 + σ z with σ² = σ(t)² − σ_min², the exact
    marginal of the SDE started at the data (score_sde uses σ(t), which assumes x_0 already carries
    noise σ_min). The prior is N(0, σ_max² I); σ_max should exceed the data's largest pairwise
    distance (Song & Ermon 2020, Technique 1).
    """

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 10.0) -> None:
        if not 0.0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min} and {sigma_max}")
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        """σ(t) = σ_min (σ_max / σ_min)^t, shape ``(B,)``."""
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def drift(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)

    def diffusion(self, t: torch.Tensor) -> torch.Tensor:
        return self.sigma(t) * math.sqrt(2 * math.log(self.sigma_max / self.sigma_min))

    def marginal_mean_std(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = torch.as_tensor(t, dtype=torch.float64)
        return torch.ones_like(t), (self.sigma(t) ** 2 - self.sigma_min**2).clamp_min(0.0).sqrt()

    @property
    def prior_std(self) -> float:
        return self.sigma_max

    def discretize(self, x: torch.Tensor, t: torch.Tensor, dt: float) -> tuple[torch.Tensor, torch.Tensor]:
        """NCSN's step: x_i = x_{i−1} + √(σ_i² − σ_{i−1}²) z (Song et al. 2021, Eq. 45)."""
        return torch.zeros_like(x), (self.sigma(t) ** 2 - self.sigma(t - dt) ** 2).sqrt()

    def __repr__(self) -> str:
        return f"VESDE(sigma_min={self.sigma_min:g}, sigma_max={self.sigma_max:g})"


class VPSDE(SDE):
    """Variance preserving: dx = −½ β(t) x dt + √β(t) dw, β(t) = β_min + t (β_max − β_min) (Song et al. 2021, Eq. 11).

    The continuous limit of DDPM: x_t = s(t) x_0 + √(1 − s(t)²) z with
    log s(t) = −¼ t² (β_max − β_min) − ½ t β_min, so s(t)² plays the role of ᾱ. Prior N(0, I).
    """

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0) -> None:
        if not 0.0 < beta_min < beta_max:
            raise ValueError(f"need 0 < beta_min < beta_max, got {beta_min} and {beta_max}")
        self.beta_min, self.beta_max = float(beta_min), float(beta_max)

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        """β(t), shape ``(B,)``."""
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def log_mean_coeff(self, t: torch.Tensor) -> torch.Tensor:
        """log s(t) = −½ ∫₀ᵗ β(u) du."""
        return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def alpha_bar(self, t: torch.Tensor) -> torch.Tensor:
        """ᾱ(t) = s(t)² = exp(−∫₀ᵗ β(u) du): DDPM's ᾱ_t in continuous time, shape ``(B,)``."""
        return torch.exp(2 * self.log_mean_coeff(torch.as_tensor(t, dtype=torch.float64)))

    def drift(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return -0.5 * expand_like(self.beta(t), x) * x

    def diffusion(self, t: torch.Tensor) -> torch.Tensor:
        return self.beta(t).sqrt()

    def marginal_mean_std(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = torch.as_tensor(t, dtype=torch.float64)
        log_s = self.log_mean_coeff(t)
        return log_s.exp(), (-torch.expm1(2 * log_s)).sqrt()

    @property
    def prior_std(self) -> float:
        return 1.0

    def _beta_i(self, t: torch.Tensor, dt: float) -> torch.Tensor:
        # β_i = 1 − ᾱ(t) / ᾱ(t − dt) = β(t) dt + O(dt²): the DDPM step that matches the marginals exactly.
        return -torch.expm1(2 * (self.log_mean_coeff(t) - self.log_mean_coeff(t - dt)))

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
        return (self.beta(t) * -torch.expm1(4 * self.log_mean_coeff(t))).sqrt()

    def marginal_mean_std(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = torch.as_tensor(t, dtype=torch.float64)
        log_s = self.log_mean_coeff(t)
        return log_s.exp(), -torch.expm1(2 * log_s)

    def discretize(self, x: torch.Tensor, t: torch.Tensor, dt: float) -> tuple[torch.Tensor, torch.Tensor]:
        return SDE.discretize(self, x, t, dt)

    def __repr__(self) -> str:
        return f"SubVPSDE(beta_min={self.beta_min:g}, beta_max={self.beta_max:g})"


def time_grid(n_steps: int, eps: float = 1e-3) -> torch.Tensor:
    """The ``n_steps + 1`` times 1 = t_0 > t_1 > ... > t_N = eps that the samplers visit (float64)."""
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}")
    if not 0.0 <= eps < 1.0:
        raise ValueError(f"eps (the final time) must lie in [0, 1), got {eps}")
    return torch.linspace(1.0, eps, n_steps + 1, dtype=torch.float64)


def forward_sde_simulate(
    sde: SDE,
    x0: torch.Tensor,
    *,
    n_steps: int = 1000,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Simulate the forward SDE from x_0 at t = 0 to t = 1 by Euler–Maruyama, x ← x + f Δt + g √Δt z.

    Returns x_1, and with ``return_trajectory`` the states ``(n_steps + 1, B, ...)`` at the times
    ``linspace(0, 1, n_steps + 1)``; used to check :meth:`SDE.marginal_mean_std` by simulation.
    """
    times = time_grid(n_steps, 0.0).flip(0)  # 0 = t_0 < ... < t_N = 1
    x = x0
    trajectory = [x] if return_trajectory else None
    for i in range(n_steps):
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
