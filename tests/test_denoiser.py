"""The Denoiser contract (the former parameterization module): every parameterization converts to the
same x̂₀, ε̂, score and velocity on every kind of noise process, plus the adapter's options."""

import math

import pytest
import torch

import diffusion_lab as dl
from diffusion_lab.denoiser import Coefficients, prediction_from_output, training_target

PROCESSES = [dl.cosine_schedule(100), dl.VPSDE(), dl.SubVPSDE(), dl.VESDE(), dl.linear_path(), dl.vp_path(),
             dl.NoiseLevels()]


def times(process, n=6):
    if process.discrete:
        return torch.tensor([1, 5, 20, 50, 80, 99])[:n]
    if isinstance(process, dl.NoiseLevels):
        return torch.tensor([0.02, 0.1, 0.5, 1.0, 3.0, 9.0], dtype=torch.float64)[:n]
    return torch.tensor([0.01, 0.1, 0.3, 0.5, 0.8, 0.99], dtype=torch.float64)[:n]


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(6, 1, 4, 4, generator=g, dtype=torch.float64)
    eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    return x0, eps


@pytest.mark.parametrize("process", PROCESSES, ids=repr)
@pytest.mark.parametrize("kind", dl.PARAMETERIZATIONS)
def test_a_perfect_network_of_any_parameterisation_yields_the_true_x0_eps_score_and_velocity(process, kind, data):
    """Round trips: the network output training_target(kind, x₀, ε) at x_t = s x₀ + σ ε converts back to
    x₀ and ε, the score −ε/σ and the velocity ṡ x₀ + σ̇ ε (continuous time)."""
    if kind == "velocity" and process.discrete:
        with pytest.raises(ValueError, match="a velocity network needs a continuous-time process"):
            dl.Denoiser(lambda x, t: x, process, predicts=kind)
        return
    x0, eps = data
    t = times(process)
    x_t = dl.q_sample(process, x0, t, noise=eps)
    c = Coefficients.at(process, t, x0, derivatives=not process.discrete)
    target = training_target(kind, x0, eps, c)
    prediction = dl.Denoiser(lambda x, tt: target, process, predicts=kind).predict(x_t, t)
    torch.testing.assert_close(prediction.x0, x0)
    torch.testing.assert_close(prediction.eps, eps)
    torch.testing.assert_close(prediction.score, -eps / c.sigma)
    if process.discrete:
        with pytest.raises(ValueError, match="a velocity needs a continuous-time process"):
            prediction.velocity  # noqa: B018
    else:
        torch.testing.assert_close(prediction.velocity, c.ds * x0 + c.dsigma * eps)
    # The loss of that perfect network is zero.
    loss = dl.diffusion_loss(dl.Denoiser(lambda x, tt: target, process, predicts=kind), x0, t=t, noise=eps)
    torch.testing.assert_close(loss, torch.zeros(6, dtype=torch.float64))


def test_conversions_are_the_module_table(data):
    """The closed forms of the table, written out for a schedule: x̂₀ = (x − σ ε̂)/s, v = s ε − σ x₀, ..."""
    x0, eps = data
    s = dl.cosine_schedule(100)
    t = times(s)
    ab = s.gather("alpha_bar", t, x0)
    x_t = dl.q_sample(s, x0, t, noise=eps)
    c = Coefficients.at(s, t, x0)
    torch.testing.assert_close(prediction_from_output("eps", eps, x_t, c).x0, (x_t - (1 - ab).sqrt() * eps) / ab.sqrt())
    torch.testing.assert_close(prediction_from_output("x0", x0, x_t, c).eps, (x_t - ab.sqrt() * x0) / (1 - ab).sqrt())
    torch.testing.assert_close(training_target("score", x0, eps, c), -eps / (1 - ab).sqrt())
    # Salimans & Ho (2022): v = d x_t / d φ with x_t = cos(φ) x₀ + sin(φ) ε.
    phi = torch.atan2((1 - ab).sqrt(), ab.sqrt())
    torch.testing.assert_close(training_target("v", x0, eps, c), -torch.sin(phi) * x0 + torch.cos(phi) * eps)
    # A flow's velocity on the linear path is ε − x₀ (Liu et al. 2023).
    path, tp = dl.linear_path(), times(dl.linear_path())
    torch.testing.assert_close(training_target("velocity", x0, eps, Coefficients.at(path, tp, x0, derivatives=True)),
                               eps - x0)


