"""Chapters 1 to 3: the forward process, the terms of the bound, the forward posterior."""

from __future__ import annotations

import numpy as np
import torch

from .. import figures as F
from .text import COLOR_NAMES, curve, fmt_g, percent


# --- Chapter 1: the forward process -------------------------------------------------------------

def forward_variants() -> dict:
    """The schedules of chapter 1's explorer: the three of :data:`~diffusion_lab.schedules.SCHEDULES` at
    T = 1000, and DDPM's unscaled β range 1e-4..0.02 with only T = 100 steps (ᾱ_T stays far from 0)."""
    from ..schedules import SCHEDULES, linear_schedule, make_schedule

    variants = {f"{name}, T = 1000": make_schedule(name, 1000) for name in SCHEDULES}
    variants["linear, T = 100, unscaled β"] = linear_schedule(100, beta_start=1e-4, beta_end=0.02)
    return variants


def forward_process(
    points: torch.Tensor,
    digit: torch.Tensor,
    variants: dict | None = None,
    *,
    fractions: np.ndarray | None = None,
    n_points: int = 400,
    seed: int = 0,
    lim: float = 3.0,
) -> F.Explorer:
    """Chapter 1: x_t = s_t x_0 + σ_t ε for a point cloud and a digit, with ᾱ_t and log SNR(t) against t/T.

    Controls: the schedule and t/T. Every frame uses the same ε (drawn once with ``seed``), so moving
    t shows one trajectory of the closed form q(x_t | x_0). The ᾱ_t and log-SNR curves of all
    variants are drawn once; a marker shows the chosen schedule at t.

    Args:
        points: ``(n, 2)`` clean 2D data (the first ``n_points`` are shown).
        digit: ``(1, 1, H, W)`` one clean image in [−1, 1].
        variants: label → :class:`~diffusion_lab.schedules.NoiseSchedule` (default :func:`forward_variants`).
        fractions: the values of t/T offered by the slider (default 0, 0.025, ..., 1).
    """
    from ..forward import q_sample

    variants = forward_variants() if variants is None else dict(variants)
    if not variants:
        raise ValueError("variants must name at least one schedule")
    fractions = np.linspace(0.0, 1.0, 41) if fractions is None else np.asarray(fractions, dtype=np.float64)
    points = points[:n_points]
    generator = torch.Generator().manual_seed(seed)
    eps_points = torch.randn(points.shape, generator=generator, dtype=points.dtype)
    eps_digit = torch.randn(digit.shape, generator=generator, dtype=digit.dtype)
    colors = [f"C{i}" for i in range(len(variants))]

    abar_curves, snr_curves, low, high = [], [], 0.0, 0.0
    for color, s in zip(colors, variants.values()):
        steps = np.arange(s.T + 1)
        abar_curves.append(F.line(curve(steps / s.T, s.alpha_bar), color=color))
        snr_curves.append(F.line(curve(steps[1:] / s.T, s.log_snr[1:]), color=color))
        low, high = min(low, float(s.log_snr[1:].min())), max(high, float(s.log_snr[1:].max()))
    panels = {
        "points": F.Panel("swiss roll x_t", xlim=(-lim, lim), ylim=(-lim, lim), width=200, height=200),
        "digit": F.Panel("digit x_t", xlim=(0, 1), ylim=(0, 1), width=140, height=140),
        "alpha_bar": F.Panel("ᾱ_t", xlabel="t / T", xlim=(0, 1), ylim=(-0.02, 1.02), width=200, height=180,
                             layers=abar_curves),
        "log_snr": F.Panel("log SNR(t)", xlabel="t / T", xlim=(0, 1), ylim=(np.floor(low) - 1, np.ceil(high) + 1),
                           width=200, height=180, layers=snr_curves),
    }

    def frame(**chosen) -> dict:  # the control "t/T" is not a Python name
        schedule, fraction = chosen["schedule"], float(chosen["t/T"])
        s = variants[schedule]
        t = int(round(fraction * s.T))
        abar = float(s.alpha_bar[t])
        marker = {"color": "#000000", "size": 7.0}
        layers = {
            "points": [F.points(q_sample(s, points, t, noise=eps_points))],
            "digit": [F.image(q_sample(s, digit, t, noise=eps_digit)[0, 0])],
            "alpha_bar": [F.vline(fraction), F.points([[fraction, abar]], **marker)],
            "log_snr": [F.vline(fraction)],
        }
        if t == 0:
            snr_text = "SNR = ∞ (clean data)"
        else:
            layers["log_snr"].append(F.points([[fraction, float(s.log_snr[t])]], **marker))
            snr_text = f"SNR = {fmt_g(float(s.snr[t]))}, log SNR = {float(s.log_snr[t]):.2f}"
        layers["readout"] = f"{schedule}: t = {t} / {s.T}, ᾱ_t = {fmt_g(abar)}, {snr_text}"
        return layers

    names = ", ".join(f"{label} ({COLOR_NAMES[i % 10]})" for i, label in enumerate(variants))
    return F.Explorer(
        [F.Control("schedule", list(variants)), F.Control("t/T", list(fractions), fmt="{:.3g}", start=len(fractions) // 4)],
        panels, frame,
        caption=f"The same ε in every frame. Curves: {names}; the black marker is the chosen schedule at t.")



# --- Chapter 2: the terms of the bound ----------------------------------------------------------

def elbo_terms(terms: dict, *, unit: str = "nats") -> F.Explorer:
    """Chapter 2: the terms L_0, L_1, ..., L_{T−1} of the bound as bars, a slider over the step t.

    Each frame highlights the term of step t (L_0 at t = 1, the KL term L_{t−1} at t ≥ 2) and reads
    out its value and its share of the bound L = L_0 + Σ L_{t−1} + L_T (the shares add up to 100 %;
    a negative L_0, a log-density, makes the others add up to more). The other panels show the
    terms on a log scale and the running share of the denoising terms L_1 … L_{t−1}.

    Args:
        terms: label → the per-example terms of one bound, ``(T + 1, B)`` as in
            ``dl.elbo_terms(...).terms`` (row 0 L_0, row k L_k, row T the prior term L_T); each
            variant is one value of the first control (e.g. the reverse variance ω_t²).
        unit: the unit of the terms, for the labels.
    """
    if not terms:
        raise ValueError("terms must name at least one bound")
    means = {label: np.asarray(v.double().mean(1) if isinstance(v, torch.Tensor) else np.mean(v, axis=1),
                               dtype=np.float64) for label, v in terms.items()}
    T = {len(m) - 1 for m in means.values()}
    if len(T) != 1 or min(T) < 2:
        raise ValueError(f"every bound needs the same number T + 1 ≥ 3 of terms; got {sorted(len(m) for m in means.values())}")
    T = T.pop()
    colors = {label: f"C{i + 1}" for i, label in enumerate(means)}
    steps = np.arange(2, T + 1)
    denoising = {label: m[1:T] for label, m in means.items()}  # L_1 .. L_{T−1}, steps t = 2 .. T
    if any(np.any(d <= 0) for d in denoising.values()):
        raise ValueError("the denoising terms (KL divergences) must be positive to be drawn on a log scale")
    shares = {label: np.cumsum(d) / d.sum() for label, d in denoising.items()}
    log_terms = {label: np.log10(d) for label, d in denoising.items()}
    bar_low = min(0.0, *(float(m[:T].min()) for m in means.values()))
    bar_high = max(float(m[:T].max()) for m in means.values())
    log_low = min(float(v.min()) for v in log_terms.values())
    log_high = max(float(v.max()) for v in log_terms.values())
    panels = {
        "bars": F.Panel(f"terms L_0 … L_(T−1) ({unit})", xlabel="step t", xlim=(0.0, T + 1.0),
                        ylim=(1.08 * bar_low, 1.08 * bar_high), width=260, height=200),
        "log": F.Panel("log₁₀ L_(t−1)", xlabel="step t", xlim=(1.0, T + 1.0),
                       ylim=(np.floor(log_low), np.ceil(log_high)), width=230, height=200,
                       layers=[F.line(np.stack([steps, log_terms[k]], 1), color=colors[k]) for k in means]),
        "share": F.Panel("running share of Σ L_(t−1)", xlabel="step t", xlim=(1.0, T + 1.0), ylim=(0.0, 1.02),
                         width=230, height=200,
                         layers=[F.line(np.stack([steps, shares[k]], 1), color=colors[k]) for k in means]),
    }

    def frame(**chosen) -> dict:  # the control "ω_t²" is not a Python name
        variance, t = chosen["ω_t²"], int(chosen["t"])
        m = means[variance]
        total = float(m.sum())
        layers = {"bars": [F.bars(np.concatenate([[0.0], m[:T]]), highlight=t, color=colors[variance])],
                  "log": [F.vline(t)], "share": [F.vline(t)]}
        term = f"L_{t - 1}"
        if t == 1:
            what = "the decoder term, a −log-density" + (", negative here" if m[0] < 0 else "")
            running = "no denoising term yet"
        else:
            what = f"the KL term of step t = {t}"
            share = percent(shares[variance][t - 2])
            running = (f"L_1 alone: {share} of Σ L_(t−1)" if t == 2 else f"L_1 … L_{t - 1} together: {share} of Σ L_(t−1)")
            layers["log"].append(F.points([[t, log_terms[variance][t - 2]]], color="#000000", size=7.0))
            layers["share"].append(F.points([[t, shares[variance][t - 2]]], color="#000000", size=7.0))
        layers["readout"] = (f"ω_t² = {variance}, t = {t}: {term} = {fmt_g(float(m[t - 1]), 4)} {unit} ({what}), "
                             f"{percent(float(m[t - 1]) / total)} of the bound L = {fmt_g(total, 4)} {unit}; {running}")
        return layers

    names = ", ".join(f"ω_t² = {label} ({COLOR_NAMES[int(c[1:]) % 10]})" for label, c in colors.items())
    prior = max(float(m[T]) for m in means.values())
    prior_text = "below 1e-5" if abs(prior) < 1e-5 else f"at most {fmt_g(prior)} {unit}"
    return F.Explorer(
        [F.Control("ω_t²", list(means)), F.Control("t", list(range(1, T + 1)))], panels, frame,
        caption=f"Bars: the chosen bound, step t in black. Curves: {names}. The prior term L_T "
                f"({prior_text}) counts in the bound but is not drawn.")


# --- Chapter 3: the forward posterior -----------------------------------------------------------

def posterior(
    schedule,
    data: torch.Tensor,
    anchors: torch.Tensor,
    *,
    steps: tuple[int, ...] = (2, 3, 5, 10, 20, 30, 50, 70, 90),
    n_background: int = 500,
    n_samples: int = 200,
    zoom: float = 0.6,
    lim: float = 3.0,
    seed: int = 0,
) -> F.Explorer:
    """Chapter 3: q(x_{t−1} | x_t, x_0) = N(μ̃_t, β̃_t I) on a 2D toy, with sliders over x_0 and t.

    For each x_0 one noised x_t = s_t x_0 + σ_t ε is drawn with a fixed ε (the same for every t),
    and the posterior is shown by its mean μ̃_t (a point), a circle of radius √β̃_t (one standard
    deviation) and ``n_samples`` draws μ̃_t + √β̃_t z with fixed z. A second panel zooms in around
    x_0 (coordinates x − x_0, half-width ``zoom``), where the small-t posteriors are visible; the
    third shows √β̃_t against the forward step's √β_t up to the largest step offered (the last
    steps of a cosine schedule, where β_t is clipped at 0.999, lie above it).

    Args:
        schedule: a :class:`~diffusion_lab.schedules.NoiseSchedule`.
        data: ``(n, 2)`` points of the toy, drawn in grey (the first ``n_background``).
        anchors: ``(k, 2)`` the values of x_0 offered by the first slider.
        steps: the values of t (each at least 2, at most T).
    """
    from ..forward import q_posterior, q_sample

    anchors = torch.as_tensor(anchors, dtype=torch.float64).reshape(-1, 2)
    if len(anchors) == 0:
        raise ValueError("anchors must hold at least one point x_0")
    steps = tuple(int(t) for t in steps)
    if not steps or min(steps) < 2 or max(steps) > schedule.T:
        raise ValueError(f"steps must lie in 2..T = {schedule.T} (at t = 1 the posterior is x_0 itself); got {steps}")
    generator = torch.Generator().manual_seed(seed)
    eps = torch.randn(anchors.shape, generator=generator, dtype=torch.float64)  # one ε per x_0
    z = torch.randn(n_samples, 2, generator=generator, dtype=torch.float64)  # the same z for every frame
    labels = [f"({float(a[0]):.2f}, {float(a[1]):.2f})" for a in anchors]
    by_label = dict(zip(labels, range(len(anchors))))
    grid = np.arange(1, schedule.T + 1)
    panels = {
        "plane": F.Panel("q(x_(t−1) | x_t, x_0)", xlim=(-lim, lim), ylim=(-lim, lim), width=240, height=240,
                         layers=[F.points(data[:n_background], color="#bbbbbb", size=2.0)]),
        "zoom": F.Panel("around x_0: x − x_0", xlim=(-zoom, zoom), ylim=(-zoom, zoom), width=220, height=220),
        "std": F.Panel("√β̃_t (green) and √β_t (grey)", xlabel="step t", xlim=(0.0, schedule.T + 1.0),
                       ylim=(0.0, 1.1 * float(np.sqrt(schedule.beta[max(steps)]))), width=220, height=200,
                       layers=[F.line(curve(grid, np.sqrt(schedule.beta[1:])), color="#999999"),
                               F.line(curve(grid, np.sqrt(schedule.beta_tilde[1:])), color="C2")]),
    }

    def frame(x_0: str, t: int) -> dict:
        i = by_label[x_0]
        x0 = anchors[i:i + 1]
        x_t = q_sample(schedule, x0, t, noise=eps[i:i + 1])
        mean, variance = q_posterior(schedule, x_t, x0, t)
        std = float(variance.reshape(-1)[0]) ** 0.5
        samples = mean + std * z

        def scene(shift: torch.Tensor) -> list[dict]:
            m = (mean - shift)[0]
            return [F.points(samples - shift, color="#98df8a", size=2.0), F.circle(float(m[0]), float(m[1]), std, color="C2"),
                    F.points(x_t - shift, color="#000000", size=6.0), F.points(x0 - shift, color="C3", size=6.0),
                    F.points(mean - shift, color="C2", size=6.0)]

        a = schedule.alpha_bar[t - 1] ** 0.5 * schedule.beta[t] / (1 - schedule.alpha_bar[t])
        b = schedule.alpha[t] ** 0.5 * (1 - schedule.alpha_bar[t - 1]) / (1 - schedule.alpha_bar[t])
        return {
            "plane": scene(torch.zeros(1, 2, dtype=torch.float64)),
            "zoom": scene(x0),
            "std": [F.vline(t), F.points([[t, std]], color="#000000", size=7.0)],
            "readout": (f"x_0 = {labels[i]}, t = {t}: μ̃_t = {a:.3f} x_0 + {b:.3f} x_t = "
                        f"({float(mean[0, 0]):.2f}, {float(mean[0, 1]):.2f}), √β̃_t = {fmt_g(std)} "
                        f"(√β_t = {fmt_g(float(schedule.beta[t]) ** 0.5)})"),
        }

    return F.Explorer(
        [F.Control("x_0", labels), F.Control("t", list(steps), start=min(3, len(steps) - 1))], panels, frame,
        caption="Red: x_0; black: x_t (the same ε for every t); green: the posterior mean μ̃_t and a circle of "
                "one standard deviation √β̃_t; light green: draws from the posterior.")
