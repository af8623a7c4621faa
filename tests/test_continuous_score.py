"""Continuous-time denoising score matching (chapter "Training a continuous-time score model")."""

import math

import pytest
import torch

import diffusion_lab as dl
from diffusion_lab import homework

F64 = torch.float64


def gaussian(c=0.5, mean=(0.3, -0.2)):
    """N(mean, c² I) in 2D as a one-component mixture: its exact denoiser at every noise level."""
    return dl.GaussianMixture(torch.ones(1, dtype=F64), torch.tensor([mean], dtype=F64),
                              c**2 * torch.eye(2, dtype=F64)[None])


def toy_net(x, t):  # any smooth function of (x, t), in float64
    return torch.sin(x) * t[:, None] + 0.1 * x


@pytest.mark.parametrize("sde", [dl.VPSDE(), dl.VESDE(0.01, 10.0)], ids=repr)
def test_sigma2_weighting_turns_score_matching_into_the_eps_loss(sde, gen):
    # λ = σ²: σ² ‖−ε̂/σ + ε/σ‖² = ‖ε̂ − ε‖², the diffusion (ε-prediction) loss, example by example.
    x0 = torch.randn(256, 2, generator=gen, dtype=F64)
    t = sde.sample_time(256, gen, "cpu")
    eps = torch.randn(256, 2, generator=gen, dtype=F64)
    denoiser = dl.Denoiser(toy_net, sde, predicts="eps")
    dsm = dl.continuous_dsm_loss(denoiser, x0, t=t, noise=eps)
    assert dsm.shape == (256,)
    assert (dsm - dl.diffusion_loss(denoiser, x0, t=t, noise=eps)).abs().max() < 1e-12
    # The same holds for a network that outputs the score itself: σ² ‖r + ε/σ‖² = ‖σ r + ε‖².
    score_net = dl.Denoiser(toy_net, sde, predicts="score")
    sigma = sde.scale_std(t)[1][:, None]
    direct = (sigma * toy_net(dl.q_sample(sde, x0, t, noise=eps), t) + eps).pow(2).mean(1)
    assert (dl.continuous_dsm_loss(score_net, x0, t=t, noise=eps) - direct).abs().max() < 1e-12


def test_weightings_differ_by_their_lambda(gen):
    sde = dl.VPSDE()
    x0, t = torch.randn(64, 2, generator=gen, dtype=F64), sde.sample_time(64, gen, "cpu")
    eps = torch.randn(64, 2, generator=gen, dtype=F64)
    denoiser = dl.Denoiser(toy_net, sde, predicts="eps")
    loss = {w: dl.continuous_dsm_loss(denoiser, x0, t=t, noise=eps, weighting=w) for w in dl.DSM_WEIGHTINGS}
    sigma2 = sde.scale_std(t)[1] ** 2
    assert torch.allclose(loss["sigma2"], sigma2 * loss["none"], rtol=1e-12)
    assert torch.allclose(loss["likelihood"], sde.beta(t) * loss["none"], rtol=1e-12)  # g² = β(t) for VP


