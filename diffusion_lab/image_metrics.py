"""Image metrics: the Fréchet distance on a small classifier's features (FLD), PSNR, masked error.

The Fréchet distance between Gaussians fitted to two sets of features (Heusel et al. 2017,
Dowson & Landau 1982) is

    d²(μ₁, Σ₁; μ₂, Σ₂) = ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2}).

FID takes the features from an Inception network trained on ImageNet. For digits we use the
penultimate layer of the project's own LeNet (:class:`~diffusion_lab.LeNet`): the
*Fréchet LeNet distance* (FLD). Like any estimate from finite samples it is positive even for two
real samples, so it is reported next to the *floor*: the FLD between the training and test sets
at the same sample size.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .observations import as_mask
from .validation import check_same_shape, check_tensor


def _sqrtm_psd(a: np.ndarray) -> np.ndarray:
    """Symmetric square root of a positive semi-definite matrix via its eigendecomposition."""
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """d² between N(μ₁, Σ₁) and N(μ₂, Σ₂) (the formula in the module docstring), in float64."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f"shapes do not match: mu {mu1.shape}, {mu2.shape}; sigma {sigma1.shape}, {sigma2.shape}")
    root1 = _sqrtm_psd(sigma1)
    # tr((Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2}) = Σ √λ over the eigenvalues λ ≥ 0 of that symmetric matrix.
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root1 @ sigma2 @ root1), 0.0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2.0 * cross)


def feature_stats(features: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and covariance ``(D, D)`` (unbiased) of features ``(N, D)``, float64."""
    f = features.detach().double().cpu().numpy()
    return f.mean(0), np.cov(f, rowvar=False)


def frechet_distance_features(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to feature sets ``a`` ``(N, D)`` and ``b`` ``(M, D)``."""
    for name, f in (("a", a), ("b", b)):
        check_tensor(name, f)
        if f.ndim != 2 or f.shape[0] < 2:
            raise ValueError(f"features {name} must have shape (N >= 2, D), got {tuple(f.shape)}")
    return frechet_distance(*feature_stats(a), *feature_stats(b))


@torch.no_grad()
def lenet_features(classifier: nn.Module, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Penultimate features of ``classifier`` (which has a ``features`` method) for ``images`` (N, C, H, W)."""
    return torch.cat([classifier.features(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])


def fld(classifier: nn.Module, images: torch.Tensor, reference: torch.Tensor) -> float:
    """Fréchet LeNet distance between ``images`` and ``reference`` (both ``(N, C, H, W)`` in [−1, 1])."""
    return frechet_distance_features(lenet_features(classifier, images), lenet_features(classifier, reference))


def fld_floor(classifier: nn.Module, train_images: torch.Tensor, test_images: torch.Tensor, n: int | None = None,
              *, generator: torch.Generator | None = None) -> float:
    """The real-vs-real floor: FLD between ``n`` training images (drawn without replacement) and
    the test images (the first ``n`` of them), the value a perfect generator would get at this size."""
    n = min(len(test_images), len(train_images)) if n is None else n
    pick = torch.randperm(len(train_images), generator=generator)[:n]
    return fld(classifier, train_images[pick], test_images[:n])


def inception_fid(images: torch.Tensor, reference: torch.Tensor) -> float:
    """FID with the standard Inception-v3 features, through torchmetrics (optional; Colab).

    Needs ``torchmetrics`` with its image extras and the Inception weights (downloaded on first use
    where a network is available). Images are ``(N, C, H, W)`` in [−1, 1]; grey images are repeated
    to 3 channels.
    """
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance
    except ImportError as err:
        raise ImportError("inception_fid needs torchmetrics[image] (pip install 'torchmetrics[image]'); "
                          "use fld() for a download-free measure") from err
    metric = FrechetInceptionDistance(feature=2048, normalize=True)

    def prepare(x: torch.Tensor) -> torch.Tensor:
        x = ((x.clamp(-1, 1) + 1) / 2).float().cpu()  # [0, 1]
        return x.repeat(1, 3, 1, 1) if x.shape[1] == 1 else x

    for i in range(0, len(reference), 500):
        metric.update(prepare(reference[i:i + 500]), real=True)
    for i in range(0, len(images), 500):
        metric.update(prepare(images[i:i + 500]), real=False)
    return float(metric.compute())


def psnr(x: torch.Tensor, target: torch.Tensor, *, data_range: float = 2.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image, ``(B,)``: 10 log₁₀(range² / MSE).

    ``data_range`` is max − min of the data: 2 for images in [−1, 1] (the same PSNR as for
    [0, 1] images with range 1).
    """
    check_same_shape("x", x, "target", target)
    mse = ((x - target) ** 2).flatten(1).mean(1)
    return 10.0 * torch.log10(data_range**2 / mse.clamp(min=1e-12))


def masked_mse(x: torch.Tensor, target: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the entries where ``region`` is True, per example: shape ``(B,)``.

    With ``region = ~mask`` this is the error on the inpainted (unobserved) part only.
    """
    check_same_shape("x", x, "target", target)
    r = as_mask(region, x).to(x.dtype)
    count = r.flatten(1).sum(1)
    if torch.any(count == 0):
        raise ValueError("the region is empty for some example; nothing to measure")
    return ((x - target) ** 2 * r).flatten(1).sum(1) / count
