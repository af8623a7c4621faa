"""SDEdit: edit an image by noising it to a middle step t₀ and denoising it (Meng et al. 2022).

A guide g (a rough stroke painting, a corrupted photo) is not a sample of the data distribution,
but after enough noise it cannot be told apart from one: q(x_{t₀} | g) = N(√ᾱ_{t₀} g, (1 − ᾱ_{t₀}) I)
overlaps the noised data distribution q_{t₀}. SDEdit draws x_{t₀} from it and runs the ordinary
reverse process from t₀ to 0 (Meng et al. 2022, Algorithm 1 with the VP SDE; here DDPM's steps).

t₀ sets the trade-off: small t₀ keeps the output close to g (faithful) but keeps its flaws; large
t₀ gives realistic images that forget g; t₀ = T is unconditional sampling.

For a Gaussian data distribution N(μ, s² I) the output is Gaussian, with mean
μ + c (g − μ), c = ᾱ s² / (ᾱ s² + 1 − ᾱ), ᾱ = ᾱ_{t₀}: the guide is pulled towards the data by a
factor that falls from 1 to 0 as t₀ grows (checked in the tests).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ._validation import check_tensor
from .forward import q_sample
from .samplers.ddpm import ddpm_sample
from .schedules import NoiseSchedule, from_betas

EpsModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def truncate(schedule: NoiseSchedule, t0: int) -> NoiseSchedule:
    """The schedule cut at step t₀: steps 1..t₀ with the same β_t, hence the same ᾱ_t.

    Any sampler run on it starts at t₀ and calls the model at the original steps.
    """
    if isinstance(t0, bool) or not isinstance(t0, int) or not 1 <= t0 <= schedule.T:
        raise ValueError(f"t0 must be an int step in 1..{schedule.T} (the schedule's T), got {t0!r}")
    return from_betas(schedule.beta[1 : t0 + 1], name=f"{schedule.name} up to t0 = {t0}")


@torch.no_grad()
def sdedit_sample(
    eps_model: EpsModelFn,
    schedule: NoiseSchedule,
    guide: torch.Tensor,
    t0: int,
    *,
    variance: str = "beta_tilde",
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """SDEdit (Meng et al. 2022, Algorithm 1): x_{t₀} ~ q(x_{t₀} | guide), then DDPM from t₀ to 0.

    Args:
        eps_model: ``(x_t, t) -> ε̂`` on the steps of ``schedule`` (e.g. respaced and clipped).
        guide: the image to edit, ``(B, ...)``.
        t0: the starting step t₀ in 1..T of ``schedule``; larger is more realistic, less faithful.
        variance: the reverse variance of :func:`~diffusion_lab.ddpm_sample`.
        return_trajectory: also return the states, ``trajectory[t]`` = x_t for t = 0..t₀.

    Returns:
        The edited x_0 shaped like ``guide``; with ``return_trajectory``, ``(x_0, trajectory)`` of
        shape ``(t₀ + 1, B, ...)``.
    """
    check_tensor("guide", guide)
    head = truncate(schedule, t0)
    # Perturb the guide.
    x_t0 = q_sample(schedule, guide, t0, generator=generator)
    # Reverse process from t₀.
    return ddpm_sample(eps_model, head, x_t0, variance=variance, generator=generator,
                       return_trajectory=return_trajectory)


def ascii_image(rows: list[str] | tuple[str, ...], *, ink: str = "#", half: str = "+") -> torch.Tensor:
    """A stroke painting from text: ``ink`` is a full stroke (+1), ``half`` a faint one (0), anything
    else background (−1). Returns ``(1, H, W)`` in [−1, 1], the range of the image data sets.

        >>> seven = ascii_image(["#######.", "......#.", ".....#..", "....#...", "...#....",
        ...                      "...#....", "..#.....", "..#....."])
    """
    if not rows or len({len(r) for r in rows}) != 1:
        raise ValueError("rows must be a non-empty list of strings of equal length")
    values = [[1.0 if c == ink else 0.0 if c == half else -1.0 for c in r] for r in rows]
    return torch.tensor(values, dtype=torch.float32).unsqueeze(0)  # (1, H, W)
