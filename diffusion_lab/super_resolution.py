"""Super-resolution with an unconditional model: ILVR (Choi et al. 2021), and what it is compared with.

The low-resolution image is the block average of the high-resolution one,
ℓ = D x_0 (``box_downsample``: each N×N block replaced by its mean). Repeating each pixel into a
block (``nearest_upsample``) is D's pseudo-inverse D⁺ (D D⁺ = I), and the low-pass filter
φ_N = D⁺ D is the orthogonal projection onto images that are constant on each block. ILVR
(Choi et al. 2021, Eq. 8 and Algorithm 1) refines every reverse step so that the low frequencies of
x_{t−1} are those of the noised reference:

    x_{t−1} = x'_{t−1} − φ_N(x'_{t−1}) + φ_N(y_{t−1}),   y_{t−1} ~ q(y_{t−1} | y),   y = D⁺ ℓ.

(Choi et al. filter with bicubic resizing; box filters make φ_N an exact projection.) With φ_N
an orthogonal projection this is exactly the replacement method of inpainting
(:func:`~diffusion_lab.inpainting.replacement_sample`) in another basis: inpainting observes
some pixels, super-resolution observes the block means. Every sample is *consistent*:
D x_0 = ℓ exactly. RePaint's resampling applies unchanged.

The score is the peak signal-to-noise ratio against the true image,
PSNR = 10 log₁₀(range² / MSE), against the standard baseline of bicubic interpolation.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ._validation import check_same_shape, check_tensor
from .inpainting import replacement_sample
from .schedules import NoiseSchedule

EpsModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check_images(name: str, x: object, factor: int) -> torch.Tensor:
    check_tensor(name, x)
    if x.ndim != 4:
        raise ValueError(f"{name} must be images of shape (B, C, H, W), got {tuple(x.shape)}")
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise ValueError(f"factor must be an int >= 1, got {factor!r}")
    return x


def box_downsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    """D x: the mean of each ``factor``×``factor`` block, ``(B, C, H, W) -> (B, C, H/f, W/f)``."""
    _check_images("x", x, factor)
    if x.shape[-1] % factor or x.shape[-2] % factor:
        raise ValueError(f"image size {tuple(x.shape[-2:])} is not divisible by the factor {factor}")
    return F.avg_pool2d(x, factor)


def nearest_upsample(low: torch.Tensor, factor: int) -> torch.Tensor:
    """D⁺ ℓ: repeat each pixel into a ``factor``×``factor`` block, ``(B, C, h, w) -> (B, C, h f, w f)``.

    It is the pseudo-inverse of :func:`box_downsample` D: D D⁺ = I, and D⁺ D is the orthogonal
    projection onto block-constant images (the low-pass filter φ_N).
    """
    _check_images("low", low, factor)
    return low.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)


def low_pass(x: torch.Tensor, factor: int) -> torch.Tensor:
    """φ_N(x) = D⁺ D x: every block replaced by its mean (Choi et al. 2021, Sec. 3.2, with box filters)."""
    return nearest_upsample(box_downsample(x, factor), factor)


def bicubic_upsample(
    low: torch.Tensor, factor: int, *, low_value: float = -1.0, high_value: float = 1.0
) -> torch.Tensor:
    """The baseline: bicubic interpolation (Keys 1981, a = −0.75 as in PyTorch), clipped to the data range."""
    _check_images("low", low, factor)
    up = F.interpolate(low, scale_factor=factor, mode="bicubic", align_corners=False)
    return up.clamp(low_value, high_value)


@torch.no_grad()
def ilvr_sample(
    eps_model: EpsModelFn,
    schedule: NoiseSchedule,
    low: torch.Tensor,
    factor: int,
    *,
    resamplings: int = 1,
    jump_length: int = 1,
    variance: str = "beta_tilde",
    x_T: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """ILVR super-resolution (Choi et al. 2021, Algorithm 1) of ``low`` by ``factor`` with an unconditional model.

    Args:
        eps_model: ``(x_t, t) -> ε̂`` for high-resolution images, on the steps of ``schedule``.
        low: the low-resolution images ℓ, ``(B, C, h, w)``, block means of the unknown x_0.
        factor: N, the upsampling factor: the result is ``(B, C, h N, w N)`` with
            ``box_downsample(result, N) == low`` (up to float rounding).
        resamplings, jump_length, variance, x_T, return_trajectory: as in
            :func:`~diffusion_lab.inpainting.replacement_sample` (U = 1: plain ILVR).
    """
    reference = nearest_upsample(low, factor)  # y = D⁺ ℓ, so that φ_N(y) = y
    return replacement_sample(
        eps_model, schedule, reference, lambda x: low_pass(x, factor), resamplings=resamplings,
        jump_length=jump_length, variance=variance, x_T=x_T, generator=generator,
        return_trajectory=return_trajectory,
    )


def psnr(x: torch.Tensor, target: torch.Tensor, *, data_range: float = 2.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image, ``(B,)``: 10 log₁₀(range² / MSE).

    ``data_range`` is max − min of the data: 2 for images in [−1, 1] (the same PSNR as for
    [0, 1] images with range 1).
    """
    check_same_shape("x", x, "target", target)
    mse = ((x - target) ** 2).flatten(1).mean(1)
    return 10.0 * torch.log10(data_range**2 / mse.clamp(min=1e-12))
