import numpy as np
import pytest
import torch

import diffusion_lab as dl


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
    s = dl.cosine_schedule(50)
    m = dl.TimeMLP(hidden=16, n_blocks=1)
    loss = dl.ddpm_loss(m, s, torch.randn(9, 2), parameterization=kind)
    assert loss.shape == (9,) and torch.all(loss >= 0)


def test_loss_with_a_perfect_eps_model_is_zero():
    s = dl.cosine_schedule(50)
    x0 = torch.randn(5, 2)
    eps = torch.randn(5, 2)
    loss = dl.ddpm_loss(lambda x, t: eps, s, x0, noise=eps)
    torch.testing.assert_close(loss, torch.zeros(5))


def test_loss_checks_the_model_output_shape():
    with pytest.raises(ValueError, match="must return a tensor shaped like x"):
        dl.ddpm_loss(lambda x, t: x[:, :1], dl.cosine_schedule(10), torch.randn(4, 2))


def test_training_reduces_the_loss_and_is_reproducible():
    s = dl.cosine_schedule(50)
    data = dl.moons(2000, seed=0)

    def run():
        torch.manual_seed(0)
        return dl.train(dl.TimeMLP(hidden=32, n_blocks=2), data, s, steps=300, batch_size=128, lr=3e-3,
                        seed=5, progress=False)

    a, b = run(), run()
    assert a.loss_history.shape == (300,)
    assert a.loss_history[-50:].mean() < 0.8 * a.loss_history[:50].mean()
    np.testing.assert_array_equal(a.loss_history, b.loss_history)
    assert a.ema_model is not a.model
    assert not any(p.requires_grad for p in a.ema_model.parameters())


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
    with pytest.raises(ValueError, match=r"decay must lie in \[0, 1\)"):
        dl.EMA(m, decay=1.0)


def test_train_input_checks():
    with pytest.raises(ValueError, match="steps and batch_size must be positive"):
        dl.train(dl.TimeMLP(hidden=8, n_blocks=1), torch.randn(10, 2), dl.cosine_schedule(10), steps=0)
    with pytest.raises(ValueError, match="unknown parameterization"):
        dl.train(dl.TimeMLP(hidden=8, n_blocks=1), torch.randn(10, 2), dl.cosine_schedule(10), steps=1,
                 parameterization="noise", progress=False)


def test_device_helpers():
    assert dl.device().type in ("cpu", "cuda")
    assert dl.cpu_or_gpu("small", "big") == ("big" if torch.cuda.is_available() else "small")
