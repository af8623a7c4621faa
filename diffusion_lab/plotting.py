"""Plotting helpers, so that chapter cells stay one or two lines long.

Every helper draws on a given matplotlib ``Axes`` (or makes a small figure), titles it and labels
its axes. Figures are kept small so that a notebook with stored outputs stays light.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from .schedules import NoiseSchedule

BOOK_RC = {
    "figure.dpi": 72,
    "savefig.dpi": 72,
    "figure.figsize": (6.0, 3.0),
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "image.cmap": "gray",
}


def use_book_style() -> None:
    """Apply the book's small-figure matplotlib settings."""
    plt.rcParams.update(BOOK_RC)


def _numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def scatter_2d(ax, points, title: str = "", *, lim: float = 2.5, size: float = 1.0, color: str = "C0") -> None:
    """Scatter ``(n, 2)`` points on square axes [−lim, lim]² with labelled axes."""
    p = _numpy(points)
    ax.scatter(p[:, 0], p[:, 1], s=size, color=color, alpha=0.6, linewidths=0, rasterized=True)
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xlabel="$x_1$", ylabel="$x_2$", title=title, aspect="equal")


def image_grid(images, nrow: int = 8, pad: int = 1) -> np.ndarray:
    """Tile images ``(N, 1, H, W)`` in [−1, 1] into one 2D array in [0, 1], ``nrow`` per row."""
    imgs = (np.clip(_numpy(images)[:, 0], -1, 1) + 1) / 2  # (N, H, W)
    n, h, w = imgs.shape
    ncol = min(nrow, n)
    nrows = -(-n // ncol)
    grid = np.ones((nrows * (h + pad) - pad, ncol * (w + pad) - pad))
    for i, img in enumerate(imgs):
        r, c = divmod(i, ncol)
        grid[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = img
    return grid


def show_images(ax, images, title: str = "", nrow: int = 8) -> None:
    """Show a grid of images ``(N, 1, H, W)`` in [−1, 1] without axis ticks."""
    ax.imshow(image_grid(images, nrow), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set(title=title, xticks=[], yticks=[])
    ax.grid(False)


def plot_schedules(schedules: Sequence[NoiseSchedule], axes=None):
    """Three panels against t/T: β_t, ᾱ_t and log SNR(t), one line per schedule. Returns the axes."""
    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(9.0, 2.6), constrained_layout=True)
    for s in schedules:
        u = np.arange(1, s.T + 1) / s.T
        label = f"{s.name} (T={s.T})"
        axes[0].plot(u, s.beta[1:], label=label)
        axes[1].plot(u, s.alpha_bar[1:], label=label)
        axes[2].plot(u, s.log_snr[1:], label=label)
    axes[0].set(title=r"$\beta_t$", xlabel="$t/T$", yscale="log")
    axes[1].set(title=r"$\bar\alpha_t$", xlabel="$t/T$")
    axes[2].set(title=r"$\log\mathrm{SNR}(t)$", xlabel="$t/T$")
    axes[1].legend(fontsize=7)
    return axes


def plot_loss(ax, loss_history, *, window: int = 100, title: str = "training loss") -> None:
    """Per-step loss (faint) with a moving average over ``window`` steps, on a log scale."""
    loss = np.asarray(loss_history)
    ax.plot(loss, color="C0", alpha=0.25, linewidth=0.5)
    if loss.size >= window:
        smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
        ax.plot(np.arange(window - 1, loss.size), smooth, color="C0", label=f"mean of {window} steps")
        ax.legend(fontsize=7)
    ax.set(title=title, xlabel="step", ylabel="loss", yscale="log")


def plot_trajectory(trajectory, steps: Sequence[int], *, lim: float = 2.5, title: str = "reverse process"):
    """Scatter x_t for the given ``steps`` of a trajectory ``(T + 1, n, 2)`` indexed by t."""
    fig, axes = plt.subplots(1, len(steps), figsize=(1.5 * len(steps), 1.8), constrained_layout=True)
    for ax, t in zip(np.atleast_1d(axes), steps):
        scatter_2d(ax, trajectory[t], f"$t={t}$", lim=lim)
        ax.set(xlabel="", ylabel="", xticks=[], yticks=[])
    fig.suptitle(title)
    return fig


def plot_unet(summary, ax=None, title: str = "UNet: resolution and width of each stage"):
    """Draw a UNet's stages (from :func:`diffusion_lab.unet.summarize`) as bars: height = resolution,
    width ∝ channels, encoder going down on the left, decoder coming up on the right, skips as arcs."""
    if ax is None:
        _, ax = plt.subplots(figsize=(8.5, 3.0), constrained_layout=True)
    rows = summary.rows
    x = 0.0
    centres = {}
    for i, (name, shape) in enumerate(rows):
        channels, res = shape[1], shape[-1]
        width = 0.25 + 0.6 * channels / max(r[1][1] for r in rows)
        colour = "C0" if name.startswith("down") or name == "stem" else "C3" if name.startswith("middle") else "C2"
        if "sample" in name:
            colour = "0.6"
        ax.add_patch(plt.Rectangle((x, 0), width, res, color=colour, alpha=0.8))
        ax.text(x + width / 2, res + 0.4, f"{channels}", ha="center", va="bottom", fontsize=7)
        centres[i] = (x + width / 2, res)
        x += width + 0.35
    # Skips: every encoder stage feeds the decoder stage of the same resolution (drawn once per level).
    enc = [i for i, (n, _) in enumerate(rows) if n == "stem" or (n.startswith("down") and "sample" not in n)]
    dec = [i for i, (n, _) in enumerate(rows) if n.startswith("up") and "sample" not in n]
    for d in dec:
        same = [e for e in enc if rows[e][1][-1] == rows[d][1][-1]]
        if same:
            (x0, h), (x1, _) = centres[same[0]], centres[d]
            ax.annotate("", xy=(x1, h * 0.5), xytext=(x0, h * 0.5),
                        arrowprops=dict(arrowstyle="->", color="0.4", lw=0.8, connectionstyle="arc3,rad=-0.15"))
    top = max(r[1][-1] for r in rows)
    ax.set(xlim=(-0.2, x), ylim=(0, top * 1.2), title=title, xlabel="stage (left: encoder, right: decoder)",
           ylabel="resolution H", xticks=[])
    ax.plot([], [], "s", color="C0", label="encoder")
    ax.plot([], [], "s", color="0.6", label="down/up-sample")
    ax.plot([], [], "s", color="C3", label="middle (attention)")
    ax.plot([], [], "s", color="C2", label="decoder")
    ax.legend(loc="upper center", ncol=4, fontsize=7, frameon=False)
    return ax
