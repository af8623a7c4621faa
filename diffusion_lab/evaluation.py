"""Evaluation helpers: named image samplers at a given cost, FLD against a floor, guided accuracy,
the guidance trade-off on toys, and the cost of a model (parameters, seconds per sample).

One place that turns "DDPM with 100 steps", "DDIM with 50" or "DPM-Solver++(2M) with 20" into
sampler calls on images, in batches and on any device, so that the image chapter, the benchmarks
and the GPU results table measure the same thing. Every sampler gets the same denoiser, so an x̂₀
clip (the image checkpoints ship with one, to the data range [−1, 1]) applies to all of them.

==============  =====================================================  =================
sampler name    what runs                                               NFE
==============  =====================================================  =================
``ddpm``        DDPM ancestral sampling (σ² = β̃) on S respaced steps    S
``ddim``        DDIM, η = 0, on S evenly spaced steps                   S
``dpm++2m``     DPM-Solver++(2M), S steps                                S
``heun``        Heun on the probability-flow ODE (Karras' form)          2S − 2
==============  =====================================================  =================
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .denoiser import Denoiser, DenoiserBase
from .image_metrics import fld, fld_floor
from .lenet import predict
from .metrics import energy_distance, mean_pairwise_distance
from .samplers import ddim_sample, ddpm_sample, dpm_solver_2m_sample, heun_sample, ode_nfe
from .validation import check_choice, check_generator, check_int

IMAGE_SAMPLERS = ("ddpm", "ddim", "dpm++2m", "heun")


def nfe(denoiser: DenoiserBase, sampler: str, steps: int) -> int:
    """Network evaluations of ``sampler`` with ``steps`` steps (unguided; guidance doubles the batch)."""
    check_choice("image sampler", sampler, IMAGE_SAMPLERS)
    return ode_nfe(denoiser.process, "heun", steps) if sampler == "heun" else steps


def _run(denoiser: DenoiserBase, x_T: torch.Tensor, sampler: str, steps: int, generator: torch.Generator):
    if sampler == "ddpm":
        return ddpm_sample(denoiser, x_T, steps=steps, variance="beta_tilde", generator=generator)
    run = {"ddim": ddim_sample, "dpm++2m": dpm_solver_2m_sample, "heun": heun_sample}[sampler]
    return run(denoiser, x_T, steps=steps)


@torch.no_grad()
def sample_images(denoiser: Denoiser, n: int, *, sampler: str = "ddim", steps: int = 50,
                  labels: torch.Tensor | None = None, guidance: float = 0.0, batch_size: int = 1000,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` images from a denoiser over a UNet (``net.in_channels``, ``net.image_size``), in [−1, 1].

    Args:
        denoiser: e.g. ``dl.pretrained.load("digits8-unet").denoiser`` (x̂₀ clipped to [−1, 1]).
        sampler, steps: one of :data:`IMAGE_SAMPLERS` (see the module table) and its number of steps.
        labels: the requested classes ``(n,)`` of a class-conditional model, sampled with
            classifier-free guidance of weight ``guidance``; None samples unconditionally.
        batch_size: images per sampler call (memory).
        generator: a CPU generator for the starting noise and DDPM's noise; the results do not
            depend on ``batch_size`` for the deterministic samplers (DDPM's later noise does).

    Returns:
        ``(n, C, H, W)`` float32 on the CPU, clamped to [−1, 1].
    """
    check_choice("image sampler", sampler, IMAGE_SAMPLERS)
    n, batch_size = check_int("n", n, 1), check_int("batch_size", batch_size, 1)
    check_int("steps", steps, 1, getattr(denoiser.process, "T", None))
    check_generator(generator)
    if labels is not None and labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {tuple(labels.shape)}")
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    net = denoiser.net
    device = next(net.parameters()).device
    noise = torch.randn((n, net.in_channels, net.image_size, net.image_size), generator=generator)  # all at once
    out = []
    for start in range(0, n, batch_size):
        b = min(batch_size, n - start)
        batch_labels = None if labels is None else labels[start:start + b].to(device)
        guided = denoiser.replace(labels=batch_labels, guidance=guidance if labels is not None else 0.0)
        batch_generator = torch.Generator(device=device).manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
        x = _run(guided, noise[start:start + b].to(device), sampler, steps, batch_generator)
        out.append(x.float().clamp(-1, 1).cpu())
    return torch.cat(out)


