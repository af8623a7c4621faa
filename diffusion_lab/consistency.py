"""Consistency models (Song et al. 2023): one network call from noise to data, or a few.

The probability-flow ODE maps every x_t on a trajectory to the same endpoint x_ε at the *boundary
time* ε (the data end: step 0 of a schedule, ``t_end`` of an SDE). The **consistency function**
f(x_t, t) = x_ε is that map; a network f_θ learns it, and sampling is f_θ(x_T, T), one call.

==============  ============================  ==================================================
code            symbol                        meaning
==============  ============================  ==================================================
``kappa``       κ = σ / s                     the noise level of y = x / s (Karras et al. 2022)
``sigma_data``  σ_data                        the data's std (EDM's and the paper's 0.5 for images)
``c_skip``      c_skip(κ)                     σ_data² / ((κ − κ_ε)² + σ_data²)  (Song et al. 2023, Eq. 7 / App. C)
``c_out``       c_out(κ)                      σ_data (κ − κ_ε) / √(σ_data² + κ²)
``c_in``        c_in                          1 / √(σ_data² s² + σ²): unit-variance network input
==============  ============================  ==================================================

The parameterisation f_θ(x_t, t) = s_ε [c_skip(κ) x_t / s + c_out(κ) F_θ(c_in x_t, t)] has
c_skip(κ_ε) = 1 and c_out(κ_ε) = 0, so f_θ(x, ε) = x holds *exactly* for any network F_θ (the
boundary condition, their Eq. 5). It is written in y = x / s so that it is the paper's VE form on
any process; the coefficients of x_t are computed without dividing by s (bounded as s → 0).

A consistency model is an ordinary :class:`~diffusion_lab.Denoiser` with ``predicts="x0"`` over a
:class:`ConsistencyNet`: its x̂₀ *is* f_θ, so the book's samplers and metrics apply unchanged.
Training (Song et al. 2023, Algorithms 2 and 3) pulls f_θ at t_{n+1} towards the target network
f_θ⁻ (an EMA of θ, no gradient) at t_n on the grid ε = t_0 < t_1 < ... < t_N = T:

* **distillation (CD)**: x_{t_n} is one step of the teacher's probability-flow ODE from x_{t_{n+1}}
  (:func:`~diffusion_lab.ddim_step`, Euler's method in Karras' form);
* **training (CT)**: no teacher; x_{t_n} = s_n x_0 + σ_n z with the *same* z as x_{t_{n+1}}, the
  unbiased one-sample estimate of that ODE step (their Theorem 2).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .broadcast import expand_like
from .denoiser import Denoiser, DenoiserBase, check_denoiser
from .fitting import EMA, TrainResult, fit, minibatch
from .forward import randn_like
from .samplers.common import Trajectory, batch_time, start_state
from .samplers.discrete import ddim_step
from .validation import check_float, check_int, check_tensor


def boundary_time(process) -> float:
    """ε, where the consistency function is the identity: 0 on a schedule, ``t_end`` in continuous time."""
    return 0 if process.discrete else float(process.t_end)


def consistency_coefficients(process, t: torch.Tensor, sigma_data: float = 0.5
                             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(a_skip, a_out, c_in), float64 ``(B,)``, with f_θ(x_t, t) = a_skip x_t + a_out F_θ(c_in x_t, t).

    a_skip = s_ε c_skip(κ) / s and a_out = s_ε c_out(κ) (Song et al. 2023, App. C, in y = x / s).
    """
    sigma_data = check_float("sigma_data", sigma_data, 0.0, low_open=True)
    s, sigma = process.scale_std(t)
    s_eps, sigma_eps = _boundary_scale_std(process)
    kappa_eps = sigma_eps / s_eps
    gap = sigma - s * kappa_eps  # s (κ − κ_ε)
    norm = (sigma_data**2 * s**2 + sigma**2).sqrt()  # s √(σ_data² + κ²)
    a_skip = s_eps * sigma_data**2 * s / (gap**2 + sigma_data**2 * s**2)
    a_out = s_eps * sigma_data * gap / norm
    return a_skip, a_out, 1.0 / norm


def _boundary_scale_std(process) -> tuple[float, float]:
    """(s_ε, σ_ε): the signal scale and noise std at the boundary time ε."""
    eps = torch.tensor([boundary_time(process)], dtype=torch.long if process.discrete else torch.float64)
    s_eps, sigma_eps = process.scale_std(eps)
    return float(s_eps), float(sigma_eps)


