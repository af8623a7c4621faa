"""Chapter 1's forward-process explorer (``diffusion_lab.widgets`` is gone: the scrubber is now
``chapter_figures.forward_process`` on the shared figure machinery of ``diffusion_lab.figures``).

The closed form of its frames is checked in test_figures.py; here: every schedule it offers is
embedded exactly, the page is deterministic, self-contained and small, and its checks and live version.
"""

import matplotlib
import numpy as np
import pytest

import diffusion_lab as dl
from diffusion_lab import chapter_figures
from diffusion_lab import figures as F

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def explorer():
    return chapter_figures.forward_process(dl.swiss_roll(600, seed=0), dl.digits_8x8()[0][:1])


def test_every_schedule_is_embedded_with_its_alpha_bar_and_log_snr(explorer):
    variants = chapter_figures.forward_variants()
    assert [c["labels"] for c in explorer.payload()["controls"]][0] == list(variants)
    for layer_ab, layer_snr, s in zip(explorer.panels["alpha_bar"].layers, explorer.panels["log_snr"].layers,
                                      variants.values()):
        for layer, values, start in ((layer_ab, s.alpha_bar, 0), (layer_snr, s.log_snr, 1)):
            xy = F._decode(layer["xy"]).reshape(-1, 2)
            step = np.abs(xy).max() / 32767  # int16 quantisation, one scale per array
            t = np.rint(xy[:, 0] * s.T).astype(int)  # the curve is thinned; its x are t / T
            assert t[0] == start and t[-1] == s.T and np.all(np.diff(t) > 0)
            np.testing.assert_allclose(xy[:, 0], t / s.T, atol=step, rtol=0)
            np.testing.assert_allclose(xy[:, 1], values[t], atol=step, rtol=0)
    # Each frame: the points and the digit at t, and a marker on the ᾱ curve of the chosen schedule.
    assert len(explorer.frames) == len(variants) * 41
    frame = explorer.frame_at([1, 20])  # cosine, t/T = 0.5
    marker = F._decode(frame["alpha_bar"][1]["xy"]).reshape(-1, 2)
    np.testing.assert_allclose(marker, [[0.5, variants["cosine, T = 1000"].alpha_bar[500]]], atol=2 / 32767)
    assert F._decode(frame["points"][0]["xy"]).reshape(-1, 2).shape == (400, 2)


def test_static_page_is_deterministic_self_contained_and_small(explorer):
    html = explorer.static_html()
    again = chapter_figures.forward_process(dl.swiss_roll(600, seed=0), dl.digits_8x8()[0][:1]).static_html()
    assert html == again
    assert "http" not in html and "<script src" not in html  # works offline, no external assets
    # 4 schedules × 41 steps of 400 points and a digit: well under a third of a chapter's 2 MB budget.
    assert len(html) < 700_000


def test_a_variant_is_needed():
    with pytest.raises(ValueError, match="at least one schedule"):
        chapter_figures.forward_process(dl.swiss_roll(600, seed=0), dl.digits_8x8()[0][:1], variants={})


def test_live_explorer_builds_and_draws(explorer, monkeypatch):
    pytest.importorskip("ipywidgets")
    import matplotlib.pyplot as plt

    drawn = []
    monkeypatch.setattr(plt, "show", lambda: drawn.append(len(plt.gcf().axes)))
    live = explorer.live()
    sliders = live.widget.children[:-1]
    assert [s.description for s in sliders] == ["schedule", "t/T"]
    sliders[1].value = 20  # moving a slider redraws all four panels
    assert drawn and drawn[-1] == 4 and len(drawn) >= 2