@pytest.mark.parametrize("sde", [dl.VPSDE(), dl.VESDE(0.01, 10.0)], ids=repr)
def test_the_exact_score_reaches_the_known_minimum(sde):
    # Data N(μ, c² I): x_t ~ N(s μ, v I) with v = s²c² + σ², and the σ²-weighted loss of the exact
    # score, E (ε − σ (x_t − sμ)/v)² per dimension, is s²c²/v. Any other score does worse.
    c, n, t = 0.5, 200_000, 0.3
    data = gaussian(c)
    x0 = data.sample(n, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    s, sigma = (float(v) for v in sde.scale_std(torch.tensor(t, dtype=F64)))
    minimum = s**2 * c**2 / (s**2 * c**2 + sigma**2)
    loss = dl.continuous_dsm_loss(data.denoiser(sde), x0, t=t, generator=g)
    assert abs(float(loss.mean()) - minimum) < 5 * float(loss.std()) / math.sqrt(n)
    off = dl.Denoiser(lambda x, tt: data.denoiser(sde).eps(x, tt) + 0.1, sde, predicts="eps")
    worse = dl.continuous_dsm_loss(off, x0, t=t, generator=torch.Generator().manual_seed(1))
    assert float(worse.mean()) - float(loss.mean()) == pytest.approx(0.01, rel=0.05)  # + E‖δ‖² per dimension


def test_bad_input_names_the_argument(gen):
    sde = dl.VPSDE()
    denoiser = dl.Denoiser(toy_net, sde, predicts="eps")
    x0 = torch.randn(8, 2, generator=gen, dtype=F64)
    with pytest.raises(ValueError, match="weighting 'sigma'.*sigma2, likelihood, none"):
        dl.continuous_dsm_loss(denoiser, x0, weighting="sigma")
    with pytest.raises(ValueError, match="noise must be shaped like x0"):
        dl.continuous_dsm_loss(denoiser, x0, noise=torch.zeros(8, 3, dtype=F64))
    with pytest.raises(ValueError, match="continuous-time process"):
        dl.continuous_dsm_loss(dl.Denoiser(toy_net, dl.cosine_schedule(10)), x0)
    with pytest.raises(ValueError, match="likelihood.*needs an SDE"):
        dl.continuous_dsm_loss(dl.Denoiser(toy_net, dl.linear_path()), x0, weighting="likelihood")
    with pytest.raises(ValueError, match="t = 2 is outside"):
        dl.continuous_dsm_loss(denoiser, x0, t=2.0)
    with pytest.raises(ValueError, match="weighting"):
        dl.train_score(dl.Denoiser(dl.TimeMLP(hidden=8, n_blocks=1), sde), x0.float(), steps=1, weighting="L2")


def test_train_score_learns_the_score_of_a_gaussian(one_thread):
    data = gaussian(0.5)
    x0 = data.sample(2048, generator=torch.Generator().manual_seed(0)).float()
    torch.manual_seed(0)
    sde = dl.VPSDE()
    denoiser = dl.Denoiser(dl.TimeMLP(hidden=32, n_blocks=1), sde, predicts="eps", time_scale=1000.0)
    result = dl.train_score(denoiser, x0, steps=500, batch_size=128, lr=3e-3, seed=0, progress=False)
    assert result.denoiser.process is sde and result.loss_history.shape == (500,)
    x = torch.randn(512, 2, generator=torch.Generator().manual_seed(2))
    t = torch.full((512,), 0.5, dtype=F64)
    exact = data.denoiser(sde).eps(x.double(), t)
    untrained = dl.Denoiser(dl.TimeMLP(hidden=32, n_blocks=1), sde, predicts="eps", time_scale=1000.0)
    with torch.no_grad():
        error = (result.denoiser.eps(x, t).double() - exact).pow(2).mean()
        before = (untrained.eps(x, t).double() - exact).pow(2).mean()
    assert error < 0.05 < before


def test_score_checkpoints_load_with_their_sde():
    for name, kind in (("swiss-vp-score", dl.VPSDE), ("swiss-ve-score", dl.VESDE), ("ring-vp-score", dl.VPSDE)):
        loaded = dl.pretrained.load(name)
        assert isinstance(loaded.denoiser.process, kind) and loaded.denoiser.predicts == "eps"
        assert loaded.denoiser.time_scale == 1000.0
    assert dl.pretrained.load("swiss-ve-score").denoiser.process.sigma_max == 10.0


def test_dsm_target_check_explains_a_missing_square():
    def forgot_square(x_t, x0, s, sigma):
        return -(x_t - dl.expand_like(s, x0) * x0) / dl.expand_like(sigma, x0)

    result = homework.check_dsm_target(forgot_square)
    assert result.status == "failed" and "divides by the variance" in result.message
    assert homework.check_dsm_target(
        lambda x_t, x0, s, sigma: -(x_t - dl.expand_like(s, x0) * x0) / dl.expand_like(sigma, x0) ** 2).passed


def test_training_script_runs_with_tiny_budgets(tmp_path, monkeypatch, capsys, one_thread):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "scripts" / "train_continuous_score.py"
    spec = importlib.util.spec_from_file_location("train_continuous_score", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.setattr(script, "OUT_DIR", tmp_path)
    script.RECIPE.update(n=256, steps=5)
    script.ring()
    saved = dl.pretrained.load_checkpoint(tmp_path / "ring_vp_score.pt")
    assert isinstance(saved.denoiser.process, dl.VPSDE) and saved.info["recipe"]["steps"] == 5
    assert '"ring-vp-score": Entry("ring_vp_score.pt"' in capsys.readouterr().out