class ConsistencyNet(nn.Module):
    """f_θ(x_t, t) = a_skip x_t + a_out F_θ(c_in x_t, t): ``(x, t) -> tensor shaped like x``.

    Args:
        net: F_θ, ``(x, t) -> tensor shaped like x`` (e.g. a :class:`~diffusion_lab.TimeMLP`).
        process: the noise process whose times ``t`` it takes (the teacher's, for distillation).
        sigma_data: σ_data, the data's standard deviation.
    """

    def __init__(self, net: nn.Module, process, sigma_data: float = 0.5) -> None:
        super().__init__()
        self.net, self.process = net, process
        self.sigma_data = check_float("sigma_data", sigma_data, 0.0, low_open=True)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a_skip, a_out, c_in = (expand_like(c, x) for c in consistency_coefficients(self.process, t, self.sigma_data))
        # Boundary condition: a_skip = 1 and a_out = 0 at t = ε, whatever F returns.
        return a_skip * x + a_out * self.net(c_in * x, t)


def consistency_model(net: nn.Module, process, sigma_data: float = 0.5) -> Denoiser:
    """The consistency model of network F_θ on ``process``: a Denoiser whose x̂₀ is f_θ(x_t, t)."""
    return Denoiser(ConsistencyNet(net, process, sigma_data), process, predicts="x0")


def consistency_grid(process, n_steps: int) -> torch.Tensor:
    """ε = t_0 < t_1 < ... < t_N = T, evenly spaced: shape ``(N + 1,)`` (long steps on a schedule)."""
    top = process.T if process.discrete else None
    n_steps = check_int("n_steps", n_steps, 1, top)
    return process.time_grid(n_steps).flip(0)


def _pair(process, x0: torch.Tensor, n_steps: int, generator: torch.Generator | None):
    """Adjacent times t_n < t_{n+1} ``(B,)`` with n ~ U{0..N−1}, the noise z and x_{t_{n+1}} = s x_0 + σ z."""
    grid = consistency_grid(process, n_steps).to(x0.device)
    n = torch.randint(0, n_steps, (x0.shape[0],), generator=generator, device=x0.device)
    t_n, t_next = grid[n], grid[n + 1]
    z = randn_like(x0, generator)
    s, sigma = process.scale_std(t_next)
    return t_n, t_next, z, expand_like(s, x0) * x0 + expand_like(sigma, x0) * z


