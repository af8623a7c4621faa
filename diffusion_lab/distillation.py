"""Progressive distillation (Salimans & Ho 2022): halve the number of deterministic sampling steps.

A *student* learns to take one DDIM step (η = 0) where its *teacher* takes two. On the teacher's
grid of 2N steps 0 = τ_0 < τ_1 < ... < τ_{2N} = T, the student jumps τ_{2i} → τ_{2i−2} in one step
and the teacher goes τ_{2i} → τ_{2i−1} → τ_{2i−2}. With s_t = √ᾱ_t and σ_t = √(1 − ᾱ_t), the
x̂₀ for which a single DDIM step from z_t lands on the teacher's z'' (Salimans & Ho 2022, Alg. 2) is

    x̃ = (z'' − (σ''/σ_t) z_t) / (s'' − (σ''/σ_t) s_t),

and the student regresses it with the *truncated SNR* weight max(SNR(t), 1) (their Sec. 4).
Once trained, the student is the next round's teacher: 2N → N → N/2 → ... → 1 step.

The student predicts **v** by default: an ε-prediction cannot give x̂₀ at SNR ≈ 0, where the
few-step sampler starts (their Sec. 4).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ._validation import check_choice, check_tensor
from .fitting import fit
from .forward import q_sample
from .parameterization import PARAMETERIZATIONS, eps_from_output, x0_from_eps
from .samplers._steps import sampling_steps
from .schedules import NoiseSchedule
from .training import TrainResult

EpsModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def ddim_step(x_t: torch.Tensor, eps_hat: torch.Tensor, alpha_bar: torch.Tensor,
              alpha_bar_next: torch.Tensor) -> torch.Tensor:
    """Deterministic DDIM (Song et al. 2021, Eq. 12 with σ = 0) from ᾱ to ᾱ', per example.

    ``alpha_bar`` and ``alpha_bar_next`` are broadcast to x's shape, ``(B, 1, ..., 1)``.
    """
    x0_hat = x0_from_eps(x_t, eps_hat, alpha_bar)
    return alpha_bar_next.sqrt() * x0_hat + (1.0 - alpha_bar_next).sqrt() * eps_hat


def x0_from_output(parameterization: str, output: torch.Tensor, x_t: torch.Tensor,
                   alpha_bar: torch.Tensor) -> torch.Tensor:
    """x̂₀ from a network output; for v directly, x̂₀ = √ᾱ x_t − √(1 − ᾱ) v̂, exact at SNR ≈ 0."""
    check_choice("parameterization", parameterization, PARAMETERIZATIONS)
    if parameterization == "x0":
        return output
    if parameterization == "v":
        return alpha_bar.sqrt() * x_t - (1.0 - alpha_bar).sqrt() * output
    return x0_from_eps(x_t, eps_from_output(parameterization, output, x_t, alpha_bar), alpha_bar)


def distillation_grid(schedule: NoiseSchedule, student_steps: int) -> torch.Tensor:
    """The teacher's grid (0, τ_1, ..., τ_{2N}) for a student of N steps: a long tensor ``(2N + 1,)``.

    Uniform grids nest: the student's grid ``sampling_steps(schedule, N)`` is every other point.
    """
    if isinstance(student_steps, bool) or not isinstance(student_steps, int) or student_steps < 1:
        raise ValueError(f"student_steps must be a positive int, got {student_steps!r}")
    return torch.tensor((0,) + sampling_steps(schedule, 2 * student_steps))


@torch.no_grad()
def distillation_target(teacher: EpsModelFn, schedule: NoiseSchedule, z_t: torch.Tensor, t: torch.Tensor,
                        t_mid: torch.Tensor, t_next: torch.Tensor) -> torch.Tensor:
    """x̃: the x̂₀ for which one DDIM step t → t_next equals the teacher's two steps t → t_mid → t_next.

    Salimans & Ho (2022), Algorithm 2. ``t``, ``t_mid``, ``t_next`` are long steps ``(B,)`` with
    t > t_mid > t_next ≥ 0; ``teacher`` is an ε-model ``(x_t, t) -> ε̂``.
    """
    check_tensor("z_t", z_t)
    if not (torch.all(t > t_mid) and torch.all(t_mid > t_next) and torch.all(t_next >= 0)):
        raise ValueError("need t > t_mid > t_next >= 0 for every example")
    ab_t, ab_mid, ab_next = (schedule.gather("alpha_bar", s, z_t) for s in (t, t_mid, t_next))
    # Two teacher steps.
    z_mid = ddim_step(z_t, teacher(z_t, t), ab_t, ab_mid)
    z_next = ddim_step(z_mid, teacher(z_mid, t_mid), ab_mid, ab_next)
    # Solve one DDIM step for x̂₀.
    ratio = (1.0 - ab_next).sqrt() / (1.0 - ab_t).sqrt()
    return (z_next - ratio * z_t) / (ab_next.sqrt() - ratio * ab_t.sqrt())


def progressive_distillation_loss(student: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                                  teacher: EpsModelFn, schedule: NoiseSchedule, x0: torch.Tensor, *,
                                  student_steps: int, parameterization: str = "v",
                                  generator: torch.Generator | None = None) -> torch.Tensor:
    """max(SNR(t), 1) · ‖x̂₀(student) − x̃‖², averaged over dimensions: shape ``(B,)``.

    Draws i ~ U{1..N} per example and t = τ_{2i} on :func:`distillation_grid`, and z_t ~ q(z_t | x_0).
    """
    grid = distillation_grid(schedule, student_steps).to(x0.device)
    i = torch.randint(1, student_steps + 1, (x0.shape[0],), generator=generator, device=x0.device)
    t, t_mid, t_next = grid[2 * i], grid[2 * i - 1], grid[2 * i - 2]
    z_t = q_sample(schedule, x0, t, generator=generator)
    target = distillation_target(teacher, schedule, z_t, t, t_mid, t_next)
    alpha_bar = schedule.gather("alpha_bar", t, z_t)
    x0_hat = x0_from_output(parameterization, student(z_t, t), z_t, alpha_bar)
    weight = schedule.gather("snr", t, z_t).clamp_min(1.0).flatten()  # truncated SNR weighting: (B,)
    return weight * (x0_hat - target).pow(2).flatten(1).mean(1)


def distill(student: nn.Module, teacher: EpsModelFn, schedule: NoiseSchedule, data: torch.Tensor, *,
            student_steps: int, steps: int, batch_size: int = 128, lr: float = 1e-4, warmup: int = 0,
            ema_decay: float = 0.99, parameterization: str = "v", seed: int = 0,
            progress: bool = False) -> TrainResult:
    """One round of progressive distillation: train ``student`` (in place) to sample in ``student_steps``
    DDIM steps what ``teacher`` samples in twice as many.

    Args:
        student: a network ``(x, t) -> output`` (usually a copy of the teacher's network),
            read as ``parameterization``; sample from it with
            ``ddim_sample(EpsModel(student, schedule, parameterization), schedule, shape, steps=student_steps)``.
        teacher: an ε-model on ``schedule`` (wrap a v-student of the previous round in
            :class:`~diffusion_lab.EpsModel`).
        data: training examples x_0, shape ``(N, ...)``.
    """
    check_tensor("data", data)
    check_choice("parameterization", parameterization, PARAMETERIZATIONS)

    def batch_loss(generator: torch.Generator) -> torch.Tensor:
        index = torch.randint(0, data.shape[0], (batch_size,), generator=generator, device=data.device)
        return progressive_distillation_loss(student, teacher, schedule, data[index], student_steps=student_steps,
                                             parameterization=parameterization, generator=generator)

    return fit(student, batch_loss, steps=steps, lr=lr, warmup=warmup, ema_decay=ema_decay, seed=seed,
               progress=progress, desc=f"distil to {student_steps} steps")
