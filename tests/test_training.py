import numpy as np
import pytest
import torch

import diffusion_lab as dl

pytestmark = pytest.mark.usefixtures("one_thread")  # a tiny MLP: 2 threads on 2 shared cores only add waiting


def test_time_mlp_maps_x_and_t_to_the_shape_of_x():
    m = dl.TimeMLP(data_dim=3, hidden=16, n_blocks=2)
    x, t = torch.randn(7, 3), torch.randint(1, 100, (7,))
    assert m(x, t).shape == (7, 3)
    with pytest.raises(ValueError, match=r"expects x of shape \(B, 3\)"):
        m(torch.randn(7, 2), t)
    with pytest.raises(ValueError, match=r"expects t of shape \(7,\)"):
        m(x, t[:3])


def test_sinusoidal_embedding_shape_and_values():
    e = dl.sinusoidal_embedding(torch.tensor([0, 5]), 8)
    assert e.shape == (2, 8)
    torch.testing.assert_close(e[0], torch.tensor([1.0] * 4 + [0.0] * 4))
    with pytest.raises(ValueError, match="even"):
        dl.sinusoidal_embedding(torch.tensor([1]), 7)


@pytest.mark.parametrize("kind", dl.PARAMETERIZATIONS)
def test_loss_is_per_example(kind):
    # A velocity needs continuous time (ṡ, σ̇): a flow path; the others train on a schedule.
    process = dl.linear_path() if kind == "velocity" else dl.cosine_schedule(50)
    m = dl.TimeMLP(hidden=16, n_blocks=1)
    loss = dl.diffusion_loss(dl.Denoiser(m, process, predicts=kind), torch.randn(9, 2))
    assert loss.shape == (9,) and torch.all(loss >= 0)


@pytest.mark.parametrize("process", [dl.cosine_schedule(50), dl.VPSDE(), dl.linear_path()], ids=repr)
def test_loss_with_a_perfect_eps_model_is_zero(process):
    x0 = torch.randn(5, 2)
    eps = torch.randn(5, 2)
    loss = dl.diffusion_loss(dl.Denoiser(lambda x, t: eps, process), x0, noise=eps)
    torch.testing.assert_close(loss, torch.zeros(5))
    # and a network that returns its own target for another parameterization
    t = torch.full((5,), 30) if process.discrete else torch.full((5,), 0.3, dtype=torch.float64)
    s, sigma = (c.float()[:, None] for c in process.scale_std(t))
    loss = dl.diffusion_loss(dl.Denoiser(lambda x, t: s * eps - sigma * x0, process, predicts="v"), x0,
                             t=t, noise=eps)
    torch.testing.assert_close(loss, torch.zeros(5))


def test_loss_checks_the_model_output_shape():
    with pytest.raises(ValueError, match="must return a tensor shaped like x"):
        dl.diffusion_loss(dl.Denoiser(lambda x, t: x[:, :1], dl.cosine_schedule(10)), torch.randn(4, 2))


def test_training_reduces_the_loss_and_is_reproducible():
    s = dl.cosine_schedule(50)
    data = dl.moons(2000, seed=0)

    def run():
        torch.manual_seed(0)
        return dl.train_diffusion(dl.Denoiser(dl.TimeMLP(hidden=32, n_blocks=2), s), data, steps=300,
                                  batch_size=128, lr=3e-3, seed=5, progress=False)

    a, b = run(), run()
    assert a.loss_history.shape == (300,)
    assert a.loss_history[-50:].mean() < 0.8 * a.loss_history[:50].mean()
    np.testing.assert_array_equal(a.loss_history, b.loss_history)
    assert a.ema_model is not a.model
    assert not any(p.requires_grad for p in a.ema_model.parameters())
    assert a.denoiser.net is a.ema_model and a.denoiser.process is s


def test_ema_tracks_the_weights():
    m = torch.nn.Linear(2, 2)
    ema = dl.EMA(m, decay=0.0)
    with torch.no_grad():
        m.weight.add_(1.0)
    ema.update(m)
    torch.testing.assert_close(ema.ema_model.weight, m.weight)
    half = dl.EMA(m, decay=0.5)
    old = half.ema_model.weight.clone()
    with torch.no_grad():
        m.weight.add_(2.0)
    half.update(m)
    torch.testing.assert_close(half.ema_model.weight, old + 1.0)
    with pytest.raises(ValueError, match=r"decay must be a finite number in \[0, 1\), got 1.0"):
        dl.EMA(m, decay=1.0)


def test_train_input_checks():
    den = dl.Denoiser(dl.TimeMLP(hidden=8, n_blocks=1), dl.cosine_schedule(10))
    with pytest.raises(ValueError, match="steps must be an int >= 1, got 0"):
        dl.train_diffusion(den, torch.randn(10, 2), steps=0, progress=False)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        dl.train_diffusion(den, torch.randn(10, 2), steps=1, batch_size=0, progress=False)
    with pytest.raises(ValueError, match="unknown parameterization 'noise'; choose one of: eps, x0, v"):
        dl.Denoiser(dl.TimeMLP(hidden=8, n_blocks=1), dl.cosine_schedule(10), predicts="noise")


def test_device_helpers():
    assert dl.device().type in ("cpu", "cuda")
    assert dl.cpu_or_gpu("small", "big") == ("big" if torch.cuda.is_available() else "small")
