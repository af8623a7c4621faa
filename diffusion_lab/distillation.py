"""Progressive distillation (Salimans & Ho 2022): halve the number of deterministic sampling steps.

A *student* learns to take one DDIM step (η = 0) where its *teacher* takes two. On the teacher's
grid of 2N steps 0 = τ_0 < τ_1 < ... < τ_{2N} = T, the student jumps τ_{2i} → τ_{2i−2} in one step
and the teacher goes τ_{2i} → τ_{2i−1} → τ_{2i−2}. With s_t = √ᾱ_t and σ_t = √(1 − ᾱ_t), the
x̂₀ for which a single DDIM step from z_t lands on the teacher's z'' (Salimans & Ho 2022, Alg. 2) is

    x̃ = (z'' − (σ''/σ_t) z_t) / (s'' − (σ''/σ_t) s_t),

and the student regresses it with the *truncated SNR* weight max(SNR(t), 1) (their Sec. 4).
Once trained, the student is the next round's teacher: 2N → N → N/2 → ... → 1 step.

The student predicts **v** (``Denoiser(net, schedule, predicts="v")``): an ε-prediction cannot give
x̂₀ at SNR ≈ 0, where the few-step sampler starts (their Sec. 4). Teacher and student are both
:class:`~diffusion_lab.Denoiser` objects, and the teacher's two steps are
:func:`~diffusion_lab.ddim_step`, the sampler's own.
"""

from __future__ import annotations

import torch

from .denoiser import Denoiser, DenoiserBase, check_denoiser
from .fitting import TrainResult, fit, minibatch
from .forward import q_sample
from .samplers.discrete import ddim_step
from .schedules import NoiseSchedule
from .spacing import sampling_steps
from .validation import check_int, check_tensor


def distillation_grid(schedule: NoiseSchedule, student_steps: int) -> torch.Tensor:
    """The teacher's grid (0, τ_1, ..., τ_{2N}) for a student of N steps: a long tensor ``(2N + 1,)``.

    Uniform grids nest: the student's grid ``sampling_steps(schedule, N)`` is every other point.
    """
    student_steps = check_int("student_steps", student_steps, 1, schedule.T // 2)
    return torch.tensor((0,) + sampling_steps(schedule, 2 * student_steps))


@torch.no_grad()
def distillation_target(teacher: DenoiserBase, z_t: torch.Tensor, t: torch.Tensor, t_mid: torch.Tensor,
                        t_next: torch.Tensor) -> torch.Tensor:
    """x̃: the x̂₀ for which one DDIM step t → t_next equals the teacher's two steps t → t_mid → t_next.

    Salimans & Ho (2022), Algorithm 2. ``t``, ``t_mid``, ``t_next`` are long steps ``(B,)`` with
    t > t_mid > t_next ≥ 0.
    """
    teacher = check_denoiser(teacher)
    check_tensor("z_t", z_t, floating=True)
    if not (torch.all(t > t_mid) and torch.all(t_mid > t_next) and torch.all(t_next >= 0)):
        raise ValueError("need t > t_mid > t_next >= 0 for every example")
    # Two teacher steps.
    z_next = ddim_step(teacher, ddim_step(teacher, z_t, t, t_mid), t_mid, t_next)
    # Solve one DDIM step for x̂₀.
    s_t, sigma_t = teacher.process.scale_std(t)
    s_next, sigma_next = teacher.process.scale_std(t_next)
    ratio = sigma_next / sigma_t
    return (z_next - _column(ratio, z_t) * z_t) / _column(s_next - ratio * s_t, z_t)


def _column(coef: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return coef.to(like.dtype).reshape(-1, *([1] * (like.ndim - 1)))  # (B, 1, ..., 1)


def progressive_distillation_loss(student: Denoiser, teacher: DenoiserBase, x0: torch.Tensor, *,
                                  student_steps: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """max(SNR(t), 1) · ‖x̂₀(student) − x̃‖², averaged over dimensions: shape ``(B,)``.

    Draws i ~ U{1..N} per example and t = τ_{2i} on :func:`distillation_grid`, and z_t ~ q(z_t | x_0).
    """
    schedule = teacher.process
    grid = distillation_grid(schedule, student_steps).to(x0.device)
    i = torch.randint(1, student_steps + 1, (x0.shape[0],), generator=generator, device=x0.device)
    t, t_mid, t_next = grid[2 * i], grid[2 * i - 1], grid[2 * i - 2]
    z_t = q_sample(schedule, x0, t, generator=generator)
    target = distillation_target(teacher, z_t, t, t_mid, t_next)
    weight = schedule.gather("snr", t, z_t).clamp_min(1.0).flatten()  # truncated SNR weighting: (B,)
    return weight * (student.x0(z_t, t) - target).pow(2).flatten(1).mean(1)


def distill(student: Denoiser, teacher: DenoiserBase, data: torch.Tensor, *, student_steps: int, steps: int,
            batch_size: int = 128, lr: float = 1e-4, warmup: int = 0, ema_decay: float = 0.99, seed: int = 0,
            progress: bool = False) -> TrainResult:
    """One round of progressive distillation: train ``student.net`` (in place) to sample in ``student_steps``
    DDIM steps what ``teacher`` samples in twice as many.

    Args:
        student: a :class:`~diffusion_lab.Denoiser` on the teacher's schedule, usually over a copy of
            the teacher's network and predicting v; sample from it with
            ``ddim_sample(result.denoiser, shape, steps=student_steps)``.
        teacher: the previous round's denoiser (at first the trained model).
        data: training examples x_0, shape ``(N, ...)``.
    """
    check_tensor("data", data, floating=True, ndim_min=2, finite=True)
    batch_size = check_int("batch_size", batch_size, 1)

    def batch_loss(generator: torch.Generator) -> torch.Tensor:
        x0, = minibatch(data, batch_size, generator)
        return progressive_distillation_loss(student, teacher, x0, student_steps=student_steps, generator=generator)

    result = fit(student.net, batch_loss, steps=steps, lr=lr, warmup=warmup, ema_decay=ema_decay, grad_clip=1.0,
                 seed=seed, progress=progress, desc=f"distil to {student_steps} steps")
    result.denoiser = student.replace(net=result.ema_model)
    return result
