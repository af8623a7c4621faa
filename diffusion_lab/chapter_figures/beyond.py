"""Chapter 11: flow matching against diffusion at equal NFE; the distilled student's steps."""

from __future__ import annotations

import numpy as np
import torch

from .. import figures as F
from .text import sig3


# --- Chapter 11: flow matching against diffusion at equal NFE; the distilled student's steps ------


def flow_vs_diffusion(nfes, flow_samples: dict, diffusion_samples: dict, flow_ratio: dict, diffusion_ratio: dict, *,
                      n_points: int = 1000, lim: float = 3.0) -> F.Explorer:
    """Chapter 11: a flow (Euler steps) and a diffusion model (DDIM steps) at the same number of network calls.

    Panels: the first ``n_points`` samples of each, started from the same noise, and the quality of
    both (energy distance to real data over the real-vs-real floor, log scales) against the NFE, with
    the chosen NFE marked. ``*_samples``: NFE → ``(n, 2)``; ``*_ratio``: NFE → energy ratio.
    """
    nfes = [int(k) for k in nfes]
    missing = [k for k in nfes if not all(k in d for d in (flow_samples, diffusion_samples, flow_ratio, diffusion_ratio))]
    if missing:
        raise ValueError(f"no samples or ratios for NFE {missing}")
    x = np.log2(nfes)
    curves = {name: np.log10([float(r[k]) for k in nfes]) for name, r in (("flow", flow_ratio), ("diffusion", diffusion_ratio))}
    low = min(float(c.min()) for c in curves.values())
    high = max(float(c.max()) for c in curves.values())
    cloud = dict(xlim=(-lim, lim), ylim=(-lim, lim), width=220, height=220)
    panels = {
        "flow": F.Panel("flow matching, Euler", "x₁", "x₂", **cloud),
        "diffusion": F.Panel("diffusion, DDIM", "x₁", "x₂", **cloud),
        "quality": F.Panel("log₁₀ energy distance / floor", "log₂ NFE", xlim=(-0.3, float(x[-1]) + 0.3),
                           ylim=(np.floor(min(low, 0.0)) - 0.2, np.ceil(high) + 0.2), width=230, height=200,
                           layers=[F.line(np.stack([x, curves["flow"]], 1), color="C0"),
                                   F.line(np.stack([x, curves["diffusion"]], 1), color="C1")]),
    }

    def frame(NFE: int) -> dict:
        i = nfes.index(NFE)
        marks = [[x[i], curves["flow"][i]], [x[i], curves["diffusion"][i]]]
        return {
            "flow": [F.points(flow_samples[NFE][:n_points], color="C0", size=2.0)],
            "diffusion": [F.points(diffusion_samples[NFE][:n_points], color="C1", size=2.0)],
            "quality": [F.vline(x[i]), F.points(marks, color="#000000", size=6.0)],
            "readout": f"NFE = {NFE}: energy distance / floor {sig3(float(flow_ratio[NFE]))} for flow matching "
                       f"(blue), {sig3(float(diffusion_ratio[NFE]))} for diffusion (orange); 1 = as close as "
                       "a second real sample",
        }

    return F.Explorer([F.Control("NFE", nfes, start=min(2, len(nfes) - 1))], panels, frame,
                      caption="The same starting noise in every frame and both panels. With few network calls the "
                              "straighter flow keeps the roll's shape; DDIM needs more steps.")


def distilled_students(steps, swiss: dict, digits: dict, swiss_ratio: dict, digits_fld: dict, *,
                       n_points: int = 1000, n_images: int = 8, lim: float = 3.0) -> F.Explorer:
    """Chapter 11: a distilled student against its teacher's own DDIM at the same number of steps N.

    ``swiss``: N → (teacher samples, student samples), each ``(n, 2)``; ``digits``: N → (teacher
    images, student images), each ``(m, 1, H, W)`` in [−1, 1]; ``swiss_ratio`` and ``digits_fld``:
    N → (teacher value, student value) for the readout (energy ratio; FLD).
    """
    steps = [int(n) for n in steps]
    missing = [n for n in steps if not all(n in d for d in (swiss, digits, swiss_ratio, digits_fld))]
    if missing:
        raise ValueError(f"no samples or scores for {missing} step(s)")
    cloud = dict(xlim=(-lim, lim), ylim=(-lim, lim), width=220, height=220)
    panels = {
        "teacher": F.Panel("teacher's DDIM (swiss roll)", "x₁", "x₂", **cloud),
        "student": F.Panel("distilled student (swiss roll)", "x₁", "x₂", **cloud),
        "digits": F.Panel("digits: teacher (top), student", width=42 + 36 * n_images, height=46 + 36 * 2),
    }

    def frame(N: int) -> dict:
        (teacher, student), (teacher_images, student_images) = swiss[N], digits[N]
        grid = torch.cat([teacher_images[:n_images], student_images[:n_images]]).float().clamp(-1, 1)
        return {
            "teacher": [F.points(teacher[:n_points], color="C1", size=2.0)],
            "student": [F.points(student[:n_points], color="C0", size=2.0)],
            "digits": [F.image_grid(grid.numpy(), cols=n_images)],
            "readout": f"{N} DDIM step(s): swiss roll energy distance / floor {sig3(swiss_ratio[N][0])} (teacher), "
                       f"{sig3(swiss_ratio[N][1])} (student); digits FLD {sig3(digits_fld[N][0])} (teacher), "
                       f"{sig3(digits_fld[N][1])} (student)",
        }

    return F.Explorer([F.Control("N", steps, start=min(2, len(steps) - 1))], panels, frame,
                      caption="Same starting noise in every frame. The teacher's own DDIM falls apart below about 16 "
                              "steps; each student, trained for its N, keeps the 64-step teacher's quality.")
