"""A diffusion transformer, DiT: ``(x, t[, y]) -> tensor shaped like x`` (Peebles & Xie 2023).

The image is cut into non-overlapping P×P patches, each patch becomes one token, a stack of
transformer blocks mixes the tokens, and a last linear layer turns every token back into its patch.
It is a drop-in replacement for :class:`~diffusion_lab.UNet`: same call, same output, same
``num_classes`` (with the null class for classifier-free guidance) and ``learns_variance``.

=====================  =========================================================================
part                   what it does
=====================  =========================================================================
patchify               ``(B, C, H, W) -> (B, N, P·P·C)``, N = (H/P)·(W/P) tokens in row-major
                       patch order (:func:`patchify`); a linear map embeds each to width D
position embedding     fixed 2D sine-cosine features of each patch's (row, column), added once
conditioning c         sinusoidal features of t through a 2-layer MLP, plus a learned class
                       vector (one extra row: the null class), shape ``(B, D)``
block (adaLN-Zero)     from c: shift, scale, gate for attention and for the MLP;
                       h ← h + gate₁ · Attn(LN(h)·(1 + scale₁) + shift₁), then the same with the MLP.
                       The map c → (shift, scale, gate) is zero-initialised: every block starts
                       as the identity (Peebles & Xie 2023, Sec. 3.2)
final layer            adaLN (shift, scale) then a zero-initialised linear map to P·P·C' numbers
                       per token, unpatchified to ``(B, C', H, W)``: an untrained DiT outputs 0
=====================  =========================================================================
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .mlp import sinusoidal_embedding
from .unet import check_image_batch, time_and_class_embedding
from .validation import check_choice, check_int

DIT_SIZES = ("tiny", "small", "base")
_SIZE_SETTINGS = {  # width D, depth (blocks), heads
    "tiny": (48, 4, 4),  # on 1×8×8 with P = 2: within 1 % of the tiny UNet's parameters
    "small": (128, 6, 4),
    "base": (384, 12, 6),  # DiT-S of Peebles & Xie
}


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def check_patch_size(patch_size: object, image_size: int) -> int:
    """``patch_size`` as an int that divides ``image_size``; otherwise a ValueError naming the valid ones."""
    p = check_int("patch_size", patch_size, 1)
    if image_size % p:
        raise ValueError(f"patch_size {p} does not divide image_size {image_size}; "
                         f"choose one of: {', '.join(map(str, _divisors(image_size)))}")
    return p


def patchify(x: torch.Tensor, patch_size: int) -> torch.Tensor:
    """``(B, C, H, W) -> (B, N, P·P·C)``: patch (i, j) is token i·(W/P) + j, its numbers ordered
    (row in the patch, column in the patch, channel)."""
    b, c, h, w = x.shape
    p = check_patch_size(patch_size, h)
    check_patch_size(p, w)
    x = x.reshape(b, c, h // p, p, w // p, p)  # (B, C, H/P, P, W/P, P)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // p) * (w // p), p * p * c)  # (B, N, P·P·C)


def unpatchify(tokens: torch.Tensor, patch_size: int, height: int, width: int) -> torch.Tensor:
    """The inverse of :func:`patchify`: ``(B, N, P·P·C) -> (B, C, H, W)``."""
    b, n, d = tokens.shape
    p = patch_size
    c = d // (p * p)
    x = tokens.reshape(b, height // p, width // p, p, p, c)  # (B, H/P, W/P, P, P, C)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(b, c, height, width)  # (B, C, H, W)


def position_embedding_2d(rows: int, cols: int, dim: int) -> torch.Tensor:
    """Fixed 2D sine-cosine position features ``(rows·cols, dim)``: the first half encodes the row, the
    second the column, each as :func:`~diffusion_lab.mlp.sinusoidal_embedding` (as in ViT/MAE and DiT)."""
    if dim % 4:
        raise ValueError(f"the DiT width must be divisible by 4 for 2D position features, got {dim}")
    r, c = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")  # (rows, cols) each
    return torch.cat([sinusoidal_embedding(r.reshape(-1), dim // 2),
                      sinusoidal_embedding(c.reshape(-1), dim // 2)], dim=1)  # (N, D)


def modulate(h: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: ``h · (1 + scale) + shift`` with per-example ``shift``, ``scale`` of shape ``(B, D)``
    broadcast over the N tokens of ``h`` ``(B, N, D)``."""
    return h * (1 + scale[:, None, :]) + shift[:, None, :]


