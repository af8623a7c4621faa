"""Forward-process explorers: a live ipywidgets version and a static version for the rendered book.

Both show x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε for a 2D point cloud and an 8×8 digit, with the same
fixed ε for every t, next to the ᾱ_t curve of the chosen schedule.

* :func:`forward_explorer` needs a running kernel (Jupyter, Colab): it scrubs the schedule type,
  T, the β range and t, recomputing with :mod:`diffusion_lab.forward`.
* :func:`static_forward_scrubber` works in plain HTML with no kernel: Python precomputes ᾱ_t for a
  set of schedule variants and embeds it with x_0 and ε as JSON; a few lines of JavaScript apply
  the closed form above when the slider moves.
"""

from __future__ import annotations

import hashlib
import json

import matplotlib.pyplot as plt
import numpy as np
import torch

from .forward import q_sample
from .plotting import scatter_2d, show_images
from .schedules import SCHEDULES, NoiseSchedule, make_schedule


def _fixed_noise(x: torch.Tensor, seed: int) -> torch.Tensor:
    return torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))


def _draw_forward(schedule: NoiseSchedule, t: int, points, eps_points, digit, eps_digit) -> None:
    """Three panels: the point cloud at t, the digit at t, and ᾱ / SNR against t with a marker."""
    fig, axes = plt.subplots(1, 3, figsize=(8.4, 2.6), constrained_layout=True)
    scatter_2d(axes[0], q_sample(schedule, points, t, noise=eps_points), f"points at $t={t}$")
    show_images(axes[1], q_sample(schedule, digit, t, noise=eps_digit), f"digit at $t={t}$")
    steps = np.arange(schedule.T + 1)
    axes[2].plot(steps, schedule.alpha_bar, label=r"$\bar\alpha_t$")
    axes[2].axvline(t, color="k", linewidth=0.8)
    axes[2].set(title=rf"$\bar\alpha_t={schedule.alpha_bar[t]:.3f}$, SNR$={schedule.snr[t]:.3g}$",
                xlabel="$t$", ylim=(-0.02, 1.02))
    axes[2].legend(fontsize=7, loc="upper right")
    fig.suptitle(f"{schedule.name} schedule, T={schedule.T}")
    plt.show()


def forward_explorer(points: torch.Tensor, digit: torch.Tensor, *, seed: int = 0):
    """An ipywidgets panel scrubbing schedule, T, β range and t (needs a live kernel).

    Args:
        points: ``(n, 2)`` clean 2D data.
        digit: ``(1, 1, H, W)`` one clean image in [−1, 1].
    """
    import ipywidgets as widgets

    eps_points, eps_digit = _fixed_noise(points, seed), _fixed_noise(digit, seed + 1)
    name = widgets.Dropdown(options=SCHEDULES, value="linear", description="schedule")
    T = widgets.IntSlider(value=1000, min=50, max=1000, step=50, description="T")
    betas = widgets.FloatRangeSlider(value=(1e-4, 0.02), min=1e-5, max=0.1, step=1e-4,
                                     readout_format=".4f", description="β range")
    t = widgets.IntSlider(value=250, min=0, max=1000, description="t")

    def on_T(change) -> None:
        t.max = change["new"]

    def on_name(change) -> None:
        betas.disabled = change["new"] == "cosine"  # the cosine schedule is defined by ᾱ, not a β range

    T.observe(on_T, names="value")
    name.observe(on_name, names="value")

    def draw(name: str, T: int, betas: tuple[float, float], t: int) -> None:
        kwargs = {} if name == "cosine" else {"beta_start": betas[0], "beta_end": betas[1]}
        _draw_forward(make_schedule(name, T, **kwargs), min(t, T), points, eps_points, digit, eps_digit)

    out = widgets.interactive_output(draw, {"name": name, "T": T, "betas": betas, "t": t})
    return widgets.VBox([widgets.HBox([name, T]), widgets.HBox([betas, t]), out])


def default_variants() -> dict[str, NoiseSchedule]:
    """The schedule variants offered by the static scrubber."""
    variants = {}
    for T in (1000, 100):
        for name in SCHEDULES:
            variants[f"{name}, T={T}"] = make_schedule(name, T)
    variants["linear, T=100, β 1e-4..0.02 (unscaled)"] = make_schedule("linear", 100, beta_start=1e-4, beta_end=0.02)
    return variants


