"""Flow matching and rectified flow (Lipman et al. 2023; Liu et al. 2023; Albergo & Vanden-Eijnden 2023).

A *Gaussian path* (:class:`~diffusion_lab.GaussianPath`, a noise process like any other) joins
data and noise: x_t = s(t) x_0 + σ(t) ε with ε ~ N(0, I), x_0 ~ data, and t ∈ [0, 1]. The package's
convention holds: **t = 0 is data, t = 1 is noise**, and samplers run from t = 1 down to t = 0
(papers on flow matching often use the reverse direction).

The velocity of one path is ṡ x_0 + σ̇ ε; for the linear path s = 1 − t, σ = t (rectified flow,
the conditional optimal-transport path) it is ε − x_0, constant along each path. Regressing a
network on it (:func:`~diffusion_lab.diffusion_loss` with ``predicts="velocity"``) learns the
marginal velocity u_t(x) = E[ṡ x_0 + σ̇ ε | x_t = x], because the minimiser of a squared loss is the
conditional expectation (Lipman et al. 2023, Thm. 2). Any denoiser's velocity is this
u_t = ṡ x̂₀ + σ̇ ε̂; written through the score with Tweedie's formulas E[ε | x_t] = −σ ∇log p_t and
E[x_0 | x_t] = (x_t + σ² ∇log p_t) / s,

    u_t(x) = (ṡ / s) x + (ṡ σ² / s − σ σ̇) ∇log p_t(x),

which, for the VP path, is exactly the probability-flow ODE's drift f − ½ g² ∇log p_t (Song et al.
2021, Eq. 13): diffusion's deterministic sampler *is* a flow on a Gaussian path, and these paths
are the stochastic interpolants of Albergo & Vanden-Eijnden. This module adds what is particular
to flows: the coupling of reflow and a measure of straightness.
"""

from __future__ import annotations

import torch

from .denoiser import DenoiserBase
from .samplers.ode import heun_sample
from .validation import check_int, check_tensor


@torch.no_grad()
def reflow_pairs(denoiser: DenoiserBase, noise: torch.Tensor, *, steps: int = 32, batch_size: int = 4096) -> torch.Tensor:
    """The data end x_0 of the flow started at each ``noise`` row: the coupling (x_0, ε) of reflow.

    Rectified flow's second stage (Liu et al. 2023, Algorithm 1) re-trains on these pairs (the
    ``noise=`` argument of :func:`~diffusion_lab.train_diffusion`); the new paths cross less, so the
    flow is straighter and needs fewer steps.
    """
    check_tensor("noise", noise, floating=True, ndim_min=2)
    batch_size = check_int("batch_size", batch_size, 1)
    return torch.cat([heun_sample(denoiser, noise[i:i + batch_size], steps=steps)
                      for i in range(0, noise.shape[0], batch_size)])


def straightness(trajectory: torch.Tensor) -> float:
    """Liu et al.'s (2023, Def. 3.2) S = ∫ E‖(x_1 − x_0) − ẋ_t‖² dt on a uniform-step trajectory.

    ``trajectory`` is ``(N + 1, B, ...)`` from t = 1 to t = 0 (``return_trajectory=True`` of the
    ODE samplers); 0 means every path is a straight line travelled at constant speed.
    """
    check_tensor("trajectory", trajectory, floating=True, ndim_min=3)
    n = trajectory.shape[0] - 1
    steps = (trajectory[1:] - trajectory[:-1]) * n  # (N, B, ...): finite-difference velocity (per unit t)
    total = trajectory[-1] - trajectory[0]  # (B, ...)
    return float((steps - total).pow(2).flatten(2).sum(-1).mean())