class Attention(nn.Module):
    """Multi-head self-attention over the tokens (Vaswani et al. 2017): ``(B, N, D) -> (B, N, D)``.

    With a single token the softmax over one key is 1 and the output is ``proj(v(h))``, the linear
    map W_o W_v h (plus biases)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"the DiT width {width} must be divisible by heads {heads}; "
                             f"choose heads in: {', '.join(map(str, _divisors(width)))}")
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, n, d = h.shape
        q, k, v = self.qkv(h).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # (B, heads, N, d/heads)
        out = F.scaled_dot_product_attention(q, k, v)  # softmax(q kᵀ / √d_head) v
        return self.proj(out.transpose(1, 2).reshape(b, n, d))  # (B, N, D)


class DiTBlock(nn.Module):
    """A transformer block whose LayerNorms are modulated by c, with gated residuals (adaLN-Zero)."""

    def __init__(self, width: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(width, heads)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, width))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))
        nn.init.zeros_(self.ada[1].weight)  # adaLN-Zero: all gates 0, so the block is the identity
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(c).chunk(6, dim=1)  # six (B, D)
        h = h + gate1[:, None, :] * self.attn(modulate(self.norm1(h), shift1, scale1))
        return h + gate2[:, None, :] * self.mlp(modulate(self.norm2(h), shift2, scale2))  # (B, N, D)


class DiT(nn.Module):
    """A diffusion transformer with adaLN-Zero conditioning on t and an optional class (Peebles & Xie 2023).

    Args:
        in_channels: C of the images.
        image_size: H = W of the images.
        patch_size: P, the side of a patch; must divide ``image_size``. N = (H/P)² tokens.
        width: D, the token width.
        depth: number of transformer blocks.
        heads: attention heads (must divide ``width``).
        mlp_ratio: hidden width of each block's MLP as a multiple of D.
        num_classes: K for a class-conditional model (the null class is index K), or None.
        learns_variance: also output C channels for the reverse variance's weight (2C in all).

    ``forward(x, t, y=None)``: x ``(B, C, H, W)``, integer steps t ``(B,)``, labels y ``(B,)``; returns
    ``(B, C, H, W)`` (``(B, 2C, H, W)`` with ``learns_variance``), 0 before training.
    """

    def __init__(self, in_channels: int = 1, image_size: int = 8, patch_size: int = 2, width: int = 48,
                 depth: int = 4, heads: int = 4, mlp_ratio: float = 4.0, num_classes: int | None = None,
                 learns_variance: bool = False) -> None:
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels, 1)
        self.image_size = check_int("image_size", image_size, 1)
        self.patch_size = check_patch_size(patch_size, image_size)
        width, depth = check_int("width", width, 4), check_int("depth", depth, 1)
        heads = check_int("heads", heads, 1)
        if num_classes is not None:
            check_int("num_classes", num_classes, 1)
        self.num_classes, self.width = num_classes, width
        self.learns_variance = bool(learns_variance)
        p, side = self.patch_size, image_size // self.patch_size
        self.embed = nn.Linear(p * p * in_channels, width)  # a P×P convolution with stride P
        self.register_buffer("pos", position_embedding_2d(side, side, width), persistent=False)  # (N, D)
        self.time_mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        # One extra row: the null class ∅ of classifier-free guidance.
        self.class_emb = nn.Embedding(num_classes + 1, width) if num_classes is not None else None
        self.blocks = nn.ModuleList(DiTBlock(width, heads, mlp_ratio) for _ in range(depth))
        self.final_norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.final_ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))
        self.out_channels = 2 * in_channels if learns_variance else in_channels
        self.final = nn.Linear(width, p * p * self.out_channels)
        for layer in (self.final_ada[1], self.final):  # an untrained model outputs 0, like the UNet
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def condition(self, t: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """The conditioning vector c of step t (and class y): shape ``(B, D)``."""
        return time_and_class_embedding(self, t, y, self.width, self.embed.weight.dtype)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        check_image_batch(self, x, t)
        c = self.condition(t, y)  # (B, D)
        h = self.embed(patchify(x.to(self.embed.weight.dtype), self.patch_size))  # (B, N, D)
        h = h + self.pos.to(h.dtype)
        for block in self.blocks:
            h = block(h, c)
        shift, scale = self.final_ada(c).chunk(2, dim=1)
        out = self.final(modulate(self.final_norm(h), shift, scale))  # (B, N, P·P·C')
        return unpatchify(out, self.patch_size, self.image_size, self.image_size).to(x.dtype)  # (B, C', H, W)


def dit_config(image_shape: Sequence[int], size: str = "tiny", *, num_classes: int | None = None,
               patch_size: int = 2) -> dict:
    """Keyword arguments of :class:`DiT` for images of shape ``(C, H, W)`` and a named size.

    Sizes: ``tiny`` (D = 48, 4 blocks: on 1×8×8 with P = 2 within 1 % of the parameters of
    ``unet_config((1, 8, 8), "tiny")``), ``small`` (128, 6), ``base`` (384, 12, DiT-S)."""
    check_choice("DiT size", size, DIT_SIZES)
    c, h, w = (int(s) for s in image_shape)
    if h != w:
        raise ValueError(f"the DiT expects square images, got shape {tuple(image_shape)}")
    width, depth, heads = _SIZE_SETTINGS[size]
    return dict(in_channels=c, image_size=h, patch_size=check_patch_size(patch_size, h), width=width,
                depth=depth, heads=heads, num_classes=num_classes)
