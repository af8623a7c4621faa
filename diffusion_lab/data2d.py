"""2D toy data: the swiss roll, two moons, and a Gaussian mixture with an exact oracle.

All functions return float32 tensors of shape ``(n, 2)`` scaled to roughly unit variance, and are
reproducible from ``seed``.

The :class:`GaussianMixture` is the book's oracle. If x_0 ~ Σ_k π_k N(μ_k, Σ_k) and
x_t = √ᾱ x_0 + √(1 − ᾱ) ε, then x_t ~ Σ_k π_k N(√ᾱ μ_k, ᾱ Σ_k + (1 − ᾱ) I) exactly, so the
log-density, the score ∇ log q_t, the optimal ε̂ and the optimal denoiser E[x_0 | x_t] are known in
closed form at every noise level. Later chapters test samplers and trained models against it.
The same holds for the general noising x = s·x_0 + σ·z of the VE, VP and sub-VP SDEs
(``log_prob_at``, ``score_at``, ``score_model(sde)``): x ~ Σ_k π_k N(s μ_k, s² Σ_k + σ² I).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from sklearn.datasets import make_moons, make_swiss_roll

from .broadcast import expand_like
from .schedules import NoiseSchedule

if TYPE_CHECKING:
    from .sde import SDE

# Fixed affine maps (not fitted per sample) so every draw lives in the same coordinates.
_SWISS_ROLL_SCALE = 1.0 / 7.0
_MOONS_SHIFT = np.array([-0.5, -0.25])
_MOONS_SCALE = 1.0 / 0.6


def _check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n (the number of points) must be a positive integer, got {n!r}")
    return int(n)


def swiss_roll(n: int, *, noise: float = 0.5, seed: int = 0) -> torch.Tensor:
    """Points on scikit-learn's swiss roll, projected to its (x, z) plane: shape ``(n, 2)``."""
    points, _ = make_swiss_roll(_check_n(n), noise=noise, random_state=seed)
    return torch.from_numpy(points[:, [0, 2]] * _SWISS_ROLL_SCALE).float()


def moons(n: int, *, noise: float = 0.05, seed: int = 0) -> torch.Tensor:
    """scikit-learn's two interleaving half circles, centred and scaled: shape ``(n, 2)``."""
    points, _ = make_moons(_check_n(n), noise=noise, random_state=seed)
    return torch.from_numpy((points + _MOONS_SHIFT) * _MOONS_SCALE).float()


