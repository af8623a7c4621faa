"""A UNet for images: ``(x, t[, y]) -> tensor shaped like x`` (Ho et al. 2020, App. B; Ronneberger et al. 2015).

The same class serves 1×8×8 digits, 1×28×28 MNIST and 3×32×32 CIFAR-10; only the configuration
changes (:func:`unet_config`). Its parts:

=====================  =========================================================================
part                   what it does
=====================  =========================================================================
time embedding         sinusoidal features of t (:func:`~diffusion_lab.mlp.sinusoidal_embedding`)
                       through a 2-layer MLP, added inside every residual block
class embedding        optional: a learned vector per class plus one *null class* (index
                       ``num_classes``) for classifier-free guidance (Ho & Salimans 2022)
residual block         GroupNorm → SiLU → 3×3 conv, + time/class feature, GroupNorm → SiLU →
                       dropout → 3×3 conv, plus the skip path (a 1×1 conv when widths differ)
self-attention         one attention layer over the H·W positions, only at low resolution
down / up sampling     stride-2 conv / nearest ×2 + conv; encoder outputs are kept as *skips*
                       and concatenated into the decoder at the same resolution
=====================  =========================================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .validation import check_choice, check_labels, check_tensor
from .mlp import sinusoidal_embedding

MODEL_SIZES = ("tiny", "small", "base", "large")
_SIZE_SETTINGS = {  # base width, residual blocks per level
    "tiny": (16, 1),
    "small": (32, 1),
    "base": (64, 2),
    "large": (128, 2),  # about DDPM's 35.7M-parameter CIFAR-10 model
}


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(groups, channels), channels)


def _zero(module: nn.Module) -> nn.Module:
    """Zero-initialise a layer, so that a new residual branch starts as the identity."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """GroupNorm/SiLU/conv twice, with the embedding added in between, plus a skip path."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float, groups: int) -> None:
        super().__init__()
        self.in_layers = nn.Sequential(_norm(c_in, groups), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1))
        self.emb = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, c_out))
        self.out_layers = nn.Sequential(
            _norm(c_out, groups), nn.SiLU(), nn.Dropout(dropout), _zero(nn.Conv2d(c_out, c_out, 3, padding=1))
        )
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x)  # (B, c_out, H, W)
        h = h + self.emb(emb)[:, :, None, None]  # the embedding is per channel: (B, c_out, 1, 1)
        return self.skip(x) + self.out_layers(h)


class SelfAttention(nn.Module):
    """Multi-head self-attention over the H·W positions (Vaswani et al. 2017), with a residual."""

    def __init__(self, channels: int, groups: int, head_dim: int = 32) -> None:
        super().__init__()
        self.heads = max(1, channels // head_dim)
        self.norm = _norm(channels, groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = _zero(nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        # (B, heads, head_dim, HW) -> (B, heads, HW, head_dim) for scaled dot-product attention.
        out = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        out = out.transpose(-1, -2).reshape(b, c, h, w)  # (B, C, H, W)
        return x + self.proj(out)


class Downsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)  # (B, C, H/2, W/2)


class Upsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))  # (B, C, 2H, 2W)


