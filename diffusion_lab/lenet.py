"""A small LeNet-like classifier (LeCun et al. 1998) for judging generated digits.

It serves twice: its penultimate features define the Fréchet LeNet distance
(:func:`~diffusion_lab.fld`), and its predictions check that class-conditional
samples show the requested class.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .fitting import fit, minibatch
from .validation import check_float, check_int, check_labels, check_tensor


class LeNet(nn.Module):
    """Two conv–ReLU–pool stages and two linear layers: ``(B, C, H, W) -> (B, num_classes)`` logits.

    Args:
        in_channels: C of the images.
        image_size: H = W, divisible by 4.
        feature_dim: width of the penultimate layer (the features of the FLD).
    """

    def __init__(self, in_channels: int = 1, image_size: int = 28, num_classes: int = 10,
                 feature_dim: int = 64) -> None:
        super().__init__()
        if image_size % 4:
            raise ValueError(f"LeNet needs an image_size divisible by 4, got {image_size}")
        self.in_channels, self.image_size = in_channels, image_size
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 16, H/2, W/2)
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 32, H/4, W/4)
        )
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(32 * (image_size // 4) ** 2, feature_dim), nn.ReLU())
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer features, shape ``(B, feature_dim)``."""
        return self.fc(self.conv(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (B, num_classes)


def train_lenet(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, steps: int = 2000,
                batch_size: int = 128, lr: float = 2e-3, noise_std: float = 0.0, seed: int = 0,
                progress: bool = True) -> np.ndarray:
    """Train ``model`` in place with cross-entropy (:func:`~diffusion_lab.fit`: Adam, cosine decay).

    Args:
        images: ``(N, C, H, W)`` in [−1, 1]; labels: long ``(N,)``.
        noise_std: standard deviation of Gaussian noise added to each batch (a little makes the
            classifier robust to the grain of generated images).

    Returns:
        Per-step training loss, shape ``(steps,)``.
    """
    check_tensor("images", images, floating=True, finite=True)
    if images.ndim != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}")
    labels = check_labels("labels", labels, images.shape[0], model.head.out_features, allow_null=False)
    noise_std = check_float("noise_std", noise_std, 0.0)
    batch_size = check_int("batch_size", batch_size, 1)
    device = next(model.parameters()).device
    images, labels = images.to(device), labels.to(device)

    def batch_loss(generator: torch.Generator) -> torch.Tensor:
        x, y = minibatch(images, batch_size, generator, labels)
        if noise_std > 0:
            x = x + noise_std * torch.randn(x.shape, generator=generator, device=device)
        return F.cross_entropy(model(x), y, reduction="none")

    # No weight average is wanted for the judge: it is the trained model itself (decay 0).
    return fit(model, batch_loss, steps=steps, lr=lr, ema_decay=0.0, seed=seed, progress=progress,
               desc="classifier").loss_history


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Predicted classes of ``images`` ``(N, C, H, W)``, long ``(N,)`` (call ``model.eval()`` first)."""
    return torch.cat([model(images[i:i + batch_size]).argmax(1) for i in range(0, images.shape[0], batch_size)])


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of ``images`` classified as ``labels``."""
    return (predict(model, images) == labels.to(images.device)).double().mean().item()