def _alpha_bar_tensor(alpha_bar: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """ᾱ as float64 of shape (B,) (or a scalar), on x's device."""
    alpha_bar = torch.as_tensor(alpha_bar, dtype=torch.float64, device=x.device)
    if torch.any((alpha_bar <= 0) | (alpha_bar > 1)):
        raise ValueError("alpha_bar must lie in (0, 1]")
    return alpha_bar


@dataclass(frozen=True, eq=False)
class GaussianMixture:
    """A mixture Σ_k π_k N(μ_k, Σ_k) in D dimensions with exact quantities at every noise level.

    Args:
        weights: ``(K,)`` mixture weights π_k, positive, summing to 1.
        means: ``(K, D)`` component means μ_k.
        covs: ``(K, D, D)`` component covariances Σ_k (symmetric positive definite).

    Methods taking ``alpha_bar`` accept a float or a ``(B,)`` tensor of ᾱ values; ᾱ = 1 is the
    data distribution itself. Computations run in float64 and return x's dtype.
    """

    weights: torch.Tensor
    means: torch.Tensor
    covs: torch.Tensor

    def __post_init__(self) -> None:
        weights = torch.as_tensor(self.weights, dtype=torch.float64)
        means = torch.as_tensor(self.means, dtype=torch.float64)
        covs = torch.as_tensor(self.covs, dtype=torch.float64)
        if weights.ndim != 1 or means.ndim != 2 or covs.ndim != 3:
            raise ValueError("weights, means, covs must have shapes (K,), (K, D), (K, D, D)")
        K, D = means.shape
        if weights.shape != (K,) or covs.shape != (K, D, D):
            raise ValueError(
                f"shapes disagree: weights {tuple(weights.shape)}, means {tuple(means.shape)}, "
                f"covs {tuple(covs.shape)}; expected (K,), (K, D), (K, D, D)"
            )
        if torch.any(weights <= 0) or abs(float(weights.sum()) - 1.0) > 1e-6:
            raise ValueError(f"weights must be positive and sum to 1, got {weights.tolist()}")
        torch.linalg.cholesky(covs)  # raises if a covariance is not positive definite
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "means", means)
        object.__setattr__(self, "covs", covs)

    @classmethod
    def ring(cls, n_components: int = 8, radius: float = 1.5, std: float = 0.15) -> GaussianMixture:
        """Equal-weight isotropic components evenly spaced on a circle."""
        angles = torch.arange(n_components, dtype=torch.float64) * (2 * math.pi / n_components)
        means = radius * torch.stack([angles.cos(), angles.sin()], dim=1)
        covs = (std**2) * torch.eye(2, dtype=torch.float64).expand(n_components, 2, 2)
        return cls(torch.full((n_components,), 1.0 / n_components, dtype=torch.float64), means, covs.clone())

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def n_components(self) -> int:
        return self.means.shape[0]

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` points from the mixture (ᾱ = 1): float32, shape ``(n, D)``."""
        return self.sample_labelled(n, generator=generator)[0]

    def sample_labelled(
        self, n: int, *, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` points with their component k as class label: ``(n, D)`` float32 and ``(n,)`` long.

        The labelled toy of the guidance chapter: the components are the classes, so
        p(x | y = k) = N(μ_k, Σ_k) and p(y = k) = π_k.
        """
        n = _check_n(n)
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)  # (n,)
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        chol = torch.linalg.cholesky(self.covs)[k]  # (n, D, D)
        return (self.means[k] + (chol @ z.unsqueeze(-1)).squeeze(-1)).float(), k

    def component(self, k: int) -> GaussianMixture:
        """Component k alone, N(μ_k, Σ_k): the class-conditional distribution p(x | y = k) with its oracle."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k < self.n_components:
            raise ValueError(f"k must be a component index in 0..{self.n_components - 1}, got {k!r}")
        return GaussianMixture(torch.ones(1, dtype=torch.float64), self.means[k:k + 1], self.covs[k:k + 1])

    def class_log_posterior(self, x: torch.Tensor, alpha_bar: float | torch.Tensor = 1.0) -> torch.Tensor:
        """log p(y = k | x_t) for every component k, at noise level ᾱ: shape ``(B, K)``, float64.

        The exact (Bayes) noise-conditional classifier: the responsibilities of the diffused mixture.
        """
        log_joint, _ = self._component_terms(x, alpha_bar)
        return torch.log_softmax(log_joint, dim=1)

    def conditional_eps(self, x_t: torch.Tensor, alpha_bar: float | torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The optimal class-conditional ε̂(x_t, y) = −√(1 − ᾱ) ∇ log q_t(x_t | y): shape of ``x_t``.

        Args:
            y: component labels of shape ``(B,)`` in 0..K−1.
        """
        _, solved = self._component_terms(x_t, alpha_bar)  # S_k⁻¹(x − m_k): (B, K, D)
        if not isinstance(y, torch.Tensor) or y.shape != (x_t.shape[0],):
            raise ValueError(f"y must be a tensor of labels of shape ({x_t.shape[0]},)")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.n_components):
            raise ValueError(f"labels must lie in 0..{self.n_components - 1}")
        ab = _alpha_bar_tensor(alpha_bar, x_t)
        chosen = solved[torch.arange(x_t.shape[0], device=x_t.device), y.long()]  # (B, D)
        return (expand_like((1.0 - ab).sqrt(), chosen) * chosen).to(x_t.dtype)

    def _noised_components(self, alpha_bar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Means (B|1, K, D) and covariances (B|1, K, D, D) of q_t = Σ π_k N(√ᾱ μ_k, ᾱ Σ_k + (1 − ᾱ) I)."""
        ab = alpha_bar.reshape(-1, 1, 1)  # (B|1, 1, 1)
        means = ab.sqrt() * self.means.to(ab.device)  # (B|1, K, D)
        eye = torch.eye(self.dim, dtype=torch.float64, device=ab.device)
        covs = ab.unsqueeze(-1) * self.covs.to(ab.device) + (1.0 - ab).unsqueeze(-1) * eye  # (B|1, K, D, D)
        return means, covs

    def _component_terms(self, x: torch.Tensor, alpha_bar) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-component log(π_k N(x; m_k, S_k)) (B, K) and S_k⁻¹(x − m_k) (B, K, D)."""
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (B, {self.dim}), got {tuple(x.shape)}")
        ab = _alpha_bar_tensor(alpha_bar, x).reshape(-1)  # (B,) or (1,)
        x = x.double()
        log_joint = x.new_empty(x.shape[0], self.n_components)  # (B, K)
        solved = x.new_empty(x.shape[0], self.n_components, self.dim)  # (B, K, D)
        # Samplers query one noise level for the whole batch: factor each distinct S_k once.
        values, which = torch.unique(ab, return_inverse=True)
        which = which.expand(x.shape[0]) if ab.shape[0] == 1 else which
        for i, value in enumerate(values):
            rows = which == i
            means, covs = self._noised_components(value)  # (1, K, D), (1, K, D, D)
            chol = torch.linalg.cholesky(covs[0])  # (K, D, D)
            precision = torch.cholesky_inverse(chol)  # S_k⁻¹: (K, D, D)
            diff = x[rows].unsqueeze(1) - means  # (b, K, D)
            s = torch.einsum("kij,bkj->bki", precision, diff)  # S⁻¹(x − m): (b, K, D)
            mahalanobis = (diff * s).sum(-1)  # (b, K)
            log_det = 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)  # (K,)
            log_norm = -0.5 * (self.dim * math.log(2 * math.pi) + log_det)
            log_joint[rows] = self.weights.to(x.device).log() + log_norm - 0.5 * mahalanobis
            solved[rows] = s
        return log_joint, solved

    def log_prob(self, x: torch.Tensor, alpha_bar: float | torch.Tensor = 1.0) -> torch.Tensor:
        """log q_t(x) for the mixture diffused to ᾱ: shape ``(B,)``, float64."""
        log_joint, _ = self._component_terms(x, alpha_bar)
        return torch.logsumexp(log_joint, dim=1)

    def score(self, x: torch.Tensor, alpha_bar: float | torch.Tensor = 1.0) -> torch.Tensor:
        """∇_x log q_t(x) = −Σ_k r_k(x) S_k⁻¹ (x − m_k), with responsibilities r_k: shape of x."""
        log_joint, solved = self._component_terms(x, alpha_bar)
        resp = torch.softmax(log_joint, dim=1)  # (B, K)
        return (-(resp.unsqueeze(-1) * solved).sum(1)).to(x.dtype)

    def eps(self, x_t: torch.Tensor, alpha_bar: float | torch.Tensor) -> torch.Tensor:
        """The optimal ε̂(x_t) = E[ε | x_t] = −√(1 − ᾱ) ∇ log q_t(x_t)."""
        ab = _alpha_bar_tensor(alpha_bar, x_t)
        return -expand_like((1.0 - ab).sqrt(), x_t) * self.score(x_t, ab)

    def denoise(self, x_t: torch.Tensor, alpha_bar: float | torch.Tensor) -> torch.Tensor:
        """The optimal denoiser E[x_0 | x_t] = (x_t + (1 − ᾱ) ∇ log q_t(x_t)) / √ᾱ (Tweedie's formula)."""
        ab = _alpha_bar_tensor(alpha_bar, x_t)
        return (x_t + expand_like(1.0 - ab, x_t) * self.score(x_t, ab)) / expand_like(ab.sqrt(), x_t)

    def eps_model(self, schedule: NoiseSchedule):
        """The exact ε̂ as a model ``(x_t, t) -> ε̂`` on ``schedule``'s steps: the oracle for samplers."""

        def exact_eps(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            alpha_bar = torch.from_numpy(np.array(schedule.alpha_bar))[t.cpu()].to(x_t.device)  # (B,)
            return self.eps(x_t, alpha_bar)

        return exact_eps

    def conditional_eps_model(self, schedule: NoiseSchedule):
        """The exact class-conditional model ``(x_t, t, y) -> ε̂``; y = None means unconditional.

        The oracle counterpart of a classifier-free-guidance network (``TimeMLP(num_classes=K)``):
        ε̂(x_t, t, k) is component k's exact ε̂, and ε̂(x_t, t, None) the mixture's.
        """

        def exact_eps(x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
            alpha_bar = torch.from_numpy(np.array(schedule.alpha_bar))[t.cpu()].to(x_t.device)  # (B,)
            if y is None:
                return self.eps(x_t, alpha_bar)
            return self.conditional_eps(x_t, alpha_bar, y)

        return exact_eps

    # --- General noising x = s·x_0 + σ·z, for the VE, VP and sub-VP SDEs ------------------------
    # Additive to the ᾱ methods above (which are the case s = √ᾱ, σ = √(1 − ᾱ)).

    def _scaled_terms(self, x: torch.Tensor, scale, std) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-component log(π_k N(x; s μ_k, s² Σ_k + σ² I)) (B, K) and S_k⁻¹(x − m_k) (B, K, D)."""
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (B, {self.dim}), got {tuple(x.shape)}")
        scale, std = _scale_std_tensors(scale, std, x)
        if max(scale.ndim, std.ndim) == 1 and bool((scale == scale.flatten()[0]).all() and (std == std.flatten()[0]).all()):
            # One noise level for the batch (samplers): one factorisation.
            scale, std = scale.flatten()[0], std.flatten()[0]
        s = scale.reshape(-1, 1, 1)  # (B|1, 1, 1)
        var = std.reshape(-1, 1, 1, 1) ** 2  # (B|1, 1, 1, 1)
        means = s * self.means.to(x.device)  # (B|1, K, D)
        eye = torch.eye(self.dim, dtype=torch.float64, device=x.device)
        covs = (s**2).unsqueeze(-1) * self.covs.to(x.device) + var * eye  # (B|1, K, D, D)
        diff = x.double().unsqueeze(1) - means  # (B, K, D)
        chol = torch.linalg.cholesky(covs)  # (B|1, K, D, D)
        precision = torch.cholesky_inverse(chol)  # S⁻¹: (B|1, K, D, D)
        if precision.shape[0] == 1:  # shared by the batch: K small matrix products, not B·K solves
            solved = torch.einsum("kde,bke->bkd", precision[0], diff)  # S⁻¹(x − m): (B, K, D)
        else:
            solved = torch.einsum("bkde,bke->bkd", precision, diff)
        mahalanobis = (diff * solved).sum(-1)  # (B, K)
        log_det = 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)  # (B|1, K)
        log_norm = -0.5 * (self.dim * math.log(2 * math.pi) + log_det)
        return self.weights.to(x.device).log() + log_norm - 0.5 * mahalanobis, solved

    def log_prob_at(self, x: torch.Tensor, scale: float | torch.Tensor, std: float | torch.Tensor) -> torch.Tensor:
        """log p(x) for x = s·x_0 + σ·z with x_0 from the mixture and z ~ N(0, I): shape ``(B,)``, float64.

        The law of x is Σ_k π_k N(s μ_k, s² Σ_k + σ² I). ``scale`` (s > 0) and ``std`` (σ ≥ 0) are
        floats or ``(B,)`` tensors; :meth:`log_prob` at ᾱ is the case s = √ᾱ, σ = √(1 − ᾱ).
        """
        log_joint, _ = self._scaled_terms(x, scale, std)
        return torch.logsumexp(log_joint, dim=1)

    def score_at(self, x: torch.Tensor, scale: float | torch.Tensor, std: float | torch.Tensor) -> torch.Tensor:
        """∇_x log p(x) for x = s·x_0 + σ·z (see :meth:`log_prob_at`): shape and dtype of x."""
        log_joint, solved = self._scaled_terms(x, scale, std)
        resp = torch.softmax(log_joint, dim=1)  # (B, K)
        return (-(resp.unsqueeze(-1) * solved).sum(1)).to(x.dtype)

    def score_model(self, sde: SDE):
        """The exact score as a model ``(x_t, t) -> ∇ log p_t(x_t)`` for continuous t ∈ [0, 1] of ``sde``.

        Uses the SDE's marginal x_t = s(t) x_0 + σ(t) z (:meth:`diffusion_lab.sde.SDE.marginal_mean_std`).
        The oracle for the SDE samplers and the likelihood; differentiable in x_t.
        """

        def exact_score(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            scale, std = sde.marginal_mean_std(t)  # (B,), (B,)
            return self.score_at(x_t, scale, std)

        return exact_score


def _scale_std_tensors(scale, std, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(s, σ) as float64 tensors on x's device, checked: s > 0 and σ ≥ 0."""
    scale = torch.as_tensor(scale, dtype=torch.float64, device=x.device)
    std = torch.as_tensor(std, dtype=torch.float64, device=x.device)
    if torch.any(scale <= 0) or torch.any(std < 0):
        raise ValueError("scale must be positive and std non-negative (x = scale * x_0 + std * z)")
    return scale, std
