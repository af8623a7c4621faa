"""Flow matching and rectified flow (Lipman et al. 2023; Liu et al. 2023; Albergo & Vanden-Eijnden 2023).

A *Gaussian path* joins data and noise: x_t = s(t) x_0 + σ(t) ε with ε ~ N(0, I), x_0 ~ data, and
t ∈ [0, 1]. The package's convention holds: **t = 0 is data, t = 1 is noise**, and samplers run
from t = 1 down to t = 0 (papers on flow matching often use the reverse direction).

(the notation of the SDEs: s(t)² plays the role of ᾱ)

========================  ========================  ==============================================
code                      symbol                    meaning
========================  ========================  ==============================================
``path.scale(t)``         s(t)                      signal coefficient (1 at t = 0)
``path.std(t)``           σ(t)                      noise coefficient (0 at t = 0)
``path.d_scale(t)``, …    ṡ(t), σ̇(t)                their time derivatives
``conditional_velocity``  ṡ x_0 + σ̇ ε                velocity of one path, the regression target
``mixture_velocity``      u_t(x)                    the marginal velocity E[ṡ x_0 + σ̇ ε | x_t = x]
========================  ========================  ==============================================

The linear path s = 1 − t, σ = t is rectified flow / the conditional optimal-transport path; its
target is ε − x_0, a constant along each path. Regressing a network on the conditional velocity
(:func:`flow_matching_loss`) learns the marginal u_t, because the minimiser of a squared loss is
the conditional expectation (Lipman et al. 2023, Thm. 2). With Tweedie's formulas
E[ε | x_t] = −σ ∇log p_t and E[x_0 | x_t] = (x_t + σ² ∇log p_t) / s,

    u_t(x) = (ṡ / s) x + (ṡ σ² / s − σ σ̇) ∇log p_t(x)          (:func:`velocity_from_score`)

which, for the VP path (s(t) of the VP SDE), is exactly the probability-flow ODE's drift
f − ½ g² ∇log p_t (Song et al. 2021, Eq. 13): diffusion's deterministic sampler *is* a flow on
a Gaussian path, and these paths are the stochastic interpolants of Albergo & Vanden-Eijnden.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ._validation import check_tensor
from .broadcast import expand_like
from .data2d import GaussianMixture
from .fitting import fit, minibatch
from .forward import randn_like
from .sde import VPSDE
from .training import TrainResult, _check_labels

Coefficient = Callable[[torch.Tensor], torch.Tensor]
VelocityModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class GaussianPath:
    """x_t = s(t) x_0 + σ(t) ε: four functions of float64 times ``(B,)`` returning ``(B,)``."""

    name: str
    scale: Coefficient
    std: Coefficient
    d_scale: Coefficient
    d_std: Coefficient


def linear_path() -> GaussianPath:
    """s = 1 − t, σ = t: rectified flow (Liu et al. 2023) and the conditional OT path (Lipman et al. 2023)."""
    return GaussianPath("linear", lambda t: 1.0 - t, lambda t: t, lambda t: -torch.ones_like(t),
                        lambda t: torch.ones_like(t))


def vp_path(sde: VPSDE | None = None) -> GaussianPath:
    """The VP SDE's marginals as a path: s = exp(−½∫β), σ = √(1 − s²) (Song et al. 2021, Eq. 29)."""
    sde = VPSDE() if sde is None else sde

    def scale(t):
        return sde.log_mean_coeff(t).exp()

    def std(t):
        return (-torch.expm1(2 * sde.log_mean_coeff(t))).sqrt()

    def d_scale(t):
        return -0.5 * sde.beta(t) * scale(t)

    def d_std(t):
        return -scale(t) * d_scale(t) / std(t)

    return GaussianPath("vp", scale, std, d_scale, d_std)


