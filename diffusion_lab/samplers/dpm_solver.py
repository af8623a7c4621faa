"""DPM-Solver++(2M): a second-order multistep solver in data prediction (Lu et al. 2022, Algorithm 2).

Lu et al. write x_t = α_t x_0 + σ_t ε; here that is x_t = s x_0 + σ ε (for a schedule s = √ᾱ_t,
σ = √(1 − ᾱ_t)), and λ = log(s / σ) is half the log-SNR. With the model's x̂₀ and
h_i = λ_{t_i} − λ_{t_{i−1}}, one step is

    x_{t_i} = (σ_{t_i} / σ_{t_{i−1}}) x_{t_{i−1}} − s_{t_i} (e^{−h_i} − 1) D_i,
    D_i = (1 + 1/(2 r_i)) x̂₀(t_{i−1}) − 1/(2 r_i) x̂₀(t_{i−2}),   r_i = h_{i−1} / h_i,

with D_1 = x̂₀(t_0) on the first step (first order: DDIM). One model call per step. With an x̂₀
clip in the denoiser, this is DPM-Solver++ with thresholding, as its authors use it for images.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..denoiser import DenoiserBase, check_denoiser
from .common import Trajectory, batch_time, sampling_grid, start_state


@torch.no_grad()
def dpm_solver_2m_sample(denoiser: DenoiserBase, x_T: torch.Tensor | Sequence[int], *,
                         steps: int | Sequence[int] = 20, generator: torch.Generator | None = None,
                         return_trajectory: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Sample with DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2) on the grid of the denoiser's process.

    A final step to σ = 0 (t = 0 of a schedule), where λ = ∞, is first order (x_0 = x̂₀), as in the
    authors' implementation ("lower order final"). S steps cost S model calls.
    """
    denoiser = check_denoiser(denoiser)
    times = sampling_grid(denoiser, steps, None)
    scales, sigmas = (c.tolist() for c in denoiser.process.scale_std(times))
    lambdas = [math.log(s / sigma) if sigma > 0 else math.inf for s, sigma in zip(scales, sigmas)]
    x = start_state(denoiser.process, x_T, generator)
    trajectory = Trajectory(x, return_trajectory)
    x0_hat_prev, h_prev = None, None
    for i in range(len(times) - 1):
        x0_hat = denoiser.x0(x, batch_time(times[i], x))
        if sigmas[i + 1] == 0:
            # Final step to σ = 0: first order, x_0 = x̂₀.
            x = x0_hat
        else:
            h = lambdas[i + 1] - lambdas[i]
            if x0_hat_prev is None:
                # First step: first order (DPM-Solver++(1) = DDIM).
                D = x0_hat
            else:
                # 2nd-order multistep: extrapolate x̂₀ from the last two steps.
                r = h_prev / h
                D = (1.0 + 1.0 / (2.0 * r)) * x0_hat - 1.0 / (2.0 * r) * x0_hat_prev
            # DPM-Solver++ update (Lu et al. 2022), Eq. 9 with the exponential integrator.
            x = (sigmas[i + 1] / sigmas[i]) * x - scales[i + 1] * math.expm1(-h) * D
            x0_hat_prev, h_prev = x0_hat, h
        trajectory.add(x)
    return trajectory.result(x)