def test_x0_network_at_sigma_zero_has_no_noise():
    """At t = 0 of a schedule x_t = x₀: ε̂ is 0 (not 0/0), and x̂₀ is the network's answer."""
    s = dl.cosine_schedule(10)
    x = torch.randn(3, 2)
    prediction = dl.Denoiser(lambda x, t: 0.5 * x, s, predicts="x0").predict(x, 0)
    torch.testing.assert_close(prediction.eps, torch.zeros(3, 2))
    torch.testing.assert_close(prediction.x0, 0.5 * x)


def test_network_sees_the_process_time_times_time_scale():
    seen = []

    def net(x, t):
        seen.append(t)
        return torch.zeros_like(x)

    x = torch.zeros(2, 2)
    dl.Denoiser(net, dl.cosine_schedule(10)).predict(x, 7)
    dl.Denoiser(net, dl.linear_path(), predicts="velocity", time_scale=1000.0).predict(x, 0.25)
    assert seen[0].dtype == torch.long and seen[0].tolist() == [7, 7]
    assert seen[1].dtype == torch.float64 and seen[1].tolist() == [250.0, 250.0]


def test_prediction_rows_combine_and_clip(data):
    x0, eps = data
    s = dl.cosine_schedule(100)
    t = times(s)
    x_t = dl.q_sample(s, x0, t, noise=eps)
    a = dl.Denoiser(lambda x, tt: eps, s).predict(x_t, t)
    b = dl.Denoiser(lambda x, tt: 2 * eps, s).predict(x_t, t)
    mixed = a.combine(b, 0.5)  # (1 + w) a − w b
    torch.testing.assert_close(mixed.eps, 1.5 * a.eps - 0.5 * b.eps)
    torch.testing.assert_close(mixed.x0, 1.5 * a.x0 - 0.5 * b.x0)
    torch.testing.assert_close(a.rows(slice(2, 4)).x0, a.x0[2:4])
    torch.testing.assert_close(a.rows(slice(2, 4)).score, a.score[2:4])
    clipped = a.clipped(lambda v: v.clamp(-0.5, 0.5))
    assert float(clipped.x0.abs().max()) <= 0.5
    c = clipped.coef
    torch.testing.assert_close(c.s * clipped.x0 + c.sigma * clipped.eps, x_t)  # still x_t = s x̂₀ + σ ε̂
    # A pair (low, high) clips to that interval.
    low_high = dl.Denoiser(lambda x, tt: eps, s, clip=(-0.2, 0.7)).x0(x_t, t)
    assert float(low_high.min()) >= -0.2 and float(low_high.max()) <= 0.7


def test_replace_changes_one_field_and_keeps_the_rest():
    net = dl.TimeMLP(hidden=8, n_blocks=1, num_classes=3)
    den = dl.Denoiser(net, dl.cosine_schedule(10), predicts="v", clip=1.0)
    guided = den.replace(labels=2, guidance=1.5)
    assert (guided.net, guided.process, guided.predicts, guided.clip) == (net, den.process, "v", 1.0)
    assert (guided.labels, guided.guidance) == (2, 1.5) and den.labels is None and den.guidance == 0.0
    assert den.num_classes == 3 and dl.Denoiser(dl.TimeMLP(hidden=8, n_blocks=1), den.process).num_classes is None


def test_unknown_parameterization_and_bad_inputs_are_named():
    s = dl.cosine_schedule(10)
    with pytest.raises(ValueError, match="unknown parameterization 'epsilon'; choose one of: eps, x0, v, score, vel"):
        dl.Denoiser(lambda x, t: x, s, "epsilon")
    with pytest.raises(TypeError, match="process must be a noise process"):
        dl.Denoiser(lambda x, t: x, "cosine")
    with pytest.raises(TypeError, match="net must be a callable network"):
        dl.Denoiser(None, s)
    with pytest.raises(ValueError, match="time_scale must be a finite number > 0"):
        dl.Denoiser(lambda x, t: x, s, time_scale=0.0)
    with pytest.raises(ValueError, match=r"the network must return a tensor shaped like x, \(2, 2\), got \(2, 1\)"):
        dl.Denoiser(lambda x, t: x[:, :1], s).eps(torch.zeros(2, 2), 3)
    with pytest.raises(ValueError, match=r"t = 11 is outside the valid steps 0..10"):
        dl.Denoiser(lambda x, t: x, s).eps(torch.zeros(2, 2), 11)
    with pytest.raises(ValueError, match=r"t = 1.5 is outside the time range \[0, 1\]"):
        dl.Denoiser(lambda x, t: x, dl.VPSDE()).eps(torch.zeros(2, 2), 1.5)
    with pytest.raises(TypeError, match="samplers take a dl.Denoiser"):
        dl.ddim_sample(lambda x, t: x, (2, 2))
    assert math.isclose(dl.NoiseLevels(0.01, 10.0).prior_std, 10.0)