def _times(t: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(t, dtype=torch.float64, device=x.device)
    t = t.expand(x.shape[0]) if t.ndim == 0 else t
    if t.shape != (x.shape[0],):
        raise ValueError(f"t must be a float or a tensor of shape ({x.shape[0]},), got {tuple(t.shape)}")
    if torch.any((t < 0) | (t > 1)):
        raise ValueError("times t must lie in [0, 1] (0: data, 1: noise)")
    return t


def interpolate(path: GaussianPath, x0: torch.Tensor, eps: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """x_t = s(t) x_0 + σ(t) ε, shaped like ``x0``."""
    t = _times(t, x0)
    return expand_like(path.scale(t), x0) * x0 + expand_like(path.std(t), x0) * eps


def conditional_velocity(path: GaussianPath, x0: torch.Tensor, eps: torch.Tensor,
                         t: float | torch.Tensor) -> torch.Tensor:
    """d x_t / dt = ṡ(t) x_0 + σ̇(t) ε along one path; ε − x_0 for the linear path."""
    t = _times(t, x0)
    return expand_like(path.d_scale(t), x0) * x0 + expand_like(path.d_std(t), x0) * eps


def velocity_from_score(path: GaussianPath, x: torch.Tensor, t: float | torch.Tensor,
                        score: torch.Tensor) -> torch.Tensor:
    """u_t(x) = (ṡ/s) x + (ṡ σ²/s − σ σ̇) ∇log p_t(x): the marginal velocity written through the score.

    Valid for t < 1 (s > 0); for the VP path it equals the probability-flow ODE drift.
    """
    t = _times(t, x)
    s, sigma, ds, dsigma = path.scale(t), path.std(t), path.d_scale(t), path.d_std(t)
    return expand_like(ds / s, x) * x + expand_like(ds * sigma**2 / s - sigma * dsigma, x) * score


def mixture_velocity(gmm: GaussianMixture, path: GaussianPath) -> VelocityModel:
    """The exact marginal velocity ``(x, t) -> u_t(x)`` of ``gmm`` pushed along ``path``, for t ∈ [0, 1].

    Per component k, x_t ~ N(s μ_k, C_k) with C_k = s² Σ_k + σ² I, and E[x_0 | x_t, k] =
    μ_k + s Σ_k C_k⁻¹(x − s μ_k), E[ε | x_t, k] = σ C_k⁻¹(x − s μ_k); u_t is the
    responsibility-weighted sum of ṡ E[x_0 | ·] + σ̇ E[ε | ·]. No division by s, so t = 1 is fine.
    """

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = _times(t, x)
        a, s = path.scale(t), path.std(t)
        log_joint, solved = gmm._scaled_terms(x, a.clamp_min(1e-300), s)  # (B, K), C⁻¹(x − aμ): (B, K, D)
        resp = torch.softmax(log_joint, dim=1).unsqueeze(-1)  # (B, K, 1)
        a3, s3 = a.reshape(-1, 1, 1), s.reshape(-1, 1, 1)
        x0_k = gmm.means.to(x.device) + a3 * torch.einsum("kde,bke->bkd", gmm.covs.to(x.device), solved)
        eps_k = s3 * solved
        u = path.d_scale(t).reshape(-1, 1, 1) * x0_k + path.d_std(t).reshape(-1, 1, 1) * eps_k
        return (resp * u).sum(1).to(x.dtype)  # (B, D)

    return velocity


class ClippedVelocity:
    """A linear-path velocity model whose implied x̂₀ = x − t v̂ is clipped to ``[low, high]``.

    The flow counterpart of :class:`~diffusion_lab.ClippedEps`: with ε̂ recomputed from the clipped
    x̂₀ (x = (1 − t) x̂₀ + t ε̂), the velocity becomes v = ε̂ − x̂₀ = (x − clip(x̂₀)) / t. At t = 0
    (x is data already) the velocity is returned unchanged.
    """

    def __init__(self, velocity_model: VelocityModel, low: float, high: float) -> None:
        if not low < high:
            raise ValueError(f"need low < high, got {low} and {high}")
        self.velocity_model, self.low, self.high = velocity_model, low, high

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        v = self.velocity_model(x, t)
        t_x = expand_like(t, x)
        x0_hat = (x - t_x * v).clamp(self.low, self.high)
        return torch.where(t_x > 0, (x - x0_hat) / t_x.clamp_min(1e-12), v)


class ContinuousTime(nn.Module):
    """Feed continuous times t ∈ [0, 1] to a network built for integer steps: ``net(x, scale·t[, y])``.

    The sinusoidal embeddings of :class:`~diffusion_lab.TimeMLP` and :class:`~diffusion_lab.UNet`
    resolve steps 0..1000; scaling t by 1000 uses the same frequencies for flow matching.
    """

    def __init__(self, net: nn.Module, scale: float = 1000.0) -> None:
        super().__init__()
        self.net, self.scale = net, float(scale)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        t = (t * self.scale).to(torch.float32)
        return self.net(x, t) if y is None else self.net(x, t, y)


def flow_matching_loss(
    model: VelocityModel,
    x0: torch.Tensor,
    *,
    path: GaussianPath | None = None,
    t: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Conditional flow matching ‖v_θ(x_t, t) − (ṡ x_0 + σ̇ ε)‖², averaged over dimensions: ``(B,)``.

    Lipman et al. (2023), Eq. 9; with the default linear path the target is ε − x_0 (Liu et al.
    2023, Eq. 1). t ~ U(0, 1) and ε ~ N(0, I) are drawn from ``generator`` unless given; passing
    ``noise`` paired with ``x0`` (e.g. from :func:`reflow_pairs`) trains on that coupling instead.
    """
    check_tensor("x0", x0)
    path = linear_path() if path is None else path
    if t is None:
        t = torch.rand(x0.shape[0], generator=generator, device=x0.device, dtype=torch.float64)
    t = _times(t, x0)
    eps = randn_like(x0, generator) if noise is None else noise
    x_t = interpolate(path, x0, eps, t)
    target = conditional_velocity(path, x0, eps, t)
    return (model(x_t, t) - target).pow(2).flatten(1).mean(1)


def train_flow_matching(
    model: nn.Module,
    data: torch.Tensor,
    *,
    steps: int,
    batch_size: int = 256,
    lr: float = 1e-3,
    warmup: int = 0,
    ema_decay: float = 0.995,
    seed: int = 0,
    path: GaussianPath | None = None,
    noise: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    label_dropout: float = 0.0,
    progress: bool = False,
) -> TrainResult:
    """Train a velocity network ``model(x, t[, y])`` (t ∈ [0, 1], e.g. :class:`ContinuousTime`) by flow matching.

    Args:
        data: x_0 of shape ``(N, ...)``.
        noise: optional ε paired with each row of ``data`` (a fixed coupling, for reflow);
            None draws independent noise every step.
        labels, label_dropout: class labels and the probability of replacing them by the null
            label, as in :func:`~diffusion_lab.train` (classifier-free guidance training).
    """
    check_tensor("data", data)
    inner = model.net if isinstance(model, ContinuousTime) else model
    labels = _check_labels(labels, data, 0.0, inner)  # shapes and dtype; the null label is checked here
    null = getattr(inner, "null_label", getattr(inner, "num_classes", None))
    if not 0.0 <= label_dropout < 1.0 or (label_dropout > 0 and (labels is None or null is None)):
        raise ValueError(f"label_dropout must lie in [0, 1) and needs labels and a class-conditional model "
                         f"(a null label), got {label_dropout}")
    if noise is not None and noise.shape != data.shape:
        raise ValueError(f"noise must be shaped like data {tuple(data.shape)}, got {tuple(noise.shape)}")

    def batch_loss(generator: torch.Generator) -> torch.Tensor:
        index = torch.randint(0, data.shape[0], (batch_size,), generator=generator, device=data.device)
        x0, eps = data[index], (noise[index] if noise is not None else None)
        net = model
        if labels is not None:
            y = labels[index]
            if label_dropout > 0:
                drop = torch.rand(y.shape, generator=generator, device=y.device) < label_dropout
                y = torch.where(drop, torch.full_like(y, null), y)
            net = lambda x, t: model(x, t, y)  # noqa: E731
        return flow_matching_loss(net, x0, path=path, noise=eps, generator=generator)

    return fit(model, batch_loss, steps=steps, lr=lr, warmup=warmup, ema_decay=ema_decay, seed=seed,
               progress=progress, desc="flow matching")


@torch.no_grad()
def reflow_pairs(velocity_model: VelocityModel, noise: torch.Tensor, *, steps: int = 32,
                 batch_size: int = 4096) -> torch.Tensor:
    """The data end x_0 of the flow started at each ``noise`` row: the coupling (x_0, ε) of reflow.

    Rectified flow's second stage (Liu et al. 2023, Algorithm 1) re-trains on these pairs; the new
    paths cross less, so the flow is straighter and needs fewer steps.
    """
    from .samplers.flow import flow_heun_sample

    return torch.cat([flow_heun_sample(velocity_model, noise[i:i + batch_size], steps=steps)
                      for i in range(0, noise.shape[0], batch_size)])


def straightness(trajectory: torch.Tensor) -> float:
    """Liu et al.'s (2023, Def. 3.2) S = ∫ E‖(x_1 − x_0) − ẋ_t‖² dt on a uniform-step trajectory.

    ``trajectory`` is ``(N + 1, B, ...)`` from t = 1 to t = 0 (``return_trajectory=True`` of the
    flow samplers); 0 means every path is a straight line travelled at constant speed.
    """
    check_tensor("trajectory", trajectory)
    n = trajectory.shape[0] - 1
    steps = (trajectory[1:] - trajectory[:-1]) * n  # (N, B, ...): finite-difference velocity (per unit t)
    total = trajectory[-1] - trajectory[0]  # (B, ...)
    return float((steps - total).pow(2).flatten(2).sum(-1).mean())
