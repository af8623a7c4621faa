"""Chapter 4: training, step by step, through stored weight snapshots."""

from __future__ import annotations

import numpy as np
import torch

from .. import figures as F
from .text import curve, fmt_g


# --- Chapter 4: training, step by step ------------------------------------------------------------

class WeightSnapshots:
    """A network's weights, and their moving average, at chosen training steps (chapter 4's :func:`training_snapshots`).

    Call :meth:`record` first thing in every training step (in the batch loss given to
    :func:`~diffusion_lab.fit`): at its k-th call (k = 0, 1, ...) the network holds the weights after
    k optimisation steps, and they are copied when k is one of ``steps``. The moving average is kept
    with :class:`~diffusion_lab.EMA` and the same ``ema_decay`` as :func:`~diffusion_lab.fit`'s, so it
    equals the average that ``fit`` returns as ``ema_model`` after the same steps. The weights the
    network holds when training has ended count as the snapshot of the last step (:meth:`denoisers`).

    Args:
        net: the network being trained.
        steps: the steps k ≥ 0 at which to keep the weights.
        ema_decay: the decay given to :func:`~diffusion_lab.fit` (its default, 0.995, if not given there).
    """

    def __init__(self, net: torch.nn.Module, steps, ema_decay: float = 0.995) -> None:
        from ..fitting import EMA

        self.net = net
        self.steps = sorted({int(s) for s in steps})
        if not self.steps or self.steps[0] < 0:
            raise ValueError(f"steps must be at least one training step k >= 0, got {steps!r}")
        self.ema = EMA(net, ema_decay)
        self.calls = 0
        self.weights: dict[int, tuple[dict, dict]] = {}

    @staticmethod
    def _copy(module: torch.nn.Module) -> dict:
        return {k: v.detach().clone() for k, v in module.state_dict().items()}

    def record(self) -> None:
        """Count one training step; update the average; keep both weights if this step was asked for."""
        if self.calls > 0:
            self.ema.update(self.net)  # as fit does after each step
        if self.calls in self.steps:
            self.weights[self.calls] = (self._copy(self.net), self._copy(self.ema.ema_model))
        self.calls += 1

    def denoisers(self, denoiser) -> dict:
        """step → (``denoiser`` over the weights of that step, ``denoiser`` over their moving average),
        each on a copy of the network; the network's current weights are the snapshot of step ``calls``."""
        import copy

        final = copy.deepcopy(self.ema)
        final.update(self.net)  # the last step's update, which fit made after the last call of record
        weights = {**self.weights, self.calls: (self._copy(self.net), self._copy(final.ema_model))}
        result = {}
        for step in sorted(weights):
            pair = []
            for state in weights[step]:
                net = copy.deepcopy(self.net)
                net.load_state_dict(state)
                pair.append(denoiser.replace(net=net))
            result[step] = tuple(pair)
        return result


@torch.no_grad()
def training_snapshots(denoiser, snapshots: WeightSnapshots, loss_history, real, *, n: int = 1000,
                       window: int = 50, seed: int = 0, lim: float = 2.5) -> F.Explorer:
    """Chapter 4: a slider over the training step; the network's samples at that step and the loss so far.

    For every snapshot, ``n`` points are drawn with DDPM's Algorithm 2 (:func:`~diffusion_lab.ddpm_sample`)
    from the same x_T and the same noise, once with the weights after k steps and once with their
    moving average, so the frames differ only by the weights; each sample is measured by its energy
    distance to a fresh real sample as a ratio to the real-vs-real floor (:func:`~diffusion_lab.energy_ratio`).

    Args:
        denoiser: the :class:`~diffusion_lab.Denoiser` being trained (its process and parameterization).
        snapshots: the :class:`WeightSnapshots` recorded during training.
        loss_history: the per-step training loss, ``(steps,)``.
        real: ``(n, seed) -> (n, 2)`` real data, e.g. ``lambda n, seed: dl.swiss_roll(n, seed=seed)``.
        window: the loss is drawn and read out as a mean over this many steps.
    """
    from ..metrics import energy_distance_floor, energy_ratio
    from ..samplers import ddpm_sample

    models = snapshots.denoisers(denoiser)
    loss = np.asarray(loss_history, dtype=np.float64)
    if loss.ndim != 1 or len(loss) < window:
        raise ValueError(f"loss_history must hold at least window = {window} steps, got shape {loss.shape}")
    smooth = np.convolve(loss, np.ones(window) / window, mode="valid")  # mean of the steps k − window + 1 .. k
    smooth_steps = np.arange(window, len(loss) + 1)
    device = next(snapshots.net.parameters()).device
    x_T = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed)).to(device)
    floor = energy_distance_floor(real, n)
    samples, ratios = {}, {}
    for step, pair in models.items():
        xs = [ddpm_sample(m, x_T, generator=torch.Generator(device=device).manual_seed(seed + 1)).cpu() for m in pair]
        samples[step], ratios[step] = xs, [energy_ratio(x, real, floor=floor) for x in xs]
    total = max(models)
    kilo = 1000.0  # the loss panel counts steps in thousands: one int16 scale serves both axes of a curve
    background = [F.points(real(n, seed + 2), color="#cccccc", size=2.0)]
    panels = {
        "raw": F.Panel("weights after k steps", xlim=(-lim, lim), ylim=(-lim, lim), width=220, height=220,
                       layers=background),
        "ema": F.Panel("their moving average", xlim=(-lim, lim), ylim=(-lim, lim), width=220, height=220,
                       layers=background),
        "loss": F.Panel(f"loss, mean of {window} steps", xlabel="training step (thousands)",
                        xlim=(0.0, total / kilo), ylim=(0.95 * float(smooth.min()), 1.02 * float(smooth.max())),
                        width=230, height=200, layers=[F.line(curve(smooth_steps / kilo, smooth), color="#bbbbbb")]),
    }

    def frame(**chosen) -> dict:  # the control "training step" is not a Python name
        step = int(chosen["training step"])
        raw, ema = samples[step]
        layers = {"raw": [F.points(raw, color="C1", size=2.0)], "ema": [F.points(ema, color="C0", size=2.0)],
                  "loss": [F.vline(step / kilo)]}
        quality = (f"energy distance / floor: weights {fmt_g(ratios[step][0])}, "
                   f"moving average {fmt_g(ratios[step][1])}")
        if step < window:
            layers["readout"] = f"step {step} of {total}: {'untrained' if step == 0 else 'just started'}; {quality}"
            return layers
        upto = smooth_steps <= step
        layers["loss"] += [F.line(curve(smooth_steps[upto] / kilo, smooth[upto]), color="C0"),
                           F.points([[step / kilo, float(smooth[upto][-1])]], color="#000000", size=7.0)]
        layers["readout"] = (f"step {step} of {total}: loss {fmt_g(float(smooth[upto][-1]))} "
                             f"(mean of steps {step - window + 1}..{step}); {quality}")
        return layers

    return F.Explorer(
        [F.Control("training step", list(models), play=True)], panels, frame,
        caption="Every frame samples from the same noise (grey: real data). Left: the weights after that many "
                "steps; middle: their moving average, which the chapter samples from.")
