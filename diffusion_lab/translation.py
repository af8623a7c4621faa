"""Translation between classes with dual diffusion implicit bridges (DDIB; Su et al. 2023).

One class-conditional model is a family of diffusion models, one per label, that share a single
latent space: pure noise at t = T. DDIB (Su et al. 2023, Algorithm 1) translates an image from the
source class to the target class in two deterministic halves, both DDIM with η = 0:

    x_T = ddim_invert(model(· | source), x_0)      # encode: the source model's probability-flow ODE, 0 → T
    x̃_0 = ddim_sample(model(· | target), x_T)     # decode: the target model's ODE, T → 0

Each half is an ODE integrated with the same steps, so the map is invertible up to discretisation
error: translating x̃_0 back (target → source) returns x_0 (the cycle consistency of Su et al.),
and the round trip source → source with the same steps is exact in the limit of the fixed-point
iterations of :func:`~diffusion_lab.ddim_invert`.

The accelerated start of CCDF (Chung et al. 2022) needs no code of its own: it is
``t_start=t₀`` on :func:`~diffusion_lab.ddpm_sample`, :func:`~diffusion_lab.ddim_sample` and
:func:`~diffusion_lab.replacement_sample` (hence ILVR and inpainting), starting from
``q_sample(process, estimate, t₀)``.

=====================  ========  ===============================================
code                   symbol    meaning
=====================  ========  ===============================================
``source``             y_a       the class of the input (label K: the null class)
``target``             y_b       the class to translate to
``latent``             x_T       the shared latent of the two ODEs
=====================  ========  ===============================================
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

from .denoiser import DenoiserBase, check_denoiser
from .samplers.discrete import ddim_invert, ddim_sample
from .validation import check_labels, check_tensor


class TranslationCycle(NamedTuple):
    """The states of a cycle x_0 → x̃_0 → x̂_0 (source → target → source), all shaped like x_0."""

    translated: torch.Tensor  # x̃_0: the input translated to the target class
    cycled: torch.Tensor  # x̂_0: x̃_0 translated back to the source class
    latent: torch.Tensor  # x_T: the input's latent under the source class


def _conditional(denoiser: DenoiserBase, name: str, labels: object, batch: int) -> DenoiserBase:
    if getattr(denoiser, "num_classes", None) is None:
        raise ValueError(f"DDIB needs a class-conditional denoiser (its net has num_classes) to take {name}")
    return denoiser.replace(labels=check_labels(name, labels, batch, denoiser.num_classes))


@torch.no_grad()
def ddib_translate(denoiser: DenoiserBase, x0: torch.Tensor, source: int | torch.Tensor, target: int | torch.Tensor,
                   *, steps: int | Sequence[int] = 25, fixed_point_iters: int = 0, return_latent: bool = False
                   ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Translate ``x0`` from class ``source`` to class ``target`` (Su et al. 2023, Algorithm 1).

    Args:
        denoiser: a class-conditional :class:`~diffusion_lab.Denoiser`; its guidance weight is kept
            for both halves.
        x0: the inputs ``(B, ...)``, data of the source class.
        source, target: labels, an int or a long tensor ``(B,)`` in 0..K (K: the null class).
        steps: the DDIM steps of both halves (the same grid, so that the halves are inverses).
        fixed_point_iters: refinements of each inversion step (see :func:`~diffusion_lab.ddim_invert`).
        return_latent: also return the shared latent x_T.

    Returns:
        x̃_0 shaped like ``x0``; with ``return_latent``, ``(x̃_0, x_T)``.
    """
    denoiser = check_denoiser(denoiser)
    check_tensor("x0", x0, floating=True, ndim_min=2, finite=True)
    encode = _conditional(denoiser, "source", source, x0.shape[0])
    decode = _conditional(denoiser, "target", target, x0.shape[0])
    # Encode: the source ODE from 0 up to T.
    latent = ddim_invert(encode, x0, steps=steps, fixed_point_iters=fixed_point_iters)
    # Decode: the target ODE from T down to 0.
    translated = ddim_sample(decode, latent, steps=steps)
    return (translated, latent) if return_latent else translated


def ddib_cycle(denoiser: DenoiserBase, x0: torch.Tensor, source: int | torch.Tensor, target: int | torch.Tensor, *,
               steps: int | Sequence[int] = 25, fixed_point_iters: int = 0) -> TranslationCycle:
    """Translate source → target → source (Su et al. 2023): how far x̂_0 is from x_0 is the cycle error.

    Arguments as for :func:`ddib_translate`; ``source == target`` gives the round trip through the latent.
    """
    translated, latent = ddib_translate(denoiser, x0, source, target, steps=steps,
                                        fixed_point_iters=fixed_point_iters, return_latent=True)
    cycled = ddib_translate(denoiser, translated, target, source, steps=steps, fixed_point_iters=fixed_point_iters)
    return TranslationCycle(translated, cycled, latent)
