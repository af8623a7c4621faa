"""What a network's output means — ε, x₀, v or the score — converted in one place.

With x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε the four targets are linked by

=========  =====================================  ===============================================
code       symbol                                 in terms of (x_t, ε)
=========  =====================================  ===============================================
``eps``    ε̂  (Ho et al. 2020)                    ε
``x0``     x̂₀                                     (x_t − √(1 − ᾱ_t) ε) / √ᾱ_t
``v``      v̂  (Salimans & Ho 2022, Sec. 4)        √ᾱ_t ε − √(1 − ᾱ_t) x_0
``score``  ŝ ≈ ∇ log q_t(x_t)  (Song et al. 2021)  −ε / √(1 − ᾱ_t)
=========  =====================================  ===============================================

Networks map ``(x_t, t) -> tensor shaped like x_t`` whatever they predict. Samplers only ever see
an ε-model; :class:`EpsModel` wraps a network trained on another target, so no sampler re-derives
these formulas. ``alpha_bar`` arguments are ᾱ_t already broadcast to ``(B, 1, ..., 1)``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ._validation import check_choice
from .schedules import NoiseSchedule

PARAMETERIZATIONS = ("eps", "x0", "v", "score")


def x0_from_eps(x_t: torch.Tensor, eps: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """x̂₀ = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t (Ho et al. 2020, Eq. 4 solved for x_0)."""
    return (x_t - (1.0 - alpha_bar).sqrt() * eps) / alpha_bar.sqrt()


def eps_from_x0(x_t: torch.Tensor, x0: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """ε̂ = (x_t − √ᾱ_t x̂₀) / √(1 − ᾱ_t)."""
    return (x_t - alpha_bar.sqrt() * x0) / (1.0 - alpha_bar).sqrt()


def v_from_x0_eps(x0: torch.Tensor, eps: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """v = √ᾱ_t ε − √(1 − ᾱ_t) x_0 (Salimans & Ho 2022, Sec. 4)."""
    return alpha_bar.sqrt() * eps - (1.0 - alpha_bar).sqrt() * x0


def eps_from_v(x_t: torch.Tensor, v: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """ε̂ = √(1 − ᾱ_t) x_t + √ᾱ_t v̂."""
    return (1.0 - alpha_bar).sqrt() * x_t + alpha_bar.sqrt() * v


def score_from_eps(eps: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """ŝ = −ε̂ / √(1 − ᾱ_t): the score of q_t(x_t) given the optimal ε̂ (Song et al. 2021, Eq. 7 with Tweedie)."""
    return -eps / (1.0 - alpha_bar).sqrt()


def eps_from_score(score: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """ε̂ = −√(1 − ᾱ_t) ŝ."""
    return -(1.0 - alpha_bar).sqrt() * score


def eps_from_output(
    parameterization: str, output: torch.Tensor, x_t: torch.Tensor, alpha_bar: torch.Tensor
) -> torch.Tensor:
    """Convert a network output of the given parameterization into ε̂."""
    check_choice("parameterization", parameterization, PARAMETERIZATIONS)
    if parameterization == "eps":
        return output
    if parameterization == "x0":
        return eps_from_x0(x_t, output, alpha_bar)
    if parameterization == "v":
        return eps_from_v(x_t, output, alpha_bar)
    return eps_from_score(output, alpha_bar)


def training_target(
    parameterization: str, x0: torch.Tensor, eps: torch.Tensor, alpha_bar: torch.Tensor
) -> torch.Tensor:
    """The regression target of a network with the given parameterization, from (x_0, ε)."""
    check_choice("parameterization", parameterization, PARAMETERIZATIONS)
    if parameterization == "eps":
        return eps
    if parameterization == "x0":
        return x0
    if parameterization == "v":
        return v_from_x0_eps(x0, eps, alpha_bar)
    return score_from_eps(eps, alpha_bar)


class EpsModel:
    """Wrap a network trained to predict ``parameterization`` so that calling it returns ε̂.

    ``EpsModel(net, schedule, "v")(x_t, t)`` is the ε̂ that the v-prediction implies. The wrapper
    adds no state and does not change the network's mode (train/eval) or gradients.
    """

    def __init__(
        self,
        model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        schedule: NoiseSchedule,
        parameterization: str = "eps",
    ) -> None:
        self.model = model
        self.schedule = schedule
        self.parameterization = check_choice("parameterization", parameterization, PARAMETERIZATIONS)

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        output = self.model(x_t, t)
        alpha_bar = self.schedule.gather("alpha_bar", t, x_t)
        return eps_from_output(self.parameterization, output, x_t, alpha_bar)