def consistency_distillation_loss(model: Denoiser, target: DenoiserBase, teacher: DenoiserBase, x0: torch.Tensor, *,
                                  n_steps: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """‖f_θ(x_{t_{n+1}}, t_{n+1}) − f_θ⁻(x̂_{t_n}, t_n)‖², averaged over dimensions: shape ``(B,)``.

    x̂_{t_n} is one Euler step of the teacher's probability-flow ODE (a DDIM step) from x_{t_{n+1}}
    (Song et al. 2023, Algorithm 2, with d = squared L2 and λ = 1).
    """
    check_denoiser(teacher)
    check_tensor("x0", x0, floating=True, ndim_min=2, finite=True)
    t_n, t_next, _, x_next = _pair(model.process, x0, n_steps, generator)
    with torch.no_grad():
        # Teacher ODE step.
        x_n = ddim_step(teacher, x_next, t_next, t_n)
        goal = target.x0(x_n, t_n)
    return (model.x0(x_next, t_next) - goal).pow(2).flatten(1).mean(1)


def consistency_training_loss(model: Denoiser, target: DenoiserBase, x0: torch.Tensor, *, n_steps: int,
                              generator: torch.Generator | None = None) -> torch.Tensor:
    """‖f_θ(x_0 s_{n+1} + σ_{n+1} z, t_{n+1}) − f_θ⁻(x_0 s_n + σ_n z, t_n)‖², same z: shape ``(B,)``.

    Song et al. 2023, Algorithm 3 (no teacher): the shared noise z replaces the teacher's ε̂.
    """
    check_tensor("x0", x0, floating=True, ndim_min=2, finite=True)
    t_n, t_next, z, x_next = _pair(model.process, x0, n_steps, generator)
    s_n, sigma_n = model.process.scale_std(t_n)
    with torch.no_grad():
        # Same noise, one step less.
        goal = target.x0(expand_like(s_n, x0) * x0 + expand_like(sigma_n, x0) * z, t_n)
    return (model.x0(x_next, t_next) - goal).pow(2).flatten(1).mean(1)


def train_consistency(model: Denoiser, data: torch.Tensor, *, teacher: DenoiserBase | None = None, n_steps: int,
                      steps: int, batch_size: int = 256, lr: float = 1e-3, warmup: int = 0, target_decay: float = 0.95,
                      ema_decay: float = 0.999, seed: int = 0, progress: bool = False) -> TrainResult:
    """Consistency distillation (with ``teacher``) or consistency training (without), through :func:`~diffusion_lab.fit`.

    Args:
        model: a consistency model (:func:`consistency_model`); its network is trained in place.
        data: training examples x_0, shape ``(N, ...)``.
        teacher: a denoiser on the same process (CD), or None (CT).
        n_steps: N, the number of intervals of the grid ε = t_0 < ... < t_N = T.
        target_decay: μ of the target network θ⁻ ← μ θ⁻ + (1 − μ) θ, updated before every step.
        ema_decay: the EMA that :func:`fit` keeps for sampling (``result.denoiser``).
    """
    model = check_denoiser(model)
    if not isinstance(getattr(model, "net", None), ConsistencyNet):
        raise TypeError("model must be a consistency model: build it with dl.consistency_model(net, process)")
    check_tensor("data", data, floating=True, ndim_min=2, finite=True)
    batch_size = check_int("batch_size", batch_size, 1)
    grid = consistency_grid(model.process, n_steps)  # validates n_steps
    if teacher is not None:
        same = [torch.equal(a, b) for a, b in zip(check_denoiser(teacher).process.scale_std(grid),
                                                  model.process.scale_std(grid))]
        if not all(same):
            raise ValueError("the teacher and the consistency model must use the same noise process")
    target_ema = EMA(model.net, target_decay)
    target = model.replace(net=target_ema.ema_model)

    def batch_loss(generator: torch.Generator) -> torch.Tensor:
        target_ema.update(model.net)  # θ⁻ follows θ after each optimiser step
        x0, = minibatch(data, batch_size, generator)
        if teacher is None:
            return consistency_training_loss(model, target, x0, n_steps=n_steps, generator=generator)
        return consistency_distillation_loss(model, target, teacher, x0, n_steps=n_steps, generator=generator)

    result = fit(model.net, batch_loss, steps=steps, lr=lr, warmup=warmup, ema_decay=ema_decay, grad_clip=1.0,
                 seed=seed, progress=progress, desc="consistency " + ("distillation" if teacher else "training"))
    result.denoiser = model.replace(net=result.ema_model)
    return result


def consistency_times(process, steps: int | Sequence) -> torch.Tensor:
    """The decreasing times T = τ_1 > ... > τ_S > ε at which the multistep sampler calls f_θ: ``(S,)``.

    ``steps``: an int S (the process's evenly spaced grid, without its last time ε), or explicit times.
    """
    eps, top = boundary_time(process), (process.T if process.discrete else process.t_high)
    if isinstance(steps, (int,)) or (hasattr(steps, "ndim") and getattr(steps, "ndim", 1) == 0):
        n = check_int("steps", steps, 1, process.T if process.discrete else None)
        return process.time_grid(n)[:-1]
    times = torch.as_tensor(list(steps), dtype=torch.long if process.discrete else torch.float64).flatten()
    if times.numel() == 0:
        raise ValueError("steps must hold at least one time")
    if bool(((times <= eps) | (times > top)).any()) or bool((times[1:] >= times[:-1]).any()):
        raise ValueError(f"steps must be decreasing times in ({eps:g}, {top:g}], got {times.tolist()}")
    return times


@torch.no_grad()
def consistency_sample(model: DenoiserBase, x_T: torch.Tensor | Sequence[int], *, steps: int | Sequence = 1,
                       generator: torch.Generator | None = None, return_trajectory: bool = False
                       ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Multistep consistency sampling (Song et al. 2023, Algorithm 1): S calls of f_θ = ``model.x0``.

    x ← f_θ(x_T, τ_1); then for τ_2 > ... > τ_S: re-noise x_τ = s_τ (x / s_ε + √(κ_τ² − κ_ε²) z) and
    denoise x ← f_θ(x_τ, τ). ``return_trajectory`` also returns x after each call, ``(S + 1, B, ...)``.
    """
    model = check_denoiser(model)
    process = model.process
    times = consistency_times(process, steps)
    x = start_state(process, x_T, generator)
    s_eps, sigma_eps = _boundary_scale_std(process)
    trajectory = Trajectory(x, return_trajectory)
    for i, t in enumerate(times):
        t_b = batch_time(t, x)
        if i > 0:
            # Re-noise to τ.
            s, sigma = (expand_like(c, x) for c in process.scale_std(t_b))
            x = (s / s_eps) * x + (sigma**2 - (s * sigma_eps / s_eps) ** 2).clamp_min(0.0).sqrt() * randn_like(x, generator)
        # Denoise.
        x = model.x0(x, t_b)
        trajectory.add(x)
    return trajectory.result(x)
