"""Chapters 7 to 10: DDIM's steps and η, the guidance weight, a batch denoised step by step, SDEdit and RePaint."""

from __future__ import annotations

import numpy as np
import torch

from .. import figures as F
from .text import fmt_g


# --- Chapter 7: DDIM, the number of steps and η ------------------------------------------------

@torch.no_grad()
def ddim_steps_and_eta(toy_denoiser, mixture, image_denoiser, *, steps=(2, 5, 10, 20, 50), etas=(0.0, 0.5, 1.0),
                       n_points: int = 1000, per_class: int = 2, seed: int = 0, lim: float = 2.3) -> F.Explorer:
    """Chapter 7: DDIM samples for every number of steps S and every η, from the same noise.

    Panels: ``n_points`` samples of a 2D toy (``toy_denoiser``, e.g. the mixture's exact denoiser),
    with their energy ratio to ``mixture`` (1 + n D̂² / E|Y − Y'|, 1 on average for perfect samples)
    in the readout; and images from ``image_denoiser`` (``per_class`` of each class of a
    class-conditional UNet, or ``10 · per_class`` unconditional ones). The starting noise and the
    fresh noise (one generator per frame, seeded alike) are the same in every frame, so moving a
    slider changes only the sampler.
    """
    from ..metrics import energy_distance_to_mixture, mixture_mean_distance
    from ..samplers import ddim_sample

    steps, etas = [int(s) for s in steps], [float(e) for e in etas]
    generator = torch.Generator().manual_seed(seed)
    x_points = torch.randn(n_points, 2, generator=generator, dtype=torch.float64)
    net = image_denoiser.net
    n_classes = image_denoiser.num_classes
    labels = None if n_classes is None else torch.arange(n_classes).repeat(per_class)  # (K · per_class,)
    n_images = 10 * per_class if labels is None else len(labels)
    x_images = torch.randn(n_images, net.in_channels, net.image_size, net.image_size, generator=generator)
    images_denoiser = image_denoiser if labels is None else image_denoiser.replace(labels=labels)
    floor = mixture_mean_distance(mixture)
    cols = 5  # near-square grids, also in the live figure's square panels

    def frame(S: int, eta: float) -> dict:
        points = ddim_sample(toy_denoiser, x_points, steps=S, eta=eta, generator=torch.Generator().manual_seed(seed + 1))
        images = ddim_sample(images_denoiser, x_images, steps=S, eta=eta,
                             generator=torch.Generator().manual_seed(seed + 2)).clamp(-1, 1)
        ratio = 1 + n_points * energy_distance_to_mixture(points, mixture) / floor
        return {"toy": [F.points(points, color="C0", size=1.5)],
                "images": [F.image_grid(images.float().numpy(), cols=cols)],
                "readout": f"S = {S} steps, η = {eta:g}: energy ratio of the toy samples {fmt_g(ratio)} "
                           "(1 = perfect, on average)"}

    rows = -(-n_images // cols)
    panels = {
        "toy": F.Panel(f"toy: {n_points:,} samples", "x₁", "x₂", (-lim, lim), (-lim, lim), width=250, height=250),
        "images": F.Panel(f"digits, {per_class} of each" if labels is not None else "digits",
                          width=42 + 36 * cols, height=46 + 36 * rows),
    }
    return F.Explorer(
        [F.Control("steps S", steps, start=min(2, len(steps) - 1)), F.Control("η", etas, fmt="{:g}")], panels,
        lambda **c: frame(c["steps S"], c["η"]),
        caption="Same starting noise and fresh noise in every frame. Few steps: η = 0 blurs the modes, η > 0 "
                "also leaves noise that the remaining steps cannot remove. Many steps: every η gives the same law.")


# --- Chapter 8: the guidance weight w ----------------------------------------------------------

@torch.no_grad()
def guidance_weight(toy_denoiser, tradeoff: dict, image_denoiser, *, n_per_class: int = 300, toy_steps: int = 50,
                    image_steps: int = 10, per_class: int = 2, seed: int = 0, lim: float = 3.2) -> F.Explorer:
    """Chapter 8: classifier-free guidance of weight w on a labelled 2D toy and on images, with the trade-off.

    The slider runs over ``tradeoff["scale"]`` (the result of :func:`~diffusion_lab.guidance_tradeoff`
    for ``toy_denoiser``). Panels: ``n_per_class`` samples of every class of the toy,
    ``toy_denoiser.replace(labels=k, guidance=w)`` with DDIM (``toy_steps``); ``per_class`` images of
    every class from ``image_denoiser`` at the same w (DDIM, ``image_steps``); and the measured
    accuracy against diversity, the current w marked. The same noise in every frame.
    """
    from ..samplers import ddim_sample

    scales = [float(w) for w in tradeoff["scale"]]
    accuracy, diversity = np.asarray(tradeoff["accuracy"]), np.asarray(tradeoff["diversity"])
    k_toy, k_images = toy_denoiser.num_classes, image_denoiser.num_classes
    if k_toy is None or k_images is None:
        raise ValueError("guidance needs class-conditional denoisers (num_classes is None)")
    generator = torch.Generator().manual_seed(seed)
    x_toy = torch.randn(k_toy, n_per_class, 2, generator=generator)  # (K, n, 2)
    net = image_denoiser.net
    labels = torch.arange(k_images).repeat(per_class)
    x_images = torch.randn(len(labels), net.in_channels, net.image_size, net.image_size, generator=generator)
    cols = 5  # near-square grids, also in the live figure's square panels
    rows = -(-len(labels) // cols)
    pad_x = 0.1 * float(diversity.max() - diversity.min()) + 1e-3
    pad_y = 0.1 * float(accuracy.max() - accuracy.min()) + 1e-3
    curve = np.stack([diversity, accuracy], 1)
    panels = {
        "toy": F.Panel(f"toy: {n_per_class} samples per class", "x₁", "x₂", (-lim, lim), (-lim, lim),
                       width=250, height=250),
        "images": F.Panel(f"digits, {per_class} of each", width=42 + 36 * cols, height=46 + 36 * rows),
        "tradeoff": F.Panel("accuracy against diversity", "diversity E|X − X'|", "accuracy",
                            (float(diversity.min()) - pad_x, float(diversity.max()) + pad_x),
                            (float(accuracy.min()) - pad_y, float(accuracy.max()) + pad_y), width=250, height=250,
                            layers=[F.line(curve, color="#999999"), F.points(curve, color="#999999", size=5.0)]),
    }

    def frame(w: float) -> dict:
        i = scales.index(w)
        toy = [F.points(ddim_sample(toy_denoiser.replace(labels=k, guidance=w), x_toy[k], steps=toy_steps),
                        color=f"C{k}", size=1.5) for k in range(k_toy)]
        guided = image_denoiser.replace(labels=labels, guidance=w)
        images = ddim_sample(guided, x_images, steps=image_steps).clamp(-1, 1)
        return {"toy": toy, "images": [F.image_grid(images.float().numpy(), cols=cols)],
                "tradeoff": [F.points(curve[i:i + 1], color="C3", size=9.0)],
                "readout": f"w = {w:g}: judged accuracy {fmt_g(float(accuracy[i]))}, within-class diversity "
                           f"{fmt_g(float(diversity[i]))} (toy)"}

    return F.Explorer(
        [F.Control("w", scales, fmt="{:g}")], panels, lambda w: frame(w),
        caption="The same noise in every frame. As w grows each class contracts and moves away from the others: "
                "accuracy rises towards 1 while the within-class diversity falls.")


# --- Chapter 9: a batch of digits denoised step by step ----------------------------------------

def denoising_trajectory(process, times: torch.Tensor, trajectory: torch.Tensor, x0_hats: torch.Tensor, *,
                         cols: int = 5) -> F.Explorer:
    """Chapter 9: a sampler's trajectory on a batch of images, a slider over the reverse steps.

    Panels: the states x_t (clipped to the data range [−1, 1] for display), the network's guess x̂₀ at
    each of them, and the signal scale s_t and noise std σ_t of ``process`` against the number of
    steps taken, with the current step marked. The readout gives t, s_t, σ_t and how far x̂₀ moved
    in this step (root-mean-square over the batch's pixels).

    Args:
        process: the noise process (``denoiser.process``); its ``scale_std`` gives s_t and σ_t.
        times: the times visited, ``(S + 1,)`` from the start down to 0 (``process.time_grid(S)``).
        trajectory: ``(S + 1, B, C, H, W)``, the states in sampling order (``return_trajectory=True``).
        x0_hats: ``(S + 1, B, C, H, W)``, x̂₀ at each state (at the last one, the sample itself).
        cols: images per row.
    """
    times = torch.as_tensor(times)
    if not (len(times) == len(trajectory) == len(x0_hats)) or trajectory.shape != x0_hats.shape:
        raise ValueError(f"times {tuple(times.shape)}, trajectory {tuple(trajectory.shape)} and x0_hats "
                         f"{tuple(x0_hats.shape)} must describe the same S + 1 states")
    S, B = len(times) - 1, trajectory.shape[1]
    s, sigma = (np.asarray(v, dtype=np.float64) for v in process.scale_std(times))
    k_axis = np.arange(S + 1, dtype=np.float64)
    move = [0.0] + [float((x0_hats[k] - x0_hats[k - 1]).double().pow(2).mean().sqrt()) for k in range(1, S + 1)]
    rows = -(-B // cols)
    size = dict(width=42 + 36 * cols, height=46 + 36 * rows)
    panels = {
        "x_t": F.Panel("x_t (clipped to [−1, 1])", **size),
        "x0_hat": F.Panel("the guess x̂₀", **size),
        "noise": F.Panel("s_t (blue) and σ_t (orange)", xlabel="reverse steps taken", xlim=(0.0, float(S)),
                         ylim=(-0.02, 1.02), width=230, height=46 + 36 * rows + 40,
                         layers=[F.line(np.stack([k_axis, s], 1), color="C0"),
                                 F.line(np.stack([k_axis, sigma], 1), color="C1")]),
    }

    def frame(step: int) -> dict:
        k = int(step)
        t = int(times[k]) if not times.is_floating_point() else float(times[k])
        moved = "" if k == 0 else f"; x̂₀ moved by {fmt_g(move[k], 2)} (RMS) in this step"
        return {
            "x_t": [F.image_grid(trajectory[k].float().clamp(-1, 1).numpy(), cols=cols)],
            "x0_hat": [F.image_grid(x0_hats[k].float().clamp(-1, 1).numpy(), cols=cols)],
            "noise": [F.vline(k), F.points([[k, s[k]], [k, sigma[k]]], color="#000000", size=6.0)],
            "readout": f"after {k} of {S} steps: t = {t:g}, s_t = {fmt_g(float(s[k]))}, "
                       f"σ_t = {fmt_g(float(sigma[k]))}{moved}",
        }

    return F.Explorer(
        [F.Control("step", list(range(S + 1)), play=True)], panels, frame,
        caption="Press play. The guess x̂₀ settles on a digit's shape while x_t is still mostly noise; "
                "the last steps only sharpen strokes.")


# --- Chapter 10: SDEdit's t₀ and RePaint's resampling count ------------------------------------

def edit_and_inpaint(process, guides: torch.Tensor, edits: dict, truth: torch.Tensor, mask: torch.Tensor,
                     fills: dict, *, shown: int = 10) -> F.Explorer:
    """Chapter 10: two sliders, SDEdit's starting step t₀ and RePaint's number of resamplings U.

    Panels: the guides above their SDEdit edits at the chosen t₀; the masked inputs (missing pixels
    grey), the inpaintings with the chosen U and the truth. The readout measures all the images,
    not only the ``shown`` ones: the edits' root-mean-square distance to their guides, and the
    fills' mean squared error on the missing pixels.

    Args:
        process: the noise process (its ``scale_std`` gives s_t₀²).
        guides: ``(n, C, H, W)`` the images SDEdit started from; ``edits``: t₀ → ``(n, C, H, W)``.
        truth: ``(n, C, H, W)`` the complete images; ``mask``: bool, broadcastable to them, True where observed.
        fills: U → ``(n, C, H, W)`` inpaintings of ``truth`` observed through ``mask``.
    """
    if not edits or not fills:
        raise ValueError("edit_and_inpaint needs at least one edit (t₀) and one fill (U)")
    mask = torch.as_tensor(mask, dtype=torch.bool).expand_as(truth)
    missing = ~mask
    observed = torch.where(mask, truth, torch.zeros_like(truth))  # missing pixels mid-grey

    def grid(*rows: torch.Tensor) -> dict:
        return F.image_grid(torch.cat([r[:shown] for r in rows]).float().clamp(-1, 1).numpy(), cols=shown)

    distance = {t0: float((x - guides).flatten(1).pow(2).mean(1).sqrt().mean()) for t0, x in edits.items()}
    error = {u: float(((x - truth) ** 2)[missing].mean()) for u, x in fills.items()}
    scale2 = {t0: float(process.scale_std(torch.tensor([t0]))[0][0]) ** 2 for t0 in edits}
    tile = 30  # pixels per image on the page
    width = 42 + tile * shown
    panels = {
        "sdedit": F.Panel("SDEdit: guides (top), edits", width=width, height=46 + tile * 2),
        "repaint": F.Panel("RePaint: input, fill, truth", width=width, height=46 + tile * 3),
    }

    def frame(**chosen) -> dict:
        t0, u = chosen["t₀"], chosen["U"]
        return {
            "sdedit": [grid(guides, edits[t0])],
            "repaint": [grid(observed, fills[u], truth)],
            "readout": f"SDEdit from t₀ = {t0:g} (s_t₀² = {fmt_g(scale2[t0], 2)}): RMS distance to the guide "
                       f"{fmt_g(distance[t0], 2)}. RePaint with U = {u}: MSE on the missing pixels "
                       f"{fmt_g(error[u], 3)} (means over {len(truth)} images)",
        }

    return F.Explorer(
        [F.Control("t₀", list(edits), fmt="{:g}", start=len(edits) // 3), F.Control("U", list(fills))], panels, frame,
        caption="Left slider: a larger t₀ gives more realistic digits that forget their guide. Right slider: more "
                "resampling lets the filled-in strokes join the observed ones.")
