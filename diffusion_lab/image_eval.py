"""Judging an image diffusion model: named samplers at a given cost, FLD against a floor, guided accuracy.

One place that turns "DDPM with 1000 steps", "DDIM with 50" or "DPM-Solver++(2M) with 20" into
sampler calls on images, in batches and on any device, so that the image chapter, the benchmarks
and the GPU results table measure the same thing.

==============  ===============================================================  ==============
sampler name    what runs                                                         NFE
==============  ===============================================================  ==============
``ddpm``        DDPM ancestral sampling (σ² = β̃) on the schedule respaced to S    S
                steps, with x̂₀ clipped to [−1, 1] as in Ho et al.'s code
``ddim``        DDIM, η = 0, on S evenly spaced steps                             S
``dpm++2m``     DPM-Solver++(2M), S steps                                         S
``heun``        Karras et al.'s Heun, S steps                                     2S − 1
==============  ===============================================================  ==============
"""

from __future__ import annotations

import torch
from torch import nn

from ._validation import check_choice
from .cfg import GuidedEps
from .lenet import predict
from .respacing import RespacedModel, respace
from .samplers import ddim_sample, ddpm_sample, dpm_solver_2m_sample, heun_sample
from .sample_quality import fld, fld_floor
from .schedules import NoiseSchedule
from .thresholding import ClippedEps

IMAGE_SAMPLERS = ("ddpm", "ddim", "dpm++2m", "heun")


def nfe(sampler: str, steps: int) -> int:
    """Number of network evaluations of ``sampler`` with ``steps`` steps (unguided; CFG doubles the batch)."""
    check_choice("image sampler", sampler, IMAGE_SAMPLERS)
    return 2 * steps - 1 if sampler == "heun" else steps


def _sample_batch(eps_model, schedule: NoiseSchedule, x_T: torch.Tensor, sampler: str, steps: int,
                  generator: torch.Generator) -> torch.Tensor:
    if sampler == "ddpm":
        respaced, tau = respace(schedule, steps)
        eps = ClippedEps(RespacedModel(eps_model, tau), respaced)
        return ddpm_sample(eps, respaced, x_T, variance="beta_tilde", generator=generator)
    run = {"ddim": ddim_sample, "dpm++2m": dpm_solver_2m_sample, "heun": heun_sample}[sampler]
    return run(eps_model, schedule, x_T, steps=steps)


@torch.no_grad()
def sample_images(model: nn.Module, schedule: NoiseSchedule, n: int, *, sampler: str = "ddim", steps: int = 50,
                  labels: torch.Tensor | None = None, guidance_scale: float = 0.0, batch_size: int = 1000,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` images from a UNet (``model.in_channels``, ``model.image_size``) on the model's device, in [−1, 1].

    Args:
        model: a network ``(x, t[, y]) -> ε̂``; class-conditional models (``num_classes`` set) are
            sampled with the null class when ``labels`` is None, else with classifier-free
            guidance of scale ``guidance_scale`` (:class:`~diffusion_lab.cfg.GuidedEps`).
        sampler, steps: one of :data:`IMAGE_SAMPLERS` (see the module table) and its number of steps.
        labels: the requested classes, shape ``(n,)``, or None.
        batch_size: images per sampler call (memory).
        generator: a CPU generator for the starting noise and DDPM's noise; the results do not
            depend on ``batch_size`` for the deterministic samplers (DDPM's later noise does).

    Returns:
        ``(n, C, H, W)`` float32 on the CPU, clamped to [−1, 1].
    """
    check_choice("image sampler", sampler, IMAGE_SAMPLERS)
    if not isinstance(steps, int) or not 1 <= steps <= schedule.T:
        raise ValueError(f"steps must be an int in 1..{schedule.T} (the schedule's T), got {steps!r}")
    if labels is not None and labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {tuple(labels.shape)}")
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    device = next(model.parameters()).device
    shape = (model.in_channels, model.image_size, model.image_size)
    conditional = getattr(model, "num_classes", None) is not None
    noise = torch.randn((n, *shape), generator=generator)  # all at once: independent of batch_size
    out = []
    for start in range(0, n, batch_size):
        b = min(batch_size, n - start)
        x_T = noise[start:start + b].to(device)
        if conditional:
            y = None if labels is None else labels[start:start + b].to(device)
            eps_model = GuidedEps(model, y, guidance_scale)
        elif labels is not None:
            raise ValueError("labels given, but the model is unconditional (num_classes is None)")
        else:
            eps_model = model
        batch_generator = torch.Generator(device=device).manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
        out.append(_sample_batch(eps_model, schedule, x_T, sampler, steps, batch_generator).float().clamp(-1, 1).cpu())
    return torch.cat(out)


def fld_report(classifier: nn.Module, samples: torch.Tensor, train_images: torch.Tensor, test_images: torch.Tensor,
               *, floor_repeats: int = 3, generator: torch.Generator | None = None) -> dict:
    """FLD of ``samples`` against the first ``len(samples)`` test images, with the real-vs-real floor
    (training vs test images at the same size, averaged over ``floor_repeats`` draws) and their ratio."""
    n = len(samples)
    if n > len(test_images):
        raise ValueError(f"{n} samples but only {len(test_images)} test images to compare them with")
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    floors = [fld_floor(classifier, train_images, test_images, n, generator=generator) for _ in range(floor_repeats)]
    floor = sum(floors) / len(floors)
    value = fld(classifier, samples, test_images[:n])
    return dict(n=n, fld=value, floor=floor, floors=floors, ratio=value / floor)


def guided_accuracy(model: nn.Module, schedule: NoiseSchedule, classifier: nn.Module, guidance_scales, *,
                    n_per_class: int = 100, sampler: str = "ddim", steps: int = 50, batch_size: int = 1000,
                    seed: int = 0) -> list[dict]:
    """For each guidance scale w, the fraction of class-conditional samples that ``classifier`` assigns
    to the requested class (classes 0..K−1, ``n_per_class`` each, the same starting noise for every w)."""
    num_classes = getattr(model, "num_classes", None)
    if num_classes is None:
        raise ValueError("guided accuracy needs a class-conditional model (num_classes is None)")
    asked = torch.arange(num_classes).repeat(n_per_class)
    rows = []
    for w in guidance_scales:
        samples = sample_images(model, schedule, len(asked), sampler=sampler, steps=steps, labels=asked,
                                guidance_scale=float(w), batch_size=batch_size,
                                generator=torch.Generator().manual_seed(seed))
        accuracy = float((predict(classifier, samples) == asked).double().mean())
        rows.append(dict(guidance_scale=float(w), accuracy=accuracy, n=len(asked)))
    return rows
