"""Classifier-free guidance (Ho & Salimans 2022): a class-conditional network as an ε-model.

A network trained with its label replaced by the null class ∅ some of the time learns both
ε_θ(x_t, t, y) and ε_θ(x_t, t, ∅). Guidance with scale w extrapolates away from the unconditional
prediction (Ho & Salimans 2022, Eq. 6):

    ε̃ = (1 + w) ε_θ(x_t, t, y) − w ε_θ(x_t, t, ∅).

w = 0 is plain conditional sampling; w > 0 trades diversity for samples that look more like y.
"""

from __future__ import annotations

import torch
from torch import nn


class GuidedEps:
    """``(x_t, t) -> ε̃``: a class-conditional network with classifier-free guidance, for any sampler.

    Args:
        model: a network ``(x, t, y) -> ε̂`` with a ``num_classes`` attribute, whose null class is
            the label ``num_classes`` (as :class:`~diffusion_lab.unet.UNet`).
        y: the requested labels, shape ``(B,)``, or None to sample unconditionally (the null class).
        guidance_scale: w ≥ 0 in Eq. 6 above (ignored when y is None).

    The wrapper holds no state and does not change the network's mode.
    """

    def __init__(self, model: nn.Module, y: torch.Tensor | None, guidance_scale: float = 0.0) -> None:
        num_classes = getattr(model, "num_classes", None)
        if num_classes is None:
            raise ValueError("classifier-free guidance needs a class-conditional model (num_classes is None)")
        if guidance_scale < 0:
            raise ValueError(f"guidance_scale must be >= 0, got {guidance_scale}")
        if y is not None and (y.ndim != 1 or int(y.min()) < 0 or int(y.max()) > num_classes):
            raise ValueError(f"y must be labels of shape (B,) in 0..{num_classes - 1} (or {num_classes} = null)")
        self.model, self.y, self.guidance_scale = model, y, float(guidance_scale)
        self.null_class = num_classes

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        null = torch.full((x_t.shape[0],), self.null_class, dtype=torch.long, device=x_t.device)
        if self.y is None:
            return self.model(x_t, t, null)
        y = self.y.to(x_t.device)
        if self.guidance_scale == 0.0:
            return self.model(x_t, t, y)
        # One batched call for both predictions: (2B, C, H, W).
        eps_cond, eps_uncond = self.model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([y, null])).chunk(2)
        # Classifier-free guidance (Ho & Salimans 2022), Eq. 6.
        return (1.0 + self.guidance_scale) * eps_cond - self.guidance_scale * eps_uncond
