import json
import re

import matplotlib
import numpy as np
import pytest
import torch

import diffusion_lab as dl
from diffusion_lab import widgets

matplotlib.use("Agg")


@pytest.fixture
def inputs():
    return dl.swiss_roll(600, seed=0), dl.digits_8x8()[0][:1]


def _payload(html: str) -> dict:
    return json.loads(re.search(r"const data = (\{.*?\});\n", html).group(1))


def test_static_scrubber_embeds_the_schedules_and_is_self_contained(inputs):
    points, digit = inputs
    html = widgets.static_forward_scrubber(points, digit).data
    data = _payload(html)
    variants = widgets.default_variants()
    assert set(data["variants"]) == set(variants)
    for label, s in variants.items():
        np.testing.assert_allclose(data["variants"][label], s.alpha_bar, rtol=1e-3, atol=1e-12)
    assert len(data["points"]) == 2 * 500 and len(data["digit"]) == 64 and data["digit_size"] == 8
    assert "http" not in html and "<script src" not in html  # works offline, no external assets
    assert len(html) < 200_000


def test_static_scrubber_is_deterministic(inputs):
    points, digit = inputs
    a = widgets.static_forward_scrubber(points, digit).data
    b = widgets.static_forward_scrubber(points, digit).data
    assert a == b
    assert re.search(r'id="dl-scrubber-[0-9a-f]{12}"', a)


def test_static_scrubber_formula_matches_q_sample(inputs):
    """The browser applies x_t = sqrt(ab) x0 + sqrt(1 - ab) eps to the embedded data; with the embedded
    ᾱ (4 significant digits) that matches q_sample on the same x0 and eps."""
    points, digit = inputs
    data = _payload(widgets.static_forward_scrubber(points, digit).data)
    s = widgets.default_variants()["cosine, T=100"]
    x0 = torch.tensor(data["points"]).reshape(-1, 2)
    eps = torch.tensor(data["eps_points"]).reshape(-1, 2)
    ab = data["variants"]["cosine, T=100"][40]
    js = ab**0.5 * x0 + (1 - ab) ** 0.5 * eps
    torch.testing.assert_close(js, dl.q_sample(s, x0, 40, noise=eps), atol=1e-3, rtol=0)


def test_static_scrubber_needs_a_variant(inputs):
    with pytest.raises(ValueError, match="at least one schedule"):
        widgets.static_forward_scrubber(*inputs, variants={})


def test_live_explorer_builds_and_draws(inputs, monkeypatch):
    pytest.importorskip("ipywidgets")
    points, digit = inputs
    panel = widgets.forward_explorer(points, digit)
    controls = [c for box in panel.children[:2] for c in box.children]
    name, T, betas, t = controls
    T.value = 100
    assert t.max == 100
    name.value = "cosine"
    assert betas.disabled
    monkeypatch.setattr(widgets.plt, "show", lambda: None)
    widgets._draw_forward(dl.cosine_schedule(100), 30, points, torch.randn_like(points), digit, torch.randn_like(digit))
