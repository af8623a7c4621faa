"""The interactive-figure machinery: encoding, frames, the live fallback, and the static page in a browser."""

import json
import shutil

import numpy as np
import pytest

from diffusion_lab import figures as F


def test_encoding_round_trips_within_its_quantisation():
    values = np.random.default_rng(0).normal(size=1000) * 3
    decoded = F._decode(F._encode(values))
    assert np.max(np.abs(decoded - values)) <= np.abs(values).max() / 32767  # half a step of int16, with margin
    pixels = np.linspace(0, 1, 256)
    assert np.max(np.abs(F._decode(F._encode(pixels, "u8")) - pixels)) <= 0.5 / 255 + 1e-12


def test_non_finite_data_is_refused():
    with pytest.raises(ValueError, match="finite"):
        F.points(np.array([[0.0, np.nan]]))


def _explorer():
    def frame(k, name):
        return {"bars": [F.bars([k, 2, 3], highlight=k - 1)], "cloud": [F.points(np.full((4, 2), k))],
                "readout": f"k = {k}, {name}"}

    return F.Explorer([F.Control("k", [1, 2, 3]), F.Control("name", ["a", "b"])],
                      {"bars": F.Panel("bars", xlim=(-1, 3), ylim=(0, 4)), "cloud": F.Panel("cloud", xlim=(0, 4), ylim=(0, 4))},
                      frame, caption="what to notice")


def test_every_combination_of_control_values_is_one_frame_in_row_major_order():
    explorer = _explorer()
    assert len(explorer.frames) == 6
    assert explorer.frame_at([2, 1])["readout"] == "k = 3, b"
    assert explorer.frame_at([0, 0])["readout"] == "k = 1, a"


def test_a_frame_naming_an_unknown_panel_is_refused():
    with pytest.raises(ValueError, match="unknown panels"):
        F.Explorer([F.Control("k", [1])], {"p": F.Panel("p")}, lambda k: {"q": []})


def test_static_html_is_deterministic_and_self_contained():
    a, b = _explorer().static_html(), _explorer().static_html()
    assert a == b  # the element id is a hash of the content: re-running a cell reproduces it
    assert "http" not in a and "dlExplorer(" in a
    call = a[a.rindex('dlExplorer("'):]
    payload = json.loads(call[call.index(", ") + 2:call.rindex(");")])
    assert [c["labels"] for c in payload["controls"]] == [["1", "2", "3"], ["a", "b"]]


def test_the_live_figure_falls_back_to_a_note_without_a_kernel():
    pytest.importorskip("ipywidgets")
    import matplotlib

    matplotlib.use("Agg")
    bundle = _explorer().live()._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "static version" in bundle["text/html"] and bundle["text/plain"] == F.LIVE_NOTE


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium")
def test_moving_a_slider_changes_the_picture_and_the_readout(tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    page_file = tmp_path / "figure.html"
    page_file.write_text("<html><body>" + _explorer().static_html() + "</body></html>")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox", "--disable-gpu"])
        page, errors = browser.new_page(), []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(page_file.as_uri())
        canvas = page.locator("canvas.dl-panel").first
        before = (page.locator(".dl-readout").inner_text(), canvas.evaluate("c => c.toDataURL()"))
        slider = page.locator("input.dl-slider").first
        slider.fill("2")
        slider.dispatch_event("input")
        after = (page.locator(".dl-readout").inner_text(), canvas.evaluate("c => c.toDataURL()"))
        browser.close()
    assert before[0] == "k = 1, a" and after[0] == "k = 3, a"
    assert before[1] != after[1]
    assert errors == []
