"""Interactive figures of the book: one description, drawn live in Jupyter and statically in the book.

A figure (:class:`Explorer`) has controls (sliders over a few parameter values), panels (small
plots) and a function that computes each frame: for every combination of control values, the
layers each panel shows and a one-line readout. The frames are computed in Python when the chapter
runs, so both versions show what the code really produces:

* :meth:`Explorer.static` writes self-contained HTML + JavaScript (no kernel, no CDN): the rendered
  book's version. Arrays are stored compactly: points and curves as little-endian int16 scaled per
  array, pixels as uint8, both base64 encoded inside one JSON object; the page draws the selected
  frame on canvases when a slider moves. :attr:`Explorer.payload_bytes` is its size.
* :meth:`Explorer.live` shows ipywidgets sliders over the same frames, drawn with matplotlib, for
  Jupyter and Colab. In the rendered book (no kernel) that cell shows a short note pointing to the
  static version instead of an empty output.

Layers (built with the functions below): :func:`points`, :func:`line`, :func:`vline`,
:func:`circle`, :func:`image`, :func:`image_grid`, :func:`bars`. A panel's own layers are drawn
under every frame's layers for it.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .validation import check_int

COLORS = {f"C{i}": c for i, c in enumerate(
    ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"])}
LIVE_NOTE = ("This figure is interactive in Jupyter or Colab (run the chapter). In the online book, use the "
             "static version below: it shows the same computed frames.")


def _color(c: str) -> str:
    return COLORS.get(c, c)


def _encode(values: Any, kind: str = "i16") -> dict:
    """Flattened values as base64: ``i16`` (value = q · scale, |q| ≤ 32767) or ``u8`` (pixels in [0, 1])."""
    a = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(a)):
        raise ValueError("figure data must be finite (no NaN or infinity)")
    if kind == "u8":
        q = np.clip(np.round(a * 255), 0, 255).astype("<u1")
        return {"u8": base64.b64encode(q.tobytes()).decode(), "n": int(a.size)}
    scale = float(np.abs(a).max() / 32767) if a.size and np.abs(a).max() > 0 else 1.0
    q = np.round(a / scale).astype("<i2")
    return {"i16": base64.b64encode(q.tobytes()).decode(), "scale": float(f"{scale:.6g}"), "n": int(a.size)}


def _decode(data: dict) -> np.ndarray:
    if "u8" in data:
        return np.frombuffer(base64.b64decode(data["u8"]), dtype="<u1").astype(np.float64) / 255
    return np.frombuffer(base64.b64decode(data["i16"]), dtype="<i2").astype(np.float64) * data["scale"]


def _pixels(images: Any, value_range: tuple[float, float]) -> np.ndarray:
    low, high = value_range
    return np.clip((np.asarray(images, dtype=np.float64) - low) / (high - low), 0.0, 1.0)


# --- Layers ------------------------------------------------------------------------------------

def points(xy: Any, *, color: str = "C0", size: float = 2.0) -> dict:
    """A point cloud: ``xy`` of shape ``(n, 2)``."""
    return {"type": "points", "xy": _encode(np.asarray(xy)[:, :2]), "color": _color(color), "size": size}


def line(xy: Any, *, color: str = "C0", width: float = 1.5) -> dict:
    """A polyline through the rows of ``xy`` ``(n, 2)``."""
    return {"type": "line", "xy": _encode(np.asarray(xy)[:, :2]), "color": _color(color), "width": width}


def vline(x: float, *, color: str = "#000000") -> dict:
    """A vertical line at ``x`` (a marker on a curve's axis)."""
    return {"type": "vline", "x": float(f"{float(x):.6g}"), "color": _color(color)}


def circle(x: float, y: float, r: float, *, color: str = "C3") -> dict:
    """A circle of radius ``r`` around (x, y), e.g. one standard deviation of an isotropic Gaussian."""
    return {"type": "circle", "x": float(f"{x:.5g}"), "y": float(f"{y:.5g}"), "r": float(f"{r:.5g}"),
            "color": _color(color)}


def image(values: Any, *, extent: Sequence[float] | None = None, value_range: tuple[float, float] = (-1.0, 1.0)) -> dict:
    """A grey image ``(H, W)`` (row 0 at the top), filling the panel or the data ``extent`` (x0, x1, y0, y1)."""
    a = np.asarray(values)
    if a.ndim != 2:
        raise ValueError(f"an image layer takes an (H, W) array, got shape {a.shape}")
    layer = {"type": "image", "pixels": _encode(_pixels(a, value_range), "u8"), "h": a.shape[0], "w": a.shape[1]}
    if extent is not None:
        layer["extent"] = [float(v) for v in extent]
    return layer


def image_grid(images: Any, *, cols: int = 8, value_range: tuple[float, float] = (-1.0, 1.0)) -> dict:
    """A grid of grey images ``(n, H, W)`` (or ``(n, 1, H, W)``) filling the panel, ``cols`` per row."""
    a = np.asarray(images)
    a = a[:, 0] if a.ndim == 4 else a
    if a.ndim != 3:
        raise ValueError(f"an image grid takes (n, H, W) or (n, 1, H, W) images, got shape {np.shape(images)}")
    return {"type": "grid", "pixels": _encode(_pixels(a, value_range), "u8"), "n": a.shape[0], "h": a.shape[1],
            "w": a.shape[2], "cols": check_int("cols", cols, 1)}


def bars(values: Sequence[float], *, highlight: int | None = None, color: str = "C0") -> dict:
    """Bars at x = 0..n−1 of heights ``values``; bar ``highlight`` drawn in black."""
    return {"type": "bars", "values": _encode(values), "highlight": -1 if highlight is None else int(highlight),
            "color": _color(color)}


# --- Figure ------------------------------------------------------------------------------------

@dataclass
class Control:
    """A slider over ``values`` (shown with ``fmt``); ``play`` adds a play/pause button (animations)."""

    name: str
    values: Sequence[Any]
    fmt: str = "{}"
    play: bool = False
    start: int = 0


@dataclass
class Panel:
    """A small plot: title, axis labels and limits (data coordinates), size in pixels, static layers."""

    title: str
    xlabel: str = ""
    ylabel: str = ""
    xlim: tuple[float, float] = (0.0, 1.0)
    ylim: tuple[float, float] = (0.0, 1.0)
    width: int = 240
    height: int = 220
    layers: list[dict] = field(default_factory=list)


class Explorer:
    """Precompute every frame of an interactive figure; show it statically (HTML) or live (ipywidgets).

    Args:
        controls: the sliders; every combination of their values is one frame.
        panels: name → :class:`Panel`.
        frame: ``frame(**{control.name: value}) -> {panel name: [layers], "readout": str}``.
        caption: one line under the figure saying what to notice.
    """

    def __init__(self, controls: Sequence[Control], panels: dict[str, Panel],
                 frame: Callable[..., dict], caption: str = "") -> None:
        if not controls or not panels:
            raise ValueError("an explorer needs at least one control and one panel")
        self.controls, self.panels, self.caption = list(controls), dict(panels), caption
        self.frames = []
        for combo in itertools.product(*(c.values for c in self.controls)):
            computed = frame(**{c.name: v for c, v in zip(self.controls, combo)})
            unknown = set(computed) - set(self.panels) - {"readout"}
            if unknown:
                raise ValueError(f"frame returned layers for unknown panels {sorted(unknown)}; panels: {sorted(self.panels)}")
            self.frames.append(computed)

    def payload(self) -> dict:
        """Everything the page needs, as plain JSON-able data."""
        return {
            "controls": [{"name": c.name, "labels": [c.fmt.format(v) for v in c.values], "play": c.play,
                          "start": c.start} for c in self.controls],
            "panels": [{"name": k, **vars(p), "xlim": list(map(float, p.xlim)), "ylim": list(map(float, p.ylim))}
                       for k, p in self.panels.items()],
            "frames": self.frames,
            "caption": self.caption,
        }

    @property
    def payload_bytes(self) -> int:
        """Size of the embedded data in bytes (the static page's weight, without the fixed script)."""
        return len(json.dumps(self.payload(), separators=(",", ":")))

    def payload_bound_mb(self) -> float:
        """A strict upper bound on :attr:`payload_bytes` in MB, a multiple of 0.1: what a chapter prints.

        The exact byte count moves by a few bytes between machines (the digits of each array's scale and
        of the readouts), so a chapter prints this bound, which survives that, and not the count itself.
        """
        return (self.payload_bytes // 100_000 + 1) / 10

    def static_html(self) -> str:
        """The self-contained HTML of the static version (no kernel, no network)."""
        text = json.dumps(self.payload(), separators=(",", ":")).replace("</", "<\\/")  # safe inside <script>
        element_id = "dl-explorer-" + hashlib.sha256(text.encode()).hexdigest()[:12]
        script = (Path(__file__).with_name("figures.js")).read_text()
        return (f'<div id="{element_id}" class="dl-explorer" style="font-family:sans-serif;font-size:13px"></div>\n'
                f'<script>\n{script}\ndlExplorer("{element_id}", {text});\n</script>')

    def static(self):
        """An ``IPython.display.HTML`` of :meth:`static_html` (its id is a hash of its content)."""
        from IPython.display import HTML

        return HTML(self.static_html())

    def frame_at(self, indices: Sequence[int]) -> dict:
        """The frame for one index per control."""
        flat = 0
        for c, i in zip(self.controls, indices):
            flat = flat * len(c.values) + int(i)
        return self.frames[flat]

    def live(self) -> LiveFigure:
        """ipywidgets sliders redrawing the same frames with matplotlib (needs a running kernel)."""
        import ipywidgets as w
        import matplotlib.pyplot as plt

        sliders = [w.SelectionSlider(options=[(c.fmt.format(v), i) for i, v in enumerate(c.values)], value=c.start,
                                     description=c.name, continuous_update=True) for c in self.controls]
        output = w.Output()

        def draw(_=None) -> None:
            chosen = self.frame_at([s.value for s in sliders])
            with output:
                output.clear_output(wait=True)
                fig, axes = plt.subplots(1, len(self.panels), figsize=(3.2 * len(self.panels), 3.0), squeeze=False)
                for ax, (name, panel) in zip(axes[0], self.panels.items()):
                    draw_panel(ax, panel, panel.layers + chosen.get(name, []))
                fig.suptitle(chosen.get("readout", ""), fontsize=9)
                fig.tight_layout()
                plt.show()

        for s in sliders:
            s.observe(draw, names="value")
        draw()
        return LiveFigure(w.VBox([*sliders, output]))


class LiveFigure:
    """A live widget whose plain-HTML fallback (the rendered book, no kernel) is a note, not nothing."""

    def __init__(self, widget) -> None:
        self.widget = widget

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        bundle = self.widget._repr_mimebundle_(include=include, exclude=exclude) or {}
        bundle = dict(bundle[0]) if isinstance(bundle, tuple) else dict(bundle)
        bundle["text/plain"] = LIVE_NOTE
        bundle["text/html"] = f'<p class="dl-live-note"><em>{LIVE_NOTE}</em></p>'
        return bundle


def draw_panel(ax, panel: Panel, layers: list[dict]) -> None:
    """Draw a panel's layers on a matplotlib axis (the live version of the page's canvas)."""
    from matplotlib.patches import Circle

    for layer in layers:
        kind = layer["type"]
        if kind in ("points", "line"):
            xy = _decode(layer["xy"]).reshape(-1, 2)
            if kind == "points":
                ax.scatter(xy[:, 0], xy[:, 1], s=layer["size"] ** 2, color=layer["color"], linewidths=0)
            else:
                ax.plot(xy[:, 0], xy[:, 1], color=layer["color"], lw=layer["width"])
        elif kind == "vline":
            ax.axvline(layer["x"], color=layer["color"], lw=1)
        elif kind == "circle":
            ax.add_patch(Circle((layer["x"], layer["y"]), layer["r"], fill=False, color=layer["color"]))
        elif kind == "image":
            pixels = _decode(layer["pixels"]).reshape(layer["h"], layer["w"])
            extent = layer.get("extent", [*panel.xlim, *panel.ylim])
            ax.imshow(pixels, cmap="gray", vmin=0, vmax=1, extent=extent, aspect="auto")
        elif kind == "grid":
            n, h, w, cols = layer["n"], layer["h"], layer["w"], layer["cols"]
            tiles = _decode(layer["pixels"]).reshape(n, h, w)
            rows = -(-n // cols)
            canvas = np.ones((rows * (h + 1), cols * (w + 1)))
            for i, tile in enumerate(tiles):
                r, c = divmod(i, cols)
                canvas[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = tile
            ax.imshow(canvas, cmap="gray", vmin=0, vmax=1, extent=[*panel.xlim, *panel.ylim], aspect="auto")
        elif kind == "bars":
            values = _decode(layer["values"])
            colors = [("#000000" if i == layer["highlight"] else layer["color"]) for i in range(len(values))]
            ax.bar(np.arange(len(values)), values, color=colors, width=0.8)
    ax.set(title=panel.title, xlabel=panel.xlabel, ylabel=panel.ylabel, xlim=panel.xlim, ylim=panel.ylim)
