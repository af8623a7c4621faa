"""Discrete-step samplers: DDPM's ancestral sampling, DDIM, and DDIM inversion.

Both run on the grid of the denoiser's process, t_0 > t_1 > ... > t_S (``process.time_grid``:
τ_S > ... > τ_1 > 0 for a schedule, evenly spaced times for an SDE). Each step goes from t to
t' < t through the model's x̂₀ and ε̂, with s = s(t), σ = σ(t) and primes at t':

* **DDPM** (Ho et al. 2020, Algorithm 2): x_{t'} ~ N(μ_θ, ω² I) with μ_θ the mean of the posterior
  q(x_{t'} | x_t, x̂₀) of :mod:`diffusion_lab.forward` at the model's x̂₀, and ω² the posterior's
  β̃ (``"beta_tilde"``), the forward step's β_{t|t'} (``"beta"``: β_t for adjacent steps), an
  interpolation ν between them, or the network's own ν (``"learned"``; :mod:`diffusion_lab.variances`).
  On S < T steps of a schedule this *is* DDPM on the respaced schedule (Nichol & Dhariwal 2021,
  Sec. 4; see ``respace``), a learned ν interpolating the respaced β and β̃ as in their Sec. 4.
* **DDIM** (Song et al. 2021, Eq. 12): x_{t'} = s' x̂₀ + √(σ'² − ω²) ε̂ + ω z, with fresh-noise std
  ω = η σ̃ (η = 1: DDPM's posterior std, Eq. 16; η = 0: deterministic). The paper writes ω as σ_t.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..broadcast import expand_like
from ..denoiser import DenoiserBase, check_denoiser
from ..forward import posterior_coefficients, randn_like
from ..validation import check_float, check_int, check_tensor
from ..variances import check_variance, step_variance
from .common import Trajectory, batch_time, sampling_grid, start_state


def reverse_mean_variance(denoiser: DenoiserBase, x: torch.Tensor, t: torch.Tensor, t_next: torch.Tensor,
                          variance: str | float = "beta") -> tuple[torch.Tensor, torch.Tensor]:
    """μ_θ and ω² of the reverse step p_θ(x_{t'} | x_t) = N(μ_θ, ω² I) at times ``(B,)``, from one model call.

    μ_θ is the posterior mean at the model's x̂₀ (Ho et al. 2020, Eqs. 6–7); ω² is shaped to
    broadcast against x (per dimension for a learned variance).
    """
    prediction = denoiser.predict(x, t)
    coef_xt, coef_x0, _ = posterior_coefficients(denoiser.process, t, t_next)
    mean = expand_like(coef_xt, x) * x + expand_like(coef_x0, x) * prediction.x0
    return mean, step_variance(denoiser.process, t, t_next, variance, x, prediction.nu)


def ddpm_step(denoiser: DenoiserBase, x: torch.Tensor, t: torch.Tensor, t_next: torch.Tensor, *,
              variance: str | float = "beta", noise: bool = True, generator: torch.Generator | None = None
              ) -> torch.Tensor:
    """One ancestral step x_t → x_{t'} (Ho et al. 2020, Algorithm 2, line 4) at times ``(B,)``.

    ``noise=False`` returns the posterior mean (the last step of a chain adds no noise).
    """
    mean, var = reverse_mean_variance(denoiser, x, t, t_next, variance)
    return mean + var.sqrt() * randn_like(x, generator) if noise else mean


@torch.no_grad()
def ddpm_sample(denoiser: DenoiserBase, x_T: torch.Tensor | Sequence[int], *,
                steps: int | Sequence[int] | None = None, variance: str | float = "beta", t_start: int | float | None = None,
                generator: torch.Generator | None = None, return_trajectory: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Run the reverse chain from x_{t_0} to x at the end of the grid (Ho et al. 2020, Algorithm 2).

    Args:
        denoiser: the model (a :class:`~diffusion_lab.Denoiser`); its process gives the steps.
        x_T: the starting noise, or a shape ``(B, ...)`` to draw it from ``generator``.
        steps: None (all T steps of a schedule), a number S of evenly spaced steps, or explicit steps.
        variance: the fresh noise's variance ω_t²: β_t (``"beta"``) or β̃_t (``"beta_tilde"``), Ho et al.'s two
            choices (Sec. 3.2); a number ν in [0, 1] between them; or ``"learned"``, the network's ν.
        t_start: start below the top of the grid (SDEdit starts at t₀ < T with a noised image).
        return_trajectory: also return every state (``trajectory[i]`` at the i-th grid time).

    Returns:
        x_0 of shape ``(B, ...)``; with ``return_trajectory``, ``(x_0, trajectory)``.
    """
    denoiser = check_denoiser(denoiser)
    variance = check_variance(variance)
    times = sampling_grid(denoiser, steps, t_start)
    x = start_state(denoiser.process, x_T, generator)
    trajectory = Trajectory(x, return_trajectory)
    for i in range(len(times) - 1):
        t, t_next = batch_time(times[i], x), batch_time(times[i + 1], x)
        x = ddpm_step(denoiser, x, t, t_next, variance=variance, noise=i < len(times) - 2, generator=generator)
        trajectory.add(x)
    return trajectory.result(x)


def ddim_noise_std(denoiser: DenoiserBase, t: torch.Tensor, t_next: torch.Tensor, eta: float) -> torch.Tensor:
    """ω = η σ̃: the std of DDIM's fresh noise for a step t → t' (Song et al. 2021, Eq. 16), float64 ``(B,)``.

    With t' = t − 1 on a schedule, η = 1 gives √β̃_t, DDPM's posterior std.
    """
    return check_float("eta", eta, 0.0) * posterior_coefficients(denoiser.process, t, t_next)[2].sqrt()


def ddim_step(denoiser: DenoiserBase, x: torch.Tensor, t: torch.Tensor, t_next: torch.Tensor, *,
              eta: float = 0.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """One DDIM step x_t → x_{t'} (Song et al. 2021, Eq. 12) at times ``(B,)``."""
    prediction = denoiser.predict(x, t)
    s_next, sigma_next = (expand_like(c, x) for c in denoiser.process.scale_std(t_next))
    omega = expand_like(ddim_noise_std(denoiser, t, t_next, eta), x)
    # DDIM (Song et al. 2021), Eq. 12: the signal at t', then the direction pointing to x_t.
    x_next = s_next * prediction.x0 + (sigma_next**2 - omega**2).clamp_min(0.0).sqrt() * prediction.eps
    # Fresh noise (none when eta = 0).
    return x_next + omega * randn_like(x, generator) if eta > 0 else x_next


@torch.no_grad()
def ddim_sample(denoiser: DenoiserBase, x_T: torch.Tensor | Sequence[int], *,
                steps: int | Sequence[int] = 50, eta: float = 0.0, t_start: int | float | None = None,
                generator: torch.Generator | None = None, return_trajectory: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Sample with DDIM (Song et al. 2021, Eq. 12) on S evenly spaced (or explicit) steps, one model call each.

    Args:
        x_T: the starting state, or a shape ``(B, ...)`` to draw it from ``generator``.
        steps: an int S or an explicit increasing sequence of steps; the sampler starts at the largest.
        eta: η ≥ 0 scales the fresh noise: 0 is deterministic, 1 is DDPM's ancestral sampler.
        t_start: start below the top of the grid (e.g. from a noised image, Chung et al. 2022).
        return_trajectory: also return the visited states, in sampling order.
    """
    denoiser = check_denoiser(denoiser)
    check_float("eta", eta, 0.0)
    times = sampling_grid(denoiser, steps, t_start)
    x = start_state(denoiser.process, x_T, generator)
    trajectory = Trajectory(x, return_trajectory)
    for i in range(len(times) - 1):
        x = ddim_step(denoiser, x, batch_time(times[i], x), batch_time(times[i + 1], x), eta=eta,
                      generator=generator)
        trajectory.add(x)
    return trajectory.result(x)


@torch.no_grad()
def ddim_invert(denoiser: DenoiserBase, x0: torch.Tensor, *, steps: int | Sequence[int] = 50,
                fixed_point_iters: int = 0, return_trajectory: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Run deterministic DDIM backwards, x_0 → x_{t_0}: the latent that :func:`ddim_sample` maps to x_0.

    Eq. 12 of Song et al. (2021) solved for the noisier state, x_{t} = s x̂₀ + σ ε̂ with x̂₀ =
    (x_{t'} − σ' ε̂) / s', needs ε̂ at the *unknown* x_t. The usual inversion (Song et al. 2021,
    Sec. 5.4; Dhariwal & Nichol 2021, App. F) uses ε̂(x_{t'}, t), exact for small steps;
    ``fixed_point_iters`` > 0 refines it by x_t ← step(ε̂(x_t, t)), which makes inversion followed by
    :func:`ddim_sample` with the same steps exact at convergence (Pan et al. 2023).

    Returns:
        x_{t_0} shaped like ``x0``; with ``return_trajectory``, also the states from x_0 upwards.
    """
    denoiser = check_denoiser(denoiser)
    check_tensor("x0", x0, floating=True, ndim_min=2, finite=True)
    fixed_point_iters = check_int("fixed_point_iters", fixed_point_iters, 0)
    times = sampling_grid(denoiser, steps, None).flip(0)  # upwards: 0 → t_0
    x = x0
    trajectory = Trajectory(x, return_trajectory)
    for i in range(len(times) - 1):
        t_prev, t = batch_time(times[i], x), batch_time(times[i + 1], x)
        s_prev, sigma_prev = (expand_like(c, x) for c in denoiser.process.scale_std(t_prev))
        s, sigma = (expand_like(c, x) for c in denoiser.process.scale_std(t))
        x_next = x
        for _ in range(1 + fixed_point_iters):
            # Initial guess (the model at the current state), then fixed-point refinement.
            eps_hat = denoiser.eps(x_next, t)
            x_next = s * (x - sigma_prev * eps_hat) / s_prev + sigma * eps_hat
        x = x_next
        trajectory.add(x)
    return trajectory.result(x)


def slerp(z0: torch.Tensor, z1: torch.Tensor, weight: float | torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between latents (Shoemake 1985; used for DDIM latents by Song et al. 2021, Sec. 5.3).

    slerp(z0, z1; λ) = sin((1 − λ) θ) / sin θ · z0 + sin(λ θ) / sin θ · z1, with θ the angle between
    each pair of examples (flattened). Gaussian latents in high dimension live near a sphere of
    radius √D; linear interpolation would cut through its inside, slerp stays near it.

    Args:
        z0, z1: latents of the same shape ``(B, ...)``.
        weight: λ in [0, 1], a float or a tensor of shape ``(B,)``.
    """
    check_tensor("z0", z0, floating=True)
    check_tensor("z1", z1, floating=True)
    if z0.shape != z1.shape:
        raise ValueError(f"z0 and z1 must have the same shape, got {tuple(z0.shape)} and {tuple(z1.shape)}")
    a, b = z0.flatten(1), z1.flatten(1)  # (B, D)
    lam = torch.as_tensor(weight, dtype=a.dtype, device=a.device).reshape(-1, 1)  # (B|1, 1)
    cos = (a * b).sum(1, keepdim=True) / (a.norm(dim=1, keepdim=True) * b.norm(dim=1, keepdim=True))
    theta = torch.arccos(cos.clamp(-1.0, 1.0))  # (B, 1)
    sin = torch.sin(theta)
    # Nearly parallel latents: fall back to linear interpolation, the limit of slerp as θ → 0.
    small = sin.abs() < 1e-6
    safe = torch.where(small, torch.ones_like(sin), sin)
    w0 = torch.where(small, 1.0 - lam, torch.sin((1.0 - lam) * theta) / safe)
    w1 = torch.where(small, lam.expand_as(theta), torch.sin(lam * theta) / safe)
    return (w0 * a + w1 * b).reshape(z0.shape)