class Level(nn.Module):
    """The blocks of one resolution: residual blocks, each optionally followed by attention."""

    def __init__(self, blocks: Sequence[ResBlock], attentions: Sequence[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.attentions = nn.ModuleList(attentions)



def check_image_batch(net: nn.Module, x: torch.Tensor, t: torch.Tensor) -> None:
    """An image network's inputs: floating x of shape ``(B, C, H, W)`` matching ``net`` and steps t ``(B,)``."""
    name = type(net).__name__
    expected = (net.in_channels, net.image_size, net.image_size)
    if x.ndim != 4 or tuple(x.shape[1:]) != expected:
        raise ValueError(f"{name} expects x of shape (B, {', '.join(map(str, expected))}), got {tuple(x.shape)}")
    if t.shape != (x.shape[0],):
        raise ValueError(f"{name} expects t of shape ({x.shape[0]},), got {tuple(t.shape)}")
    check_tensor("x", x, floating=True)


def time_and_class_embedding(net: nn.Module, t: torch.Tensor, y: torch.Tensor | None, features: int,
                             dtype: torch.dtype) -> torch.Tensor:
    """``net.time_mlp`` of t's sinusoidal features, plus ``net.class_emb`` of y for a class-conditional net.

    Shared by the UNet and the DiT. y = None means the null class K; an unconditional net refuses labels.
    The features are cast to ``dtype`` (the weights'), so a model in float64 embeds in float64.
    """
    emb = net.time_mlp(sinusoidal_embedding(t, features).to(dtype))
    if net.class_emb is not None:
        y = net.num_classes if y is None else y  # None: the null class
        emb = emb + net.class_emb(check_labels("y", y, t.shape[0], net.num_classes).to(t.device))
    elif y is not None:
        raise ValueError(f"this {type(net).__name__} is unconditional (num_classes=None) but labels y were given")
    return emb

class UNet(nn.Module):
    """A DDPM-style UNet with GroupNorm residual blocks, low-resolution attention and optional classes.

    Args:
        in_channels: C of the images (1 for digits and MNIST, 3 for CIFAR-10).
        image_size: H = W of the images; must be divisible by 2^(levels − 1).
        channels: width of the first level.
        channel_mults: width of each level as a multiple of ``channels``; one level per entry, each
            level but the last halving the resolution.
        n_res_blocks: residual blocks per level in the encoder (the decoder has one more).
        attention_resolutions: resolutions (H) at which self-attention follows each block; the
            middle block always has attention.
        dropout: dropout rate inside residual blocks.
        num_classes: number of classes for conditioning, or None for an unconditional model. A
            conditional model also learns a null class, index ``num_classes``, used when ``y`` is
            None or for the entries of ``y`` equal to ``num_classes`` (classifier-free guidance).
        groups: GroupNorm groups.
        learns_variance: also output C channels r for the reverse variance's weight ν = (r + 1)/2
            (Nichol & Dhariwal 2021): the output then has 2C channels, the prediction first.

    ``forward(x, t, y=None)``: x of shape ``(B, C, H, W)``, integer steps t ``(B,)``, labels y ``(B,)``;
    returns ``(B, C, H, W)`` (``(B, 2C, H, W)`` with ``learns_variance``). The last convolution is
    zero-initialised, so an untrained model outputs 0.
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 28,
        channels: int = 32,
        channel_mults: Sequence[int] = (1, 2, 2),
        n_res_blocks: int = 1,
        attention_resolutions: Sequence[int] = (7,),
        dropout: float = 0.1,
        num_classes: int | None = None,
        groups: int = 8,
        learns_variance: bool = False,
    ) -> None:
        super().__init__()
        self.learns_variance = bool(learns_variance)
        n_levels = len(channel_mults)
        if n_levels < 1 or image_size % 2 ** (n_levels - 1):
            raise ValueError(
                f"image_size {image_size} must be divisible by 2^(levels − 1) = {2 ** (n_levels - 1)} "
                f"for channel_mults={tuple(channel_mults)}; use fewer levels or pad the images"
            )
        if num_classes is not None and num_classes < 1:
            raise ValueError(f"num_classes must be a positive int or None, got {num_classes}")
        self.in_channels, self.image_size, self.num_classes = in_channels, image_size, num_classes
        emb_dim = 4 * channels
        self.time_channels = channels
        self.time_mlp = nn.Sequential(nn.Linear(channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        # One extra row: the null class ∅ of classifier-free guidance.
        self.class_emb = nn.Embedding(num_classes + 1, emb_dim) if num_classes is not None else None
        self.stem = nn.Conv2d(in_channels, channels, 3, padding=1)

        widths = [channels * m for m in channel_mults]
        resolutions = [image_size // 2**i for i in range(n_levels)]
        skip_widths, c = [channels], channels
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        for i, (width, res) in enumerate(zip(widths, resolutions)):
            blocks, attns = [], []
            for _ in range(n_res_blocks):
                blocks.append(ResBlock(c, width, emb_dim, dropout, groups))
                attns.append(SelfAttention(width, groups) if res in attention_resolutions else nn.Identity())
                c = width
                skip_widths.append(c)
            self.down.append(Level(blocks, attns))
            last = i == n_levels - 1
            self.downsample.append(nn.Identity() if last else Downsample(c))
            if not last:
                skip_widths.append(c)
        self.mid = Level([ResBlock(c, c, emb_dim, dropout, groups), ResBlock(c, c, emb_dim, dropout, groups)],
                         [SelfAttention(c, groups), nn.Identity()])
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for i in reversed(range(n_levels)):
            width, res = widths[i], resolutions[i]
            blocks, attns = [], []
            for _ in range(n_res_blocks + 1):
                blocks.append(ResBlock(c + skip_widths.pop(), width, emb_dim, dropout, groups))
                attns.append(SelfAttention(width, groups) if res in attention_resolutions else nn.Identity())
                c = width
            self.up.append(Level(blocks, attns))
            self.upsample.append(Upsample(c) if i > 0 else nn.Identity())
        out_channels = 2 * in_channels if learns_variance else in_channels
        self.out = nn.Sequential(_norm(c, groups), nn.SiLU(), _zero(nn.Conv2d(c, out_channels, 3, padding=1)))

    def embed(self, t: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """The per-example embedding of step t (and class y): shape ``(B, 4·channels)``."""
        return time_and_class_embedding(self, t, y, self.time_channels, self.stem.weight.dtype)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        check_image_batch(self, x, t)
        emb = self.embed(t, y)  # (B, E)
        h = self.stem(x.to(self.stem.weight.dtype))  # (B, channels, H, W); other float dtypes are cast
        skips = [h]
        for level, down in zip(self.down, self.downsample):
            for block, attn in zip(level.blocks, level.attentions):
                h = attn(block(h, emb))
                skips.append(h)
            if not isinstance(down, nn.Identity):
                h = down(h)  # (B, c, H/2, W/2)
                skips.append(h)
        for block, attn in zip(self.mid.blocks, self.mid.attentions):
            h = attn(block(h, emb))
        for level, up in zip(self.up, self.upsample):
            for block, attn in zip(level.blocks, level.attentions):
                h = attn(block(torch.cat([h, skips.pop()], dim=1), emb))  # skip connection
            h = up(h)
        return self.out(h).to(x.dtype)  # (B, C, H, W)


def unet_config(image_shape: Sequence[int], size: str = "small", *, num_classes: int | None = None,
                dropout: float = 0.1) -> dict:
    """Keyword arguments of :class:`UNet` for images of shape ``(C, H, W)`` and a named size.

    Levels: two for H ≤ 8 (8→4), three for H ≤ 28 (28→14→7), four above (32→16→8→4).
    Attention at every level of resolution ≤ 8 except the first. Sizes: ``tiny`` (width 16),
    ``small`` (32), ``base`` (64, two blocks per level), ``large`` (128, DDPM's CIFAR-10 size).
    """
    check_choice("model size", size, MODEL_SIZES)
    c, h, w = (int(s) for s in image_shape)
    if h != w:
        raise ValueError(f"the UNet expects square images, got shape {tuple(image_shape)}")
    mults = (1, 2) if h <= 8 else (1, 2, 2) if h <= 28 else (1, 2, 2, 2)
    resolutions = [h // 2**i for i in range(len(mults))]
    channels, n_res = _SIZE_SETTINGS[size]
    return dict(in_channels=c, image_size=h, channels=channels, channel_mults=mults, n_res_blocks=n_res,
                attention_resolutions=tuple(r for r in resolutions[1:] if r <= 8), dropout=dropout,
                num_classes=num_classes)


@dataclass
class ModelSummary:
    """What :func:`summarize` reports: the parameter count and the output shape of every stage."""

    n_params: int
    rows: list[tuple[str, tuple[int, ...]]]

    def __str__(self) -> str:
        width = max(len(name) for name, _ in self.rows)
        lines = [f"{name:<{width}}  {tuple(shape)}" for name, shape in self.rows]
        return "\n".join(lines + [f"parameters: {self.n_params:,}"])


@torch.no_grad()
def summarize(model: UNet, batch: int = 1) -> ModelSummary:
    """Run a zero batch through ``model`` and record the output shape of each stage (stem, every
    encoder level, its downsampling, the middle, every decoder level, the output)."""
    rows: list[tuple[str, tuple[int, ...]]] = []
    hooks = []

    def record(name: str):
        return lambda module, inputs, output: rows.append((name, tuple(output.shape)))

    stages = [("stem", model.stem)]
    n = len(model.down)
    for i, (level, down) in enumerate(zip(model.down, model.downsample)):
        stages.append((f"down {i}: {len(level.blocks)} res block(s)"
                       + (" + attention" if not isinstance(level.attentions[0], nn.Identity) else ""),
                       level.attentions[-1] if not isinstance(level.attentions[-1], nn.Identity)
                       else level.blocks[-1]))
        if not isinstance(down, nn.Identity):
            stages.append((f"down {i}: downsample", down))
    stages.append(("middle: res + attention + res", model.mid.blocks[-1]))
    for j, (level, up) in enumerate(zip(model.up, model.upsample)):
        i = n - 1 - j
        stages.append((f"up {i}: {len(level.blocks)} res block(s) with skips"
                       + (" + attention" if not isinstance(level.attentions[0], nn.Identity) else ""),
                       level.attentions[-1] if not isinstance(level.attentions[-1], nn.Identity)
                       else level.blocks[-1]))
        if not isinstance(up, nn.Identity):
            stages.append((f"up {i}: upsample", up))
    stages.append(("output", model.out))
    for name, module in stages:
        hooks.append(module.register_forward_hook(record(name)))
    device = next(model.parameters()).device
    x = torch.zeros(batch, model.in_channels, model.image_size, model.image_size, device=device)
    t = torch.ones(batch, dtype=torch.long, device=device)
    try:
        model(x, t)
    finally:
        for h in hooks:
            h.remove()
    return ModelSummary(sum(p.numel() for p in model.parameters()), rows)