_TEMPLATE = """
<div id="{id}" class="dl-scrubber" style="font-family:sans-serif;font-size:13px;max-width:720px">
  <div>
    <label>schedule <select class="dl-variant"></select></label>
    <label style="margin-left:12px">t <input class="dl-t" type="range" min="0" value="0" step="1"
      style="width:240px;vertical-align:middle"></label>
  </div>
  <div class="dl-label" style="margin:4px 0 6px 0"></div>
  <div style="display:flex;gap:8px;align-items:flex-start;flex-wrap:wrap">
    <figure style="margin:0"><canvas class="dl-points" width="220" height="220" style="border:1px solid #ccc"></canvas>
      <figcaption>swiss roll x_t</figcaption></figure>
    <figure style="margin:0"><canvas class="dl-digit" width="160" height="160" style="border:1px solid #ccc"></canvas>
      <figcaption>digit x_t</figcaption></figure>
    <figure style="margin:0"><canvas class="dl-curve" width="260" height="160" style="border:1px solid #ccc"></canvas>
      <figcaption>ᾱ_t against t, marker at t</figcaption></figure>
  </div>
</div>
<script>
(function() {{
  const data = {payload};
  const root = document.getElementById("{id}");
  const select = root.querySelector(".dl-variant"), slider = root.querySelector(".dl-t");
  const label = root.querySelector(".dl-label");
  Object.keys(data.variants).forEach(function(k) {{
    const o = document.createElement("option"); o.value = k; o.textContent = k; select.appendChild(o);
  }});
  // x_t = sqrt(abar) x0 + sqrt(1 - abar) eps, the closed form of q(x_t | x_0).
  function noised(x0, eps, abar) {{
    const a = Math.sqrt(abar), b = Math.sqrt(1 - abar);
    return x0.map(function(v, i) {{ return a * v + b * eps[i]; }});
  }}
  function draw() {{
    const abars = data.variants[select.value];
    const T = abars.length - 1, t = Math.min(+slider.value, T), abar = abars[t];
    const snr = abar / (1 - abar);
    label.textContent = "t = " + t + " / " + T + ",  ᾱ_t = " + abar.toFixed(3) +
      ",  SNR = " + (t === 0 ? "∞" : snr.toPrecision(3));
    const pc = root.querySelector(".dl-points").getContext("2d");
    pc.clearRect(0, 0, 220, 220); pc.fillStyle = "#1f77b4";
    const pts = noised(data.points, data.eps_points, abar);
    for (let i = 0; i < pts.length; i += 2) {{
      const u = 110 + pts[i] * 110 / data.lim, v = 110 - pts[i + 1] * 110 / data.lim;
      pc.fillRect(u - 1, v - 1, 2, 2);
    }}
    const dc = root.querySelector(".dl-digit").getContext("2d");
    const px = noised(data.digit, data.eps_digit, abar), n = data.digit_size, cell = 160 / n;
    for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) {{
      const g = Math.round(255 * Math.min(1, Math.max(0, (px[r * n + c] + 1) / 2)));
      dc.fillStyle = "rgb(" + g + "," + g + "," + g + ")"; dc.fillRect(c * cell, r * cell, cell, cell);
    }}
    const cc = root.querySelector(".dl-curve").getContext("2d");
    cc.clearRect(0, 0, 260, 160); cc.strokeStyle = "#1f77b4"; cc.beginPath();
    abars.forEach(function(a, s) {{
      const u = 20 + 230 * s / T, v = 140 - 120 * a;
      if (s === 0) cc.moveTo(u, v); else cc.lineTo(u, v);
    }});
    cc.stroke(); cc.strokeStyle = "#000"; cc.beginPath();
    cc.moveTo(20 + 230 * t / T, 15); cc.lineTo(20 + 230 * t / T, 145); cc.stroke();
    cc.fillStyle = "#000"; cc.fillText("1", 8, 24); cc.fillText("0", 8, 144);
    cc.fillText("0", 16, 155); cc.fillText("T", 244, 155);
  }}
  select.addEventListener("change", function() {{
    const T = data.variants[select.value].length - 1;
    slider.value = Math.round(+slider.value / +slider.max * T); slider.max = T; draw();
  }});
  slider.addEventListener("input", draw);
  slider.max = data.variants[select.value].length - 1; slider.value = Math.round(+slider.max / 4); draw();
}})();
</script>
"""


def _rounded(a, digits: int = 4) -> list[float]:
    return [float(f"{v:.{digits}g}") for v in np.asarray(a, dtype=np.float64).ravel()]


def static_forward_scrubber(
    points: torch.Tensor,
    digit: torch.Tensor,
    variants: dict[str, NoiseSchedule] | None = None,
    *,
    n_points: int = 500,
    seed: int = 0,
    lim: float = 2.5,
):
    """An HTML+JavaScript scrubber that works with no kernel (e.g. in the rendered book).

    Args:
        points: ``(n, 2)`` clean 2D data (the first ``n_points`` are embedded).
        digit: ``(1, 1, H, W)`` one clean image in [−1, 1].
        variants: label → schedule; defaults to :func:`default_variants`.

    Returns:
        An ``IPython.display.HTML`` object. Its element id is a hash of its content, so re-running
        the cell reproduces the same output byte for byte.
    """
    from IPython.display import HTML

    variants = default_variants() if variants is None else variants
    if not variants:
        raise ValueError("variants must name at least one schedule")
    points = points[:n_points]
    payload = {
        "lim": lim,
        "points": _rounded(points, 3),
        "eps_points": _rounded(_fixed_noise(points, seed), 3),
        "digit": _rounded(digit, 3),
        "eps_digit": _rounded(_fixed_noise(digit, seed + 1), 3),
        "digit_size": int(digit.shape[-1]),
        "variants": {label: _rounded(s.alpha_bar) for label, s in variants.items()},
    }
    text = json.dumps(payload, separators=(",", ":"))
    element_id = "dl-scrubber-" + hashlib.sha256(text.encode()).hexdigest()[:12]
    return HTML(_TEMPLATE.format(id=element_id, payload=text))
