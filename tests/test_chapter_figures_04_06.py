"""The interactive figures of chapters 4–6 (``diffusion_lab.chapter_figures``): what their frames claim is true."""

import numpy as np
import pytest
import torch

import diffusion_lab as dl
from diffusion_lab import chapter_figures
from diffusion_lab import figures as F


def _xy(layer: dict) -> np.ndarray:
    return F._decode(layer["xy"]).reshape(-1, 2)


def _train_with_snapshots(steps: int, at):
    schedule = dl.cosine_schedule(20)
    data = dl.swiss_roll(500, seed=0)
    torch.manual_seed(0)
    net = dl.TimeMLP(hidden=16, n_blocks=1)
    denoiser = dl.Denoiser(net, schedule)
    initial = {k: v.clone() for k, v in net.state_dict().items()}
    snapshots = chapter_figures.WeightSnapshots(net, at)

    def batch_loss(generator):
        snapshots.record()
        return dl.diffusion_loss(denoiser, dl.minibatch(data, 32, generator)[0], generator=generator)

    return denoiser, snapshots, initial, dl.fit(net, batch_loss, steps=steps, lr=3e-3)


def test_weight_snapshots_hold_the_weights_and_the_same_average_as_fit():
    denoiser, snapshots, initial, result = _train_with_snapshots(12, [0, 5])
    models = snapshots.denoisers(denoiser)
    assert list(models) == [0, 5, 12]  # the end of training is the last snapshot
    for model in models[0]:  # before any step, the weights and their average are the initial weights
        assert all(torch.equal(v, initial[k]) for k, v in model.net.state_dict().items())
    raw, ema = models[12]
    assert all(torch.equal(a, b) for a, b in zip(raw.net.parameters(), result.model.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(ema.net.parameters(), result.ema_model.parameters()))
    assert not torch.equal(next(models[5][0].net.parameters()), next(models[5][1].net.parameters()))
    assert models[5][0].net is not snapshots.net  # copies: the figure cannot change the trained network
    with pytest.raises(ValueError, match="at least one training step"):
        chapter_figures.WeightSnapshots(torch.nn.Linear(2, 2), [])


def test_training_snapshots_show_one_frame_per_snapshot_with_both_weights():
    denoiser, snapshots, _, result = _train_with_snapshots(12, [0, 6])
    explorer = chapter_figures.training_snapshots(denoiser, snapshots, result.loss_history,
                                                  lambda n, seed: dl.swiss_roll(n, seed=seed), n=100, window=5)
    assert explorer.payload()["controls"][0]["labels"] == ["0", "6", "12"]
    first, last = explorer.frames[0], explorer.frames[-1]
    np.testing.assert_allclose(_xy(first["raw"][0]), _xy(first["ema"][0]))  # step 0: the same weights
    assert first["readout"].startswith("step 0 of 12: untrained")
    mean = float(np.mean(result.loss_history[-5:]))
    assert f"loss {mean:.3g} (mean of steps 8..12)" in last["readout"]
    with pytest.raises(ValueError, match="window"):
        chapter_figures.training_snapshots(denoiser, snapshots, result.loss_history[:3],
                                           lambda n, seed: dl.swiss_roll(n, seed=seed), window=5)


def test_langevin_steps_measures_the_stationary_spread_of_the_unadjusted_chain():
    """On N(0, λI) unadjusted Langevin settles at variance λ / (1 − ε/(4λ)); the figure's spread finds it."""
    lam, eps = 0.25, 0.2
    gauss = dl.GaussianMixture(torch.tensor([1.0]), torch.zeros(1, 2), lam * torch.eye(2)[None])
    start = torch.rand(4000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 4 - 2
    _, path = dl.langevin_dynamics(gauss.score, start, step_size=eps, steps=200, return_trajectory=True,
                                   generator=torch.Generator().manual_seed(1))
    explorer = chapter_figures.langevin_steps(gauss, {eps: path[[0, 200]]}, [0, 200])
    theory = 1 / (1 - eps / (4 * lam))
    readout = explorer.frame_at([0, 1])["readout"]
    spread = float(readout.split("spread of the particles near μ_1 = (0, 0): ")[1].split("×")[0])
    assert abs(spread - theory) < 0.05 * theory  # 4000 particles: a relative error of about 1.6 %
    assert f"stationary value of the chain: {theory:.3g}×" in readout
    with pytest.raises(ValueError, match="must have shape"):
        chapter_figures.langevin_steps(gauss, {eps: path[:3]}, [0, 200])


def test_sde_and_ode_paths_compare_both_clouds_with_exact_samples_of_p_t():
    mixture = dl.GaussianMixture.ring(4, radius=1.5, std=0.2)
    vp = dl.VPSDE()
    oracle = mixture.denoiser(vp)
    x_T = torch.randn(400, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    _, ode = dl.heun_sample(oracle, x_T, steps=10, return_trajectory=True)
    _, sde = dl.euler_maruyama_sample(oracle, x_T, steps=10, return_trajectory=True,
                                      generator=torch.Generator().manual_seed(1))
    times = vp.time_grid(10)
    explorer = chapter_figures.sde_and_ode_paths(mixture, vp, times, sde, ode, every=4, n=50, n_paths=2)
    assert explorer.payload()["controls"][0]["labels"] == [f"{float(times[i]):.3f}" for i in (0, 4, 8, 10)]
    first, last = explorer.frames[0], explorer.frames[-1]
    np.testing.assert_allclose(_xy(first["sde"][1]), _xy(first["ode"][1]))  # the same start
    assert first["readout"].endswith("same start: 0")
    np.testing.assert_allclose(_xy(last["ode"][1]), ode[-1, :50].numpy(), atol=float(ode[-1, :50].abs().max()) / 32767)
    assert "exact samples" in last["readout"]
    with pytest.raises(ValueError, match="same length"):
        chapter_figures.sde_and_ode_paths(mixture, vp, times[:-1], sde, ode)
