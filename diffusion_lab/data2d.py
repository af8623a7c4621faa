"""2D toy data: the swiss roll, two moons, and a Gaussian mixture with an exact oracle.

All functions return float32 tensors of shape ``(n, 2)`` scaled to roughly unit variance, and are
reproducible from ``seed``.

The :class:`GaussianMixture` is the book's oracle. If x_0 ~ Σ_k π_k N(μ_k, Σ_k) and
x = s·x_0 + σ·z (s = √ᾱ_t, σ = √(1 − ᾱ_t) for DDPM; s(t), σ(t) for the SDEs and flow paths), then
x ~ Σ_k π_k N(s μ_k, s² Σ_k + σ² I) exactly, so the log-density, the score, E[x_0 | x] and E[z | x]
are known in closed form at every noise level. ``mixture.denoiser(process)`` is that oracle as a
:class:`~diffusion_lab.Denoiser`, the same contract as a trained network: later chapters test
samplers and trained models against it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.datasets import make_moons, make_swiss_roll

from .denoiser import Coefficients, Denoiser, Prediction
from .validation import check_labels, check_tensor

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

    # --- Exact quantities at every noise level x = s·x_0 + σ·z ----------------------------------
    # x ~ Σ_k π_k N(s μ_k, C_k) with C_k = s² Σ_k + σ² I; s = √ᾱ_t, σ = √(1 − ᾱ_t) for DDPM.

    def _terms(self, x: torch.Tensor, scale, std) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-component log(π_k N(x; s μ_k, C_k)) ``(B, K)`` and C_k⁻¹(x − s μ_k) ``(B, K, D)``, float64."""
        check_tensor("x", x, floating=True)
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
        precision = torch.cholesky_inverse(chol)  # C⁻¹: (B|1, K, D, D)
        if precision.shape[0] == 1:  # shared by the batch: K small matrix products, not B·K solves
            solved = torch.einsum("kde,bke->bkd", precision[0], diff)  # C⁻¹(x − sμ): (B, K, D)
        else:
            solved = torch.einsum("bkde,bke->bkd", precision, diff)
        mahalanobis = (diff * solved).sum(-1)  # (B, K)
        log_det = 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)  # (B|1, K)
        log_norm = -0.5 * (self.dim * math.log(2 * math.pi) + log_det)
        return self.weights.to(x.device).log() + log_norm - 0.5 * mahalanobis, solved

    def log_prob(self, x: torch.Tensor, scale: float | torch.Tensor = 1.0, std: float | torch.Tensor = 0.0) -> torch.Tensor:
        """log p(x) for x = s·x_0 + σ·z, x_0 from the mixture, z ~ N(0, I): shape ``(B,)``, float64.

        ``scale`` (s ≥ 0) and ``std`` (σ ≥ 0, not both 0) are floats or ``(B,)`` tensors; the defaults
        give the data density itself, and s = √ᾱ_t, σ = √(1 − ᾱ_t) give DDPM's q_t.
        """
        log_joint, _ = self._terms(x, scale, std)
        return torch.logsumexp(log_joint, dim=1)

    def score(self, x: torch.Tensor, scale: float | torch.Tensor = 1.0, std: float | torch.Tensor = 0.0) -> torch.Tensor:
        """∇_x log p(x) = −Σ_k r_k(x) C_k⁻¹(x − s μ_k), with responsibilities r_k: shape and dtype of x."""
        log_joint, solved = self._terms(x, scale, std)
        resp = torch.softmax(log_joint, dim=1)  # (B, K)
        return (-(resp.unsqueeze(-1) * solved).sum(1)).to(x.dtype)

    def class_log_posterior(self, x: torch.Tensor, scale: float | torch.Tensor = 1.0,
                            std: float | torch.Tensor = 0.0) -> torch.Tensor:
        """log p(y = k | x) for every component k at noise level (s, σ): shape ``(B, K)``, float64.

        The exact (Bayes) noise-conditional classifier: the responsibilities of the noised mixture.
        """
        log_joint, _ = self._terms(x, scale, std)
        return torch.log_softmax(log_joint, dim=1)

    def posterior_means(self, x: torch.Tensor, scale, std, labels: torch.Tensor | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """(E[x_0 | x], E[z | x]) for x = s·x_0 + σ·z, in float64, both shaped like x.

        Per component E[x_0 | x, k] = μ_k + s Σ_k C_k⁻¹(x − s μ_k) and E[z | x, k] = σ C_k⁻¹(x − s μ_k),
        weighted by the responsibilities, or taken from component ``labels`` ``(B,)`` (label K: the
        whole mixture). No division by s or σ, so both ends of time are fine; differentiable in x.
        """
        return self._posterior(x, scale, std, labels)[:2]

    def _posterior(self, x: torch.Tensor, scale, std, labels: torch.Tensor | None, score: bool = False
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """E[x_0 | x], E[z | x] and, if asked, the score ∇ log p(x) (of component ``labels`` where given)."""
        log_joint, solved = self._terms(x, scale, std)
        weights = torch.softmax(log_joint, dim=1)  # (B, K)
        if labels is not None:
            labels = check_labels("labels", labels, x.shape[0], self.n_components).to(x.device)
            pick = torch.nn.functional.one_hot(labels.clamp(max=self.n_components - 1), self.n_components).double()
            weights = torch.where((labels < self.n_components)[:, None], pick, weights)
        scale, std = (torch.as_tensor(v, dtype=torch.float64, device=x.device).reshape(-1, 1, 1)
                      for v in (scale, std))
        x0_k = self.means.to(x.device) + scale * torch.einsum("kde,bke->bkd", self.covs.to(x.device), solved)
        eps_k = std * solved  # (B, K, D)
        w = weights.unsqueeze(-1)  # (B, K, 1)
        return (w * x0_k).sum(1), (w * eps_k).sum(1), -(w * solved).sum(1) if score else None

    def denoiser(self, process, **options) -> Denoiser:
        """The exact denoiser of this mixture noised by ``process``: the book's oracle, on the same
        contract as a trained network (``options``: labels, guidance, clip as in :class:`Denoiser`)."""
        return MixtureDenoiser(MixtureNet(self, process), process, "x0", **options)


class MixtureNet:
    """The mixture's exact E[x_0 | x_t, y] as a network ``(x_t, t, y) -> x̂₀`` (labels: its components)."""

    def __init__(self, mixture: GaussianMixture, process) -> None:
        self.mixture, self.process, self.num_classes = mixture, process, mixture.n_components

    def __call__(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        scale, std = self.process.scale_std(t)
        return self.mixture.posterior_means(x, scale, std, y)[0].to(x.dtype)


class MixtureDenoiser(Denoiser):
    """A :class:`Denoiser` whose x̂₀ and ε̂ are both exact (computed in float64, neither from the other)."""

    def conditional(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None,
                    c: Coefficients) -> Prediction:
        scale, std = self.process.scale_std(t)
        # Where σ = 0, ε̂ = 0 and −ε̂/σ is undefined: keep the exact score (of the data itself at t = 0).
        at_zero = bool((std == 0).any())
        x0, eps, score = self.net.mixture._posterior(x, scale, std, labels, score=at_zero)
        direct = score.to(x.dtype) if at_zero else None
        return Prediction(x, x0.to(x.dtype), eps.to(x.dtype), c, direct_score=direct)


def _scale_std_tensors(scale, std, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(s, σ) as float64 tensors on x's device, checked: s ≥ 0, σ ≥ 0, not both 0, finite."""
    scale = torch.as_tensor(scale, dtype=torch.float64, device=x.device)
    std = torch.as_tensor(std, dtype=torch.float64, device=x.device)
    if not bool(torch.isfinite(scale).all() & torch.isfinite(std).all()) or torch.any(scale < 0) or torch.any(std < 0) \
            or torch.any((scale == 0) & (std == 0)):
        raise ValueError("scale and std must be finite, non-negative and not both 0 (x = scale * x_0 + std * z)")
    return scale, std
