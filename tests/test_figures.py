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


def test_the_printed_size_is_a_strict_bound_in_tenths_of_a_mb(monkeypatch):
    explorer = _explorer()
    for size, bound in ((12, 0.1), (99_999, 0.1), (100_000, 0.2), (470_123, 0.5)):
        monkeypatch.setattr(F.Explorer, "payload_bytes", property(lambda self, size=size: size))
        assert explorer.payload_bound_mb() == bound
        assert size < bound * 1e6


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


# --- The chapters' figures (diffusion_lab.chapter_figures) --------------------------------------

import torch  # noqa: E402

import diffusion_lab as dl  # noqa: E402
from diffusion_lab import chapter_figures  # noqa: E402


def _layer_xy(layer: dict) -> np.ndarray:
    return F._decode(layer["xy"]).reshape(-1, 2)


def _scale_std(schedule, t: int) -> tuple[float, float]:
    return float(schedule.alpha_bar[t]) ** 0.5, float(1 - schedule.alpha_bar[t]) ** 0.5


def _step(values: np.ndarray) -> float:
    """The int16 quantisation step of an encoded array (its largest |value| / 32767)."""
    return float(np.abs(values).max()) / 32767


def test_forward_process_frames_follow_the_closed_form_with_one_noise():
    """Every frame is x_t = s_t x_0 + σ_t ε with the same ε: the ε read off one frame predicts another."""
    points, digit = dl.swiss_roll(300, seed=0).double(), dl.digits_8x8()[0][:1].double()
    schedules = {"cosine": dl.cosine_schedule(50), "linear": dl.linear_schedule(40)}
    explorer = chapter_figures.forward_process(points, digit, schedules, fractions=[0.0, 0.5, 1.0], n_points=100)
    assert len(explorer.frames) == 6
    for k, (name, s) in enumerate(schedules.items()):
        clean = _layer_xy(explorer.frame_at([k, 0])["points"][0])
        np.testing.assert_allclose(clean, points[:100].numpy(), atol=2 * _step(clean))  # t = 0 is the data
        x_half, x_end = (_layer_xy(explorer.frame_at([k, j])["points"][0]) for j in (1, 2))
        (s_half, sig_half), (s_end, sig_end) = (_scale_std(s, round(f * s.T)) for f in (0.5, 1.0))
        eps = (x_half - s_half * clean) / sig_half
        tolerance = 4 * (_step(x_end) + _step(x_half) / sig_half + _step(clean))
        np.testing.assert_allclose(x_end, s_end * clean + sig_end * eps, atol=tolerance)
        frame = explorer.frame_at([k, 1])
        t = round(0.5 * s.T)
        assert frame["readout"].startswith(f"{name}: t = {t} / {s.T}, ᾱ_t = {float(s.alpha_bar[t]):.3g}")
        marker = _layer_xy(frame["log_snr"][1])
        np.testing.assert_allclose(marker, [[0.5, s.log_snr[t]]], atol=_step(marker))
        assert "SNR = ∞" in explorer.frame_at([k, 0])["readout"]


def test_elbo_terms_frames_read_out_each_term_and_its_share():
    # Terms L_0 .. L_3 and the prior L_4 of a bound with T = 4, two examples each (means -1, 2, 1, 0.5, 0).
    means = torch.tensor([-1.0, 2.0, 1.0, 0.5, 0.0], dtype=torch.float64)
    terms = torch.stack([means - 0.25, means + 0.25], 1)  # (T + 1, B)
    explorer = chapter_figures.elbo_terms({"β_t": terms, "β̃_t": 2 * terms.abs()})
    assert [c["labels"] for c in explorer.payload()["controls"]] == [["β_t", "β̃_t"], ["1", "2", "3", "4"]]
    frame = explorer.frame_at([0, 1])  # ω² = β_t, t = 2: L_1 = 2 of L = 2.5
    bars = frame["bars"][0]
    np.testing.assert_allclose(F._decode(bars["values"]), [0, -1, 2, 1, 0.5], atol=_step(np.array([2.0])))
    assert bars["highlight"] == 2
    assert "L_1 = 2 nats" in frame["readout"] and "80 % of the bound L = 2.5 nats" in frame["readout"]
    assert "L_1 alone: 57.1 % of Σ L_(t−1)" in frame["readout"]  # 2 / (2 + 1 + 0.5)
    last = explorer.frame_at([0, 3])["readout"]
    assert "L_3 = 0.5 nats" in last and "20 % of the bound" in last and "together: 100 %" in last
    assert "negative here" in explorer.frame_at([0, 0])["readout"]
    assert "negative" not in explorer.frame_at([1, 0])["readout"]  # 2|L_0| > 0
    with pytest.raises(ValueError, match="positive"):
        chapter_figures.elbo_terms({"bad": -terms.abs()})


def test_posterior_frames_show_the_mean_and_variance_of_q_posterior():
    schedule = dl.cosine_schedule(100)
    data = dl.swiss_roll(400, seed=3).double()
    explorer = chapter_figures.posterior(schedule, data, data[:3], steps=(2, 10, 50), n_samples=400)
    assert len(explorer.frames) == 9
    for i in range(3):
        x_ts = []
        for j, t in enumerate((2, 10, 50)):
            plane = explorer.frame_at([i, j])["plane"]
            samples, circle, x_t, x0, mean = plane
            x_t, x0, mean = (_layer_xy(layer) for layer in (x_t, x0, mean))
            np.testing.assert_allclose(x0, data[i:i + 1].numpy(), atol=_step(x0))
            expected_mean, expected_var = dl.q_posterior(schedule, torch.from_numpy(x_t), torch.from_numpy(x0), t)
            np.testing.assert_allclose(mean, expected_mean.numpy(), atol=4 * (_step(mean) + _step(x_t) + _step(x0)))
            std = float(schedule.beta_tilde[t]) ** 0.5
            assert circle["r"] == pytest.approx(std, rel=1e-4)
            spread = (_layer_xy(samples) - mean).std(0)
            assert np.all(np.abs(spread / std - 1) < 0.15)  # 400 draws: relative standard error 3.5 %
            x_ts.append(x_t)
        # One ε for every t: (x_t - s_t x_0) / σ_t is the same at t = 2, 10, 50.
        eps = [(x_t - _scale_std(schedule, t)[0] * x0) / _scale_std(schedule, t)[1] for x_t, t in zip(x_ts, (2, 10, 50))]
        np.testing.assert_allclose(eps[0], eps[2], atol=0.02)
        np.testing.assert_allclose(eps[1], eps[2], atol=0.01)
    with pytest.raises(ValueError, match="steps must lie in 2..T"):
        chapter_figures.posterior(schedule, data, data[:1], steps=(1, 5))