def fld_report(classifier: nn.Module, samples: torch.Tensor, train_images: torch.Tensor, test_images: torch.Tensor,
               *, floor_repeats: int = 3, generator: torch.Generator | None = None) -> dict:
    """FLD of ``samples`` against the first ``len(samples)`` test images, with the real-vs-real floor
    (training vs test images at the same size, averaged over ``floor_repeats`` draws) and their ratio."""
    n = len(samples)
    if n > len(test_images):
        raise ValueError(f"{n} samples but only {len(test_images)} test images to compare them with")
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    floors = [fld_floor(classifier, train_images, test_images, n, generator=generator)
              for _ in range(check_int("floor_repeats", floor_repeats, 1))]
    floor = sum(floors) / len(floors)
    value = fld(classifier, samples, test_images[:n])
    return dict(n=n, fld=value, floor=floor, floors=floors, ratio=value / floor)


def guided_accuracy(denoiser: Denoiser, classifier: nn.Module, guidance_scales: Sequence[float], *,
                    n_per_class: int = 100, sampler: str = "ddim", steps: int = 50, batch_size: int = 1000,
                    seed: int = 0) -> list[dict]:
    """For each guidance weight w, the fraction of class-conditional samples that ``classifier`` assigns
    to the requested class (classes 0..K−1, ``n_per_class`` each, the same starting noise for every w)."""
    if denoiser.num_classes is None:
        raise ValueError("guided accuracy needs a class-conditional model (num_classes is None)")
    asked = torch.arange(denoiser.num_classes).repeat(check_int("n_per_class", n_per_class, 1))
    rows = []
    for w in guidance_scales:
        samples = sample_images(denoiser, len(asked), sampler=sampler, steps=steps, labels=asked, guidance=float(w),
                                batch_size=batch_size, generator=torch.Generator().manual_seed(seed))
        accuracy = float((predict(classifier, samples) == asked).double().mean())
        rows.append(dict(guidance_scale=float(w), accuracy=accuracy, n=len(asked)))
    return rows


def guidance_tradeoff(guided: Callable[[int, float], DenoiserBase], judge: Callable[[torch.Tensor], torch.Tensor],
                      scales: Sequence[float], *, num_classes: int, n_per_class: int, data_dim: int = 2,
                      steps: int = 50, references: Sequence[torch.Tensor] | None = None,
                      generator: torch.Generator | None = None) -> dict[str, np.ndarray]:
    """Measure the guidance trade-off on points: class accuracy against diversity, for each scale.

    For every scale and class k, draws ``n_per_class`` samples with deterministic DDIM from
    ``guided(k, scale)`` (e.g. ``lambda k, w: denoiser.replace(labels=k, guidance=w)``). The starting
    noise is the same for every scale (common random numbers), so differences between scales are
    not sampling noise.

    Args:
        judge: a separate classifier, ``x (n, D) -> logits (n, K)``, that decides each sample's class.
        references: optional true samples of each class, ``references[k]`` of shape ``(m, D)``.

    Returns:
        ``scale``; ``accuracy`` (fraction of samples the judge assigns to the requested class);
        ``diversity`` (mean within-class E‖X − X′‖, averaged over classes); with ``references``,
        ``energy`` (mean within-class energy distance to the true class sample).
    """
    x_T = torch.randn(num_classes, n_per_class, data_dim, generator=check_generator(generator))  # (K, n, D)
    accuracy, diversity, energy = [], [], []
    for scale in scales:
        correct, spread, distance = 0, [], []
        for k in range(num_classes):
            samples = ddim_sample(guided(k, scale), x_T[k], steps=steps)  # (n, D)
            with torch.no_grad():
                correct += int((judge(samples).argmax(-1) == k).sum())
            spread.append(mean_pairwise_distance(samples))
            if references is not None:
                distance.append(energy_distance(samples, references[k]))
        accuracy.append(correct / (num_classes * n_per_class))
        diversity.append(float(np.mean(spread)))
        energy.append(float(np.mean(distance)) if distance else float("nan"))
    result = {"scale": np.array(scales, dtype=float), "accuracy": np.array(accuracy),
              "diversity": np.array(diversity)}
    if references is not None:
        result["energy"] = np.array(energy)
    return result


def parameter_count(*modules: nn.Module) -> int:
    """Total number of parameters of the given modules."""
    return sum(p.numel() for m in modules for p in m.parameters())


def seconds_per_sample(sample: Callable[[], torch.Tensor], *, repeats: int = 3) -> float:
    """Best-of-``repeats`` wall-clock time of ``sample()`` divided by the number of samples it returns."""
    best = float("inf")
    for _ in range(check_int("repeats", repeats, 1)):
        start = time.perf_counter()
        out = sample()
        best = min(best, (time.perf_counter() - start) / out.shape[0])
    return best
