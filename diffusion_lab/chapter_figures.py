"""The book's interactive figures, one function per figure, each returning a :class:`~diffusion_lab.figures.Explorer`.

A chapter builds its figure once and shows it twice: ``figure.live()`` (ipywidgets, needs a kernel;
in the rendered book that cell shows a note instead) and ``figure.static()`` (self-contained HTML that
the rendered book shows with no kernel). Every frame is computed here, in Python, when the chapter
runs; how the arrays are encoded in the page (int16 or uint8, base64) is described in
:mod:`diffusion_lab.figures`. Keep each figure's frames few and small: a chapter page's own HTML must
stay under 1.5 MB (``tests/test_site.py``).
"""

from __future__ import annotations

import numpy as np
import torch

from . import figures as F

_COLOR_NAMES = ["blue", "orange", "green", "red", "purple", "brown", "pink", "grey", "olive", "cyan"]  # C0..C9


def _fmt_g(value: float, digits: int = 3) -> str:
    """A number with at most ``digits`` significant digits, written as a reader expects (no '+' in exponents)."""
    return f"{value:.{digits}g}".replace("e+0", "e").replace("e-0", "e-")


def _percent(fraction: float) -> str:
    """A share as a percentage with 3 significant digits (0.0276 % rather than 0.0 %)."""
    return f"{_fmt_g(100 * fraction, 3)} %"


def _curve(x: np.ndarray, y: np.ndarray, max_points: int = 201) -> np.ndarray:
    """The rows (x, y) of a curve, thinned to at most ``max_points`` (the end points kept)."""
    keep = np.unique(np.linspace(0, len(x) - 1, min(len(x), max_points)).round().astype(int))
    return np.stack([np.asarray(x, dtype=np.float64)[keep], np.asarray(y, dtype=np.float64)[keep]], axis=1)


# --- Chapter 1: the forward process -------------------------------------------------------------

def forward_variants() -> dict:
    """The schedules of chapter 1's explorer: the three of :data:`~diffusion_lab.schedules.SCHEDULES` at
    T = 1000, and DDPM's unscaled β range 1e-4..0.02 with only T = 100 steps (ᾱ_T stays far from 0)."""
    from .schedules import SCHEDULES, linear_schedule, make_schedule

    variants = {f"{name}, T = 1000": make_schedule(name, 1000) for name in SCHEDULES}
    variants["linear, T = 100, unscaled β"] = linear_schedule(100, beta_start=1e-4, beta_end=0.02)
    return variants


def forward_process(
    points: torch.Tensor,
    digit: torch.Tensor,
    variants: dict | None = None,
    *,
    fractions: np.ndarray | None = None,
    n_points: int = 400,
    seed: int = 0,
    lim: float = 3.0,
) -> F.Explorer:
    """Chapter 1: x_t = s_t x_0 + σ_t ε for a point cloud and a digit, with ᾱ_t and log SNR(t) against t/T.

    Controls: the schedule and t/T. Every frame uses the same ε (drawn once with ``seed``), so moving
    t shows one trajectory of the closed form q(x_t | x_0). The ᾱ_t and log-SNR curves of all
    variants are drawn once; a marker shows the chosen schedule at t.

    Args:
        points: ``(n, 2)`` clean 2D data (the first ``n_points`` are shown).
        digit: ``(1, 1, H, W)`` one clean image in [−1, 1].
        variants: label → :class:`~diffusion_lab.schedules.NoiseSchedule` (default :func:`forward_variants`).
        fractions: the values of t/T offered by the slider (default 0, 0.025, ..., 1).
    """
    from .forward import q_sample

    variants = forward_variants() if variants is None else dict(variants)
    if not variants:
        raise ValueError("variants must name at least one schedule")
    fractions = np.linspace(0.0, 1.0, 41) if fractions is None else np.asarray(fractions, dtype=np.float64)
    points = points[:n_points]
    generator = torch.Generator().manual_seed(seed)
    eps_points = torch.randn(points.shape, generator=generator, dtype=points.dtype)
    eps_digit = torch.randn(digit.shape, generator=generator, dtype=digit.dtype)
    colors = [f"C{i}" for i in range(len(variants))]

    abar_curves, snr_curves, low, high = [], [], 0.0, 0.0
    for color, s in zip(colors, variants.values()):
        steps = np.arange(s.T + 1)
        abar_curves.append(F.line(_curve(steps / s.T, s.alpha_bar), color=color))
        snr_curves.append(F.line(_curve(steps[1:] / s.T, s.log_snr[1:]), color=color))
        low, high = min(low, float(s.log_snr[1:].min())), max(high, float(s.log_snr[1:].max()))
    panels = {
        "points": F.Panel("swiss roll x_t", xlim=(-lim, lim), ylim=(-lim, lim), width=200, height=200),
        "digit": F.Panel("digit x_t", xlim=(0, 1), ylim=(0, 1), width=140, height=140),
        "alpha_bar": F.Panel("ᾱ_t", xlabel="t / T", xlim=(0, 1), ylim=(-0.02, 1.02), width=200, height=180,
                             layers=abar_curves),
        "log_snr": F.Panel("log SNR(t)", xlabel="t / T", xlim=(0, 1), ylim=(np.floor(low) - 1, np.ceil(high) + 1),
                           width=200, height=180, layers=snr_curves),
    }

    def frame(**chosen) -> dict:  # the control "t/T" is not a Python name
        schedule, fraction = chosen["schedule"], float(chosen["t/T"])
        s = variants[schedule]
        t = int(round(fraction * s.T))
        abar = float(s.alpha_bar[t])
        marker = {"color": "#000000", "size": 7.0}
        layers = {
            "points": [F.points(q_sample(s, points, t, noise=eps_points))],
            "digit": [F.image(q_sample(s, digit, t, noise=eps_digit)[0, 0])],
            "alpha_bar": [F.vline(fraction), F.points([[fraction, abar]], **marker)],
            "log_snr": [F.vline(fraction)],
        }
        if t == 0:
            snr_text = "SNR = ∞ (clean data)"
        else:
            layers["log_snr"].append(F.points([[fraction, float(s.log_snr[t])]], **marker))
            snr_text = f"SNR = {_fmt_g(float(s.snr[t]))}, log SNR = {float(s.log_snr[t]):.2f}"
        layers["readout"] = f"{schedule}: t = {t} / {s.T}, ᾱ_t = {_fmt_g(abar)}, {snr_text}"
        return layers

    names = ", ".join(f"{label} ({_COLOR_NAMES[i % 10]})" for i, label in enumerate(variants))
    return F.Explorer(
        [F.Control("schedule", list(variants)), F.Control("t/T", list(fractions), fmt="{:.3g}", start=len(fractions) // 4)],
        panels, frame,
        caption=f"The same ε in every frame. Curves: {names}; the black marker is the chosen schedule at t.")



# --- Chapter 2: the terms of the bound ----------------------------------------------------------

def elbo_terms(terms: dict, *, unit: str = "nats") -> F.Explorer:
    """Chapter 2: the terms L_0, L_1, ..., L_{T−1} of the bound as bars, a slider over the step t.

    Each frame highlights the term of step t (L_0 at t = 1, the KL term L_{t−1} at t ≥ 2) and reads
    out its value and its share of the bound L = L_0 + Σ L_{t−1} + L_T (the shares add up to 100 %;
    a negative L_0, a log-density, makes the others add up to more). The other panels show the
    terms on a log scale and the running share of the denoising terms L_1 … L_{t−1}.

    Args:
        terms: label → the per-example terms of one bound, ``(T + 1, B)`` as in
            ``dl.elbo_terms(...).terms`` (row 0 L_0, row k L_k, row T the prior term L_T); each
            variant is one value of the first control (e.g. the reverse variance ω_t²).
        unit: the unit of the terms, for the labels.
    """
    if not terms:
        raise ValueError("terms must name at least one bound")
    means = {label: np.asarray(v.double().mean(1) if isinstance(v, torch.Tensor) else np.mean(v, axis=1),
                               dtype=np.float64) for label, v in terms.items()}
    T = {len(m) - 1 for m in means.values()}
    if len(T) != 1 or min(T) < 2:
        raise ValueError(f"every bound needs the same number T + 1 ≥ 3 of terms; got {sorted(len(m) for m in means.values())}")
    T = T.pop()
    colors = {label: f"C{i + 1}" for i, label in enumerate(means)}
    steps = np.arange(2, T + 1)
    denoising = {label: m[1:T] for label, m in means.items()}  # L_1 .. L_{T−1}, steps t = 2 .. T
    if any(np.any(d <= 0) for d in denoising.values()):
        raise ValueError("the denoising terms (KL divergences) must be positive to be drawn on a log scale")
    shares = {label: np.cumsum(d) / d.sum() for label, d in denoising.items()}
    log_terms = {label: np.log10(d) for label, d in denoising.items()}
    bar_low = min(0.0, *(float(m[:T].min()) for m in means.values()))
    bar_high = max(float(m[:T].max()) for m in means.values())
    log_low = min(float(v.min()) for v in log_terms.values())
    log_high = max(float(v.max()) for v in log_terms.values())
    panels = {
        "bars": F.Panel(f"terms L_0 … L_(T−1) ({unit})", xlabel="step t", xlim=(0.0, T + 1.0),
                        ylim=(1.08 * bar_low, 1.08 * bar_high), width=260, height=200),
        "log": F.Panel("log₁₀ L_(t−1)", xlabel="step t", xlim=(1.0, T + 1.0),
                       ylim=(np.floor(log_low), np.ceil(log_high)), width=230, height=200,
                       layers=[F.line(np.stack([steps, log_terms[k]], 1), color=colors[k]) for k in means]),
        "share": F.Panel("running share of Σ L_(t−1)", xlabel="step t", xlim=(1.0, T + 1.0), ylim=(0.0, 1.02),
                         width=230, height=200,
                         layers=[F.line(np.stack([steps, shares[k]], 1), color=colors[k]) for k in means]),
    }

    def frame(**chosen) -> dict:  # the control "ω_t²" is not a Python name
        variance, t = chosen["ω_t²"], int(chosen["t"])
        m = means[variance]
        total = float(m.sum())
        layers = {"bars": [F.bars(np.concatenate([[0.0], m[:T]]), highlight=t, color=colors[variance])],
                  "log": [F.vline(t)], "share": [F.vline(t)]}
        term = f"L_{t - 1}"
        if t == 1:
            what = "the decoder term, a −log-density" + (", negative here" if m[0] < 0 else "")
            running = "no denoising term yet"
        else:
            what = f"the KL term of step t = {t}"
            share = _percent(shares[variance][t - 2])
            running = (f"L_1 alone: {share} of Σ L_(t−1)" if t == 2 else f"L_1 … L_{t - 1} together: {share} of Σ L_(t−1)")
            layers["log"].append(F.points([[t, log_terms[variance][t - 2]]], color="#000000", size=7.0))
            layers["share"].append(F.points([[t, shares[variance][t - 2]]], color="#000000", size=7.0))
        layers["readout"] = (f"ω_t² = {variance}, t = {t}: {term} = {_fmt_g(float(m[t - 1]), 4)} {unit} ({what}), "
                             f"{_percent(float(m[t - 1]) / total)} of the bound L = {_fmt_g(total, 4)} {unit}; {running}")
        return layers

    names = ", ".join(f"ω_t² = {label} ({_COLOR_NAMES[int(c[1:]) % 10]})" for label, c in colors.items())
    prior = max(float(m[T]) for m in means.values())
    prior_text = "below 1e-5" if abs(prior) < 1e-5 else f"at most {_fmt_g(prior)} {unit}"
    return F.Explorer(
        [F.Control("ω_t²", list(means)), F.Control("t", list(range(1, T + 1)))], panels, frame,
        caption=f"Bars: the chosen bound, step t in black. Curves: {names}. The prior term L_T "
                f"({prior_text}) counts in the bound but is not drawn.")


# --- Chapter 3: the forward posterior -----------------------------------------------------------

def posterior(
    schedule,
    data: torch.Tensor,
    anchors: torch.Tensor,
    *,
    steps: tuple[int, ...] = (2, 3, 5, 10, 20, 30, 50, 70, 90),
    n_background: int = 500,
    n_samples: int = 200,
    zoom: float = 0.6,
    lim: float = 3.0,
    seed: int = 0,
) -> F.Explorer:
    """Chapter 3: q(x_{t−1} | x_t, x_0) = N(μ̃_t, β̃_t I) on a 2D toy, with sliders over x_0 and t.

    For each x_0 one noised x_t = s_t x_0 + σ_t ε is drawn with a fixed ε (the same for every t),
    and the posterior is shown by its mean μ̃_t (a point), a circle of radius √β̃_t (one standard
    deviation) and ``n_samples`` draws μ̃_t + √β̃_t z with fixed z. A second panel zooms in around
    x_0 (coordinates x − x_0, half-width ``zoom``), where the small-t posteriors are visible; the
    third shows √β̃_t against the forward step's √β_t up to the largest step offered (the last
    steps of a cosine schedule, where β_t is clipped at 0.999, lie above it).

    Args:
        schedule: a :class:`~diffusion_lab.schedules.NoiseSchedule`.
        data: ``(n, 2)`` points of the toy, drawn in grey (the first ``n_background``).
        anchors: ``(k, 2)`` the values of x_0 offered by the first slider.
        steps: the values of t (each at least 2, at most T).
    """
    from .forward import q_posterior, q_sample

    anchors = torch.as_tensor(anchors, dtype=torch.float64).reshape(-1, 2)
    if len(anchors) == 0:
        raise ValueError("anchors must hold at least one point x_0")
    steps = tuple(int(t) for t in steps)
    if not steps or min(steps) < 2 or max(steps) > schedule.T:
        raise ValueError(f"steps must lie in 2..T = {schedule.T} (at t = 1 the posterior is x_0 itself); got {steps}")
    generator = torch.Generator().manual_seed(seed)
    eps = torch.randn(anchors.shape, generator=generator, dtype=torch.float64)  # one ε per x_0
    z = torch.randn(n_samples, 2, generator=generator, dtype=torch.float64)  # the same z for every frame
    labels = [f"({float(a[0]):.2f}, {float(a[1]):.2f})" for a in anchors]
    by_label = dict(zip(labels, range(len(anchors))))
    grid = np.arange(1, schedule.T + 1)
    panels = {
        "plane": F.Panel("q(x_(t−1) | x_t, x_0)", xlim=(-lim, lim), ylim=(-lim, lim), width=240, height=240,
                         layers=[F.points(data[:n_background], color="#bbbbbb", size=2.0)]),
        "zoom": F.Panel("around x_0: x − x_0", xlim=(-zoom, zoom), ylim=(-zoom, zoom), width=220, height=220),
        "std": F.Panel("√β̃_t (green) and √β_t (grey)", xlabel="step t", xlim=(0.0, schedule.T + 1.0),
                       ylim=(0.0, 1.1 * float(np.sqrt(schedule.beta[max(steps)]))), width=220, height=200,
                       layers=[F.line(_curve(grid, np.sqrt(schedule.beta[1:])), color="#999999"),
                               F.line(_curve(grid, np.sqrt(schedule.beta_tilde[1:])), color="C2")]),
    }

    def frame(x_0: str, t: int) -> dict:
        i = by_label[x_0]
        x0 = anchors[i:i + 1]
        x_t = q_sample(schedule, x0, t, noise=eps[i:i + 1])
        mean, variance = q_posterior(schedule, x_t, x0, t)
        std = float(variance.reshape(-1)[0]) ** 0.5
        samples = mean + std * z

        def scene(shift: torch.Tensor) -> list[dict]:
            m = (mean - shift)[0]
            return [F.points(samples - shift, color="#98df8a", size=2.0), F.circle(float(m[0]), float(m[1]), std, color="C2"),
                    F.points(x_t - shift, color="#000000", size=6.0), F.points(x0 - shift, color="C3", size=6.0),
                    F.points(mean - shift, color="C2", size=6.0)]

        a = schedule.alpha_bar[t - 1] ** 0.5 * schedule.beta[t] / (1 - schedule.alpha_bar[t])
        b = schedule.alpha[t] ** 0.5 * (1 - schedule.alpha_bar[t - 1]) / (1 - schedule.alpha_bar[t])
        return {
            "plane": scene(torch.zeros(1, 2, dtype=torch.float64)),
            "zoom": scene(x0),
            "std": [F.vline(t), F.points([[t, std]], color="#000000", size=7.0)],
            "readout": (f"x_0 = {labels[i]}, t = {t}: μ̃_t = {a:.3f} x_0 + {b:.3f} x_t = "
                        f"({float(mean[0, 0]):.2f}, {float(mean[0, 1]):.2f}), √β̃_t = {_fmt_g(std)} "
                        f"(√β_t = {_fmt_g(float(schedule.beta[t]) ** 0.5)})"),
        }

    return F.Explorer(
        [F.Control("x_0", labels), F.Control("t", list(steps), start=min(3, len(steps) - 1))], panels, frame,
        caption="Red: x_0; black: x_t (the same ε for every t); green: the posterior mean μ̃_t and a circle of "
                "one standard deviation √β̃_t; light green: draws from the posterior.")


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
        from .fitting import EMA

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
    from .metrics import energy_distance_floor, energy_ratio
    from .samplers import ddpm_sample

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
                        width=230, height=200, layers=[F.line(_curve(smooth_steps / kilo, smooth), color="#bbbbbb")]),
    }

    def frame(**chosen) -> dict:  # the control "training step" is not a Python name
        step = int(chosen["training step"])
        raw, ema = samples[step]
        layers = {"raw": [F.points(raw, color="C1", size=2.0)], "ema": [F.points(ema, color="C0", size=2.0)],
                  "loss": [F.vline(step / kilo)]}
        quality = (f"energy distance / floor: weights {_fmt_g(ratios[step][0])}, "
                   f"moving average {_fmt_g(ratios[step][1])}")
        if step < window:
            layers["readout"] = f"step {step} of {total}: {'untrained' if step == 0 else 'just started'}; {quality}"
            return layers
        upto = smooth_steps <= step
        layers["loss"] += [F.line(_curve(smooth_steps[upto] / kilo, smooth[upto]), color="C0"),
                           F.points([[step / kilo, float(smooth[upto][-1])]], color="#000000", size=7.0)]
        layers["readout"] = (f"step {step} of {total}: loss {_fmt_g(float(smooth[upto][-1]))} "
                             f"(mean of steps {step - window + 1}..{step}); {quality}")
        return layers

    return F.Explorer(
        [F.Control("training step", list(models), play=True)], panels, frame,
        caption="Every frame samples from the same noise (grey: real data). Left: the weights after that many "
                "steps; middle: their moving average, which the chapter samples from.")


# --- Chapter 5: Langevin dynamics ----------------------------------------------------------------

def _density_image(mixture, lim: float, grid: int, scale: float = 1.0, std: float = 0.0, depth: float = 0.6) -> dict:
    """The mixture's density p (noised to x = s x_0 + σ z) on [−lim, lim]² as a grey image, darker where p is
    higher; the grey level follows √(p / max p), so that wide components stay visible beside a sharp one."""
    axis = torch.linspace(-lim, lim, grid, dtype=torch.float64)
    gy, gx = torch.meshgrid(axis.flip(0), axis, indexing="ij")  # row 0 at the top: y = +lim
    density = mixture.log_prob(torch.stack([gx.flatten(), gy.flatten()], 1), scale, std).exp().reshape(grid, grid)
    return F.image(1.0 - depth * (density / density.max()).sqrt(), extent=(-lim, lim, -lim, lim), value_range=(0.0, 1.0))


def langevin_steps(mixture, chains: dict, step_counts, *, component: int | None = None, lim: float = 3.0,
                   grid: int = 80) -> F.Explorer:
    """Chapter 5: Langevin particles over the exact density, sliders over the step size ε and the number of steps K.

    The right panel follows the spread of the particles that the mixture's responsibilities assign
    to one component k (by default the tightest): the mean of (x − μ_k)ᵀ Σ_k⁻¹ (x − μ_k) / D, which is 1
    for exact samples of that component. Unadjusted Langevin on a Gaussian of variance λ has the
    stationary variance λ / (1 − ε/(4λ)) (chapter 5), so for long chains the spread tends to the mean
    of 1 / (1 − ε/(4λ_j)) over the eigenvalues λ_j of Σ_k: drawn as a short line at the right in the
    colour of each ε, and read out with the share of particles per component against the weights π.

    Args:
        mixture: the :class:`~diffusion_lab.GaussianMixture` sampled (its density is the background).
        chains: ε → the particles after each entry of ``step_counts``, ``(len(step_counts), n, 2)``,
            e.g. a trajectory of :func:`~diffusion_lab.langevin_dynamics` taken at those steps.
        step_counts: the numbers of steps K offered by the second slider (0: the start).
        component: the component k whose spread is followed (default: the smallest largest eigenvalue).
    """
    step_counts = [int(k) for k in step_counts]
    sizes = [float(eps) for eps in chains]
    n = next(iter(chains.values())).shape[1]
    for eps, chain in chains.items():
        if tuple(chain.shape) != (len(step_counts), n, 2):
            raise ValueError(f"chains[{eps}] must have shape ({len(step_counts)}, n, 2), got {tuple(chain.shape)}")
    eigen = torch.linalg.eigvalsh(mixture.covs)  # (K, D)
    k = int(eigen[:, -1].argmin()) if component is None else int(component)
    precision, mean, lam = torch.linalg.inv(mixture.covs[k]), mixture.means[k], eigen[k]
    spreads, shares = {}, {}
    for eps, chain in zip(sizes, chains.values()):
        spreads[eps], shares[eps] = [], []
        for x in chain.double():
            owner = mixture.class_log_posterior(x).argmax(1)
            d = x[owner == k] - mean
            spreads[eps].append(float(torch.einsum("bi,ij,bj->b", d, precision, d).mean()) / x.shape[1]
                                if len(d) else float("nan"))
            shares[eps].append((torch.bincount(owner, minlength=mixture.n_components).double() / n).tolist())
    theory = {eps: float((1 / (1 - eps / (4 * lam))).mean()) if eps < 4 * float(lam.min()) else float("inf")
              for eps in sizes}
    colors = {eps: f"C{i}" for i, eps in enumerate(sizes)}
    x_axis = np.log10(1.0 + np.array(step_counts, dtype=np.float64))
    log_spread = {eps: np.log10(np.array(s)) for eps, s in spreads.items()}
    finite = [v for s in log_spread.values() for v in s if np.isfinite(v)]
    right = float(x_axis[-1])
    curves = []
    for eps in sizes:
        keep = np.isfinite(log_spread[eps])
        curves.append(F.line(np.stack([x_axis[keep], log_spread[eps][keep]], 1), color=colors[eps]))
        if np.isfinite(theory[eps]):
            level = np.log10(theory[eps])
            curves.append(F.line([[right + 0.05, level], [right + 0.35, level]], color=colors[eps], width=3.0))
    near = f"μ_{k + 1}"
    title = f"particles near {near} = ({_fmt_g(float(mean[0]), 2)}, {_fmt_g(float(mean[1]), 2)})"
    panels = {
        "particles": F.Panel("particles over p(x)", xlim=(-lim, lim), ylim=(-lim, lim), width=240, height=240,
                             layers=[_density_image(mixture, lim, grid)]),
        "spread": F.Panel(f"log₁₀ spread of the particles near {near}", xlabel="log₁₀(1 + K)", xlim=(0.0, right + 0.4),
                          ylim=(min(-0.1, np.floor(10 * min(finite)) / 10), np.ceil(10 * max(finite)) / 10 + 0.1),
                          width=280, height=220, layers=curves + [F.line([[0.0, 0.0], [right + 0.4, 0.0]], color="#999999", width=1.0)]),
    }
    weights = ", ".join(_percent(float(w)) for w in mixture.weights)

    def frame(**chosen) -> dict:
        eps, j = float(chosen["ε"]), step_counts.index(int(chosen["K"]))
        share = ", ".join(_percent(s) for s in shares[eps][j])
        stationary = (f"stationary value of the chain: {_fmt_g(theory[eps])}×" if np.isfinite(theory[eps])
                      else "no stationary value: ε ≥ 4λ, the linear chain diverges")
        spread = "no particle left there" if not np.isfinite(spreads[eps][j]) else f"{_fmt_g(spreads[eps][j])}× its variance"
        layers = {"particles": [F.points(chains_by_size[eps][j], color=colors[eps], size=2.0)],
                  "spread": [F.vline(float(x_axis[j]))],
                  "readout": (f"ε = {eps:g}, K = {step_counts[j]} (Langevin time εK/2 = {_fmt_g(eps * step_counts[j] / 2)}): "
                              f"spread of the {title}: {spread} ({stationary}); particles per component "
                              f"{share} (π: {weights})")}
        if np.isfinite(log_spread[eps][j]):
            layers["spread"].append(F.points([[x_axis[j], log_spread[eps][j]]], color="#000000", size=7.0))
        return layers

    chains_by_size = dict(zip(sizes, chains.values()))
    names = ", ".join(f"ε = {eps:g} ({_COLOR_NAMES[i % 10]})" for i, eps in enumerate(sizes))
    return F.Explorer(
        [F.Control("ε", sizes, fmt="{:g}"), F.Control("K", step_counts, start=len(step_counts) - 1)], panels, frame,
        caption=f"Curves: {names}; thick marks at the right: each chain's stationary spread 1/(1 − ε/(4λ)); "
                "grey line: the exact spread, 1. A small ε needs many steps, a large one settles fast but wide.")


# --- Chapter 6: reverse-time SDE and probability-flow ODE ---------------------------------------

def sde_and_ode_paths(mixture, process, times: torch.Tensor, sde_path: torch.Tensor, ode_path: torch.Tensor, *,
                      every: int = 5, n: int = 700, n_paths: int = 3, lim: float = 3.0, grid: int = 50,
                      seed: int = 0) -> F.Explorer:
    """Chapter 6: a slider over t; the reverse-time SDE's and the probability-flow ODE's particles side by side.

    Both samplers start from the same x_1 and visit the same ``times``; the background of both
    panels is the exact marginal p_t of the mixture noised by ``process``, and a few particles are
    drawn with their paths from t = 1 to the chosen t (jagged for the SDE, smooth for the ODE). The
    readout compares the share of particles that the responsibilities of p_t assign to each
    component, for the SDE, the ODE and exact samples of p_t (as many as the paths hold), and gives
    the mean distance between the SDE's and the ODE's particle of the same start.

    Args:
        mixture: the :class:`~diffusion_lab.GaussianMixture` whose exact score drove both samplers.
        process: the SDE (its s_t and σ_t give p_t).
        times: the times visited, ``(N + 1,)`` from 1 down; sde_path, ode_path: ``(N + 1, B, 2)``.
        every: show every so many times (the last one always); n: particles drawn per panel.
        seed: for the exact samples of p_t.
    """
    if not (len(times) == len(sde_path) == len(ode_path)):
        raise ValueError(f"times, sde_path and ode_path must have the same length, got "
                         f"{len(times)}, {len(sde_path)}, {len(ode_path)}")
    chosen_steps = sorted({*range(0, len(times), every), len(times) - 1})
    labels = [f"{float(times[i]):.3f}" for i in chosen_steps]
    by_label = dict(zip(labels, chosen_steps))
    s, sigma = process.scale_std(torch.as_tensor(times, dtype=torch.float64))
    generator = torch.Generator().manual_seed(seed)
    x0 = mixture.sample(sde_path.shape[1], generator=generator).double()
    noise = torch.randn(x0.shape, generator=generator, dtype=torch.float64)
    path_colors = ["C3", "C2", "C4", "C5", "C6"]
    panels = {name: F.Panel(title, xlim=(-lim, lim), ylim=(-lim, lim), width=240, height=240)
              for name, title in (("sde", "reverse-time SDE"), ("ode", "probability-flow ODE"))}

    def shares(x: torch.Tensor, i: int) -> str:
        owner = mixture.class_log_posterior(x.double(), float(s[i]), float(sigma[i])).argmax(1)
        counts = torch.bincount(owner, minlength=mixture.n_components).double() / len(x)
        return "/".join(f"{100 * float(c):.0f}" for c in counts) + " %"

    def frame(t: str) -> dict:
        i = by_label[t]
        background = _density_image(mixture, lim, grid, float(s[i]), float(sigma[i]))
        layers = {}
        for name, path, color in (("sde", sde_path, "C1"), ("ode", ode_path, "C0")):
            layers[name] = [background, F.points(path[i, :n], color=color, size=2.0)]
            layers[name] += [F.line(path[:i + 1, k], color=path_colors[k % len(path_colors)], width=1.0)
                             for k in range(n_paths)]
            layers[name] += [F.points(path[i, k:k + 1], color=path_colors[k % len(path_colors)], size=6.0)
                             for k in range(n_paths)]
        exact = float(s[i]) * x0 + float(sigma[i]) * noise
        gap = float((sde_path[i] - ode_path[i]).norm(dim=1).mean())
        layers["readout"] = (f"t = {t}: particles per component of p_t: SDE {shares(sde_path[i], i)}, "
                             f"ODE {shares(ode_path[i], i)}, exact samples {shares(exact, i)}; mean distance "
                             f"between the SDE's and the ODE's particle of the same start: {_fmt_g(gap)}")
        return layers

    return F.Explorer(
        [F.Control("t", labels, play=True)], panels, frame,
        caption="Grey: the exact marginal p_t. Both clouds follow it at every t; the coloured paths of the same "
                "three starting points show how differently single particles get there.")

# --- Chapter 7: DDIM, the number of steps and η ------------------------------------------------

@torch.no_grad()
def ddim_steps_and_eta(toy_denoiser, mixture, image_denoiser, *, steps=(2, 5, 10, 20, 50), etas=(0.0, 0.5, 1.0),
                       n_points: int = 1000, per_class: int = 2, seed: int = 0, lim: float = 2.3) -> F.Explorer:
    """Chapter 7: DDIM samples for every number of steps S and every η, from the same noise.

    Panels: ``n_points`` samples of a 2D toy (``toy_denoiser``, e.g. the mixture's exact denoiser),
    with their energy ratio to ``mixture`` (1 + n D̂² / E|Y − Y'|, 1 on average for perfect samples)
    in the readout; and images from ``image_denoiser`` (``per_class`` of each class of a
    class-conditional UNet, or ``10 · per_class`` unconditional ones). The starting noise and the
    fresh noise (one generator per frame, seeded alike) are the same in every frame, so moving a
    slider changes only the sampler.
    """
    from .metrics import energy_distance_to_mixture, mixture_mean_distance
    from .samplers import ddim_sample

    steps, etas = [int(s) for s in steps], [float(e) for e in etas]
    generator = torch.Generator().manual_seed(seed)
    x_points = torch.randn(n_points, 2, generator=generator, dtype=torch.float64)
    net = image_denoiser.net
    n_classes = image_denoiser.num_classes
    labels = None if n_classes is None else torch.arange(n_classes).repeat(per_class)  # (K · per_class,)
    n_images = 10 * per_class if labels is None else len(labels)
    x_images = torch.randn(n_images, net.in_channels, net.image_size, net.image_size, generator=generator)
    images_denoiser = image_denoiser if labels is None else image_denoiser.replace(labels=labels)
    floor = mixture_mean_distance(mixture)
    cols = 5  # near-square grids, also in the live figure's square panels

    def frame(S: int, eta: float) -> dict:
        points = ddim_sample(toy_denoiser, x_points, steps=S, eta=eta, generator=torch.Generator().manual_seed(seed + 1))
        images = ddim_sample(images_denoiser, x_images, steps=S, eta=eta,
                             generator=torch.Generator().manual_seed(seed + 2)).clamp(-1, 1)
        ratio = 1 + n_points * energy_distance_to_mixture(points, mixture) / floor
        return {"toy": [F.points(points, color="C0", size=1.5)],
                "images": [F.image_grid(images.float().numpy(), cols=cols)],
                "readout": f"S = {S} steps, η = {eta:g}: energy ratio of the toy samples {_fmt_g(ratio)} "
                           "(1 = perfect, on average)"}

    rows = -(-n_images // cols)
    panels = {
        "toy": F.Panel(f"toy: {n_points:,} samples", "x₁", "x₂", (-lim, lim), (-lim, lim), width=250, height=250),
        "images": F.Panel(f"digits, {per_class} of each" if labels is not None else "digits",
                          width=42 + 36 * cols, height=46 + 36 * rows),
    }
    return F.Explorer(
        [F.Control("steps S", steps, start=min(2, len(steps) - 1)), F.Control("η", etas, fmt="{:g}")], panels,
        lambda **c: frame(c["steps S"], c["η"]),
        caption="Same starting noise and fresh noise in every frame. Few steps: η = 0 blurs the modes, η > 0 "
                "also leaves noise that the remaining steps cannot remove. Many steps: every η gives the same law.")


# --- Chapter 8: the guidance weight w ----------------------------------------------------------

@torch.no_grad()
def guidance_weight(toy_denoiser, tradeoff: dict, image_denoiser, *, n_per_class: int = 300, toy_steps: int = 50,
                    image_steps: int = 10, per_class: int = 2, seed: int = 0, lim: float = 3.2) -> F.Explorer:
    """Chapter 8: classifier-free guidance of weight w on a labelled 2D toy and on images, with the trade-off.

    The slider runs over ``tradeoff["scale"]`` (the result of :func:`~diffusion_lab.guidance_tradeoff`
    for ``toy_denoiser``). Panels: ``n_per_class`` samples of every class of the toy,
    ``toy_denoiser.replace(labels=k, guidance=w)`` with DDIM (``toy_steps``); ``per_class`` images of
    every class from ``image_denoiser`` at the same w (DDIM, ``image_steps``); and the measured
    accuracy against diversity, the current w marked. The same noise in every frame.
    """
    from .samplers import ddim_sample

    scales = [float(w) for w in tradeoff["scale"]]
    accuracy, diversity = np.asarray(tradeoff["accuracy"]), np.asarray(tradeoff["diversity"])
    k_toy, k_images = toy_denoiser.num_classes, image_denoiser.num_classes
    if k_toy is None or k_images is None:
        raise ValueError("guidance needs class-conditional denoisers (num_classes is None)")
    generator = torch.Generator().manual_seed(seed)
    x_toy = torch.randn(k_toy, n_per_class, 2, generator=generator)  # (K, n, 2)
    net = image_denoiser.net
    labels = torch.arange(k_images).repeat(per_class)
    x_images = torch.randn(len(labels), net.in_channels, net.image_size, net.image_size, generator=generator)
    cols = 5  # near-square grids, also in the live figure's square panels
    rows = -(-len(labels) // cols)
    pad_x = 0.1 * float(diversity.max() - diversity.min()) + 1e-3
    pad_y = 0.1 * float(accuracy.max() - accuracy.min()) + 1e-3
    curve = np.stack([diversity, accuracy], 1)
    panels = {
        "toy": F.Panel(f"toy: {n_per_class} samples per class", "x₁", "x₂", (-lim, lim), (-lim, lim),
                       width=250, height=250),
        "images": F.Panel(f"digits, {per_class} of each", width=42 + 36 * cols, height=46 + 36 * rows),
        "tradeoff": F.Panel("accuracy against diversity", "diversity E|X − X'|", "accuracy",
                            (float(diversity.min()) - pad_x, float(diversity.max()) + pad_x),
                            (float(accuracy.min()) - pad_y, float(accuracy.max()) + pad_y), width=250, height=250,
                            layers=[F.line(curve, color="#999999"), F.points(curve, color="#999999", size=5.0)]),
    }

    def frame(w: float) -> dict:
        i = scales.index(w)
        toy = [F.points(ddim_sample(toy_denoiser.replace(labels=k, guidance=w), x_toy[k], steps=toy_steps),
                        color=f"C{k}", size=1.5) for k in range(k_toy)]
        guided = image_denoiser.replace(labels=labels, guidance=w)
        images = ddim_sample(guided, x_images, steps=image_steps).clamp(-1, 1)
        return {"toy": toy, "images": [F.image_grid(images.float().numpy(), cols=cols)],
                "tradeoff": [F.points(curve[i:i + 1], color="C3", size=9.0)],
                "readout": f"w = {w:g}: judged accuracy {_fmt_g(float(accuracy[i]))}, within-class diversity "
                           f"{_fmt_g(float(diversity[i]))} (toy)"}

    return F.Explorer(
        [F.Control("w", scales, fmt="{:g}")], panels, lambda w: frame(w),
        caption="The same noise in every frame. As w grows each class contracts and moves away from the others: "
                "accuracy rises towards 1 while the within-class diversity falls.")


# --- Chapter 9: a batch of digits denoised step by step ----------------------------------------

def denoising_trajectory(process, times: torch.Tensor, trajectory: torch.Tensor, x0_hats: torch.Tensor, *,
                         cols: int = 5) -> F.Explorer:
    """Chapter 9: a sampler's trajectory on a batch of images, a slider over the reverse steps.

    Panels: the states x_t (clipped to the data range [−1, 1] for display), the network's guess x̂₀ at
    each of them, and the signal scale s_t and noise std σ_t of ``process`` against the number of
    steps taken, with the current step marked. The readout gives t, s_t, σ_t and how far x̂₀ moved
    in this step (root-mean-square over the batch's pixels).

    Args:
        process: the noise process (``denoiser.process``); its ``scale_std`` gives s_t and σ_t.
        times: the times visited, ``(S + 1,)`` from the start down to 0 (``process.time_grid(S)``).
        trajectory: ``(S + 1, B, C, H, W)``, the states in sampling order (``return_trajectory=True``).
        x0_hats: ``(S + 1, B, C, H, W)``, x̂₀ at each state (at the last one, the sample itself).
        cols: images per row.
    """
    times = torch.as_tensor(times)
    if not (len(times) == len(trajectory) == len(x0_hats)) or trajectory.shape != x0_hats.shape:
        raise ValueError(f"times {tuple(times.shape)}, trajectory {tuple(trajectory.shape)} and x0_hats "
                         f"{tuple(x0_hats.shape)} must describe the same S + 1 states")
    S, B = len(times) - 1, trajectory.shape[1]
    s, sigma = (np.asarray(v, dtype=np.float64) for v in process.scale_std(times))
    k_axis = np.arange(S + 1, dtype=np.float64)
    move = [0.0] + [float((x0_hats[k] - x0_hats[k - 1]).double().pow(2).mean().sqrt()) for k in range(1, S + 1)]
    rows = -(-B // cols)
    size = dict(width=42 + 36 * cols, height=46 + 36 * rows)
    panels = {
        "x_t": F.Panel("x_t (clipped to [−1, 1])", **size),
        "x0_hat": F.Panel("the guess x̂₀", **size),
        "noise": F.Panel("s_t (blue) and σ_t (orange)", xlabel="reverse steps taken", xlim=(0.0, float(S)),
                         ylim=(-0.02, 1.02), width=230, height=46 + 36 * rows + 40,
                         layers=[F.line(np.stack([k_axis, s], 1), color="C0"),
                                 F.line(np.stack([k_axis, sigma], 1), color="C1")]),
    }

    def frame(step: int) -> dict:
        k = int(step)
        t = int(times[k]) if not times.is_floating_point() else float(times[k])
        moved = "" if k == 0 else f"; x̂₀ moved by {_fmt_g(move[k], 2)} (RMS) in this step"
        return {
            "x_t": [F.image_grid(trajectory[k].float().clamp(-1, 1).numpy(), cols=cols)],
            "x0_hat": [F.image_grid(x0_hats[k].float().clamp(-1, 1).numpy(), cols=cols)],
            "noise": [F.vline(k), F.points([[k, s[k]], [k, sigma[k]]], color="#000000", size=6.0)],
            "readout": f"after {k} of {S} steps: t = {t:g}, s_t = {_fmt_g(float(s[k]))}, "
                       f"σ_t = {_fmt_g(float(sigma[k]))}{moved}",
        }

    return F.Explorer(
        [F.Control("step", list(range(S + 1)), play=True)], panels, frame,
        caption="Press play. The guess x̂₀ settles on a digit's shape while x_t is still mostly noise; "
                "the last steps only sharpen strokes.")


# --- Chapter 10: SDEdit's t₀ and RePaint's resampling count ------------------------------------

def edit_and_inpaint(process, guides: torch.Tensor, edits: dict, truth: torch.Tensor, mask: torch.Tensor,
                     fills: dict, *, shown: int = 10) -> F.Explorer:
    """Chapter 10: two sliders, SDEdit's starting step t₀ and RePaint's number of resamplings U.

    Panels: the guides above their SDEdit edits at the chosen t₀; the masked inputs (missing pixels
    grey), the inpaintings with the chosen U and the truth. The readout measures all the images,
    not only the ``shown`` ones: the edits' root-mean-square distance to their guides, and the
    fills' mean squared error on the missing pixels.

    Args:
        process: the noise process (its ``scale_std`` gives s_t₀²).
        guides: ``(n, C, H, W)`` the images SDEdit started from; ``edits``: t₀ → ``(n, C, H, W)``.
        truth: ``(n, C, H, W)`` the complete images; ``mask``: bool, broadcastable to them, True where observed.
        fills: U → ``(n, C, H, W)`` inpaintings of ``truth`` observed through ``mask``.
    """
    if not edits or not fills:
        raise ValueError("edit_and_inpaint needs at least one edit (t₀) and one fill (U)")
    mask = torch.as_tensor(mask, dtype=torch.bool).expand_as(truth)
    missing = ~mask
    observed = torch.where(mask, truth, torch.zeros_like(truth))  # missing pixels mid-grey

    def grid(*rows: torch.Tensor) -> dict:
        return F.image_grid(torch.cat([r[:shown] for r in rows]).float().clamp(-1, 1).numpy(), cols=shown)

    distance = {t0: float((x - guides).flatten(1).pow(2).mean(1).sqrt().mean()) for t0, x in edits.items()}
    error = {u: float(((x - truth) ** 2)[missing].mean()) for u, x in fills.items()}
    scale2 = {t0: float(process.scale_std(torch.tensor([t0]))[0][0]) ** 2 for t0 in edits}
    tile = 30  # pixels per image on the page
    width = 42 + tile * shown
    panels = {
        "sdedit": F.Panel("SDEdit: guides (top), edits", width=width, height=46 + tile * 2),
        "repaint": F.Panel("RePaint: input, fill, truth", width=width, height=46 + tile * 3),
    }

    def frame(**chosen) -> dict:
        t0, u = chosen["t₀"], chosen["U"]
        return {
            "sdedit": [grid(guides, edits[t0])],
            "repaint": [grid(observed, fills[u], truth)],
            "readout": f"SDEdit from t₀ = {t0:g} (s_t₀² = {_fmt_g(scale2[t0], 2)}): RMS distance to the guide "
                       f"{_fmt_g(distance[t0], 2)}. RePaint with U = {u}: MSE on the missing pixels "
                       f"{_fmt_g(error[u], 3)} (means over {len(truth)} images)",
        }

    return F.Explorer(
        [F.Control("t₀", list(edits), fmt="{:g}", start=len(edits) // 3), F.Control("U", list(fills))], panels, frame,
        caption="Left slider: a larger t₀ gives more realistic digits that forget their guide. Right slider: more "
                "resampling lets the filled-in strokes join the observed ones.")


# --- Chapter 11: flow matching against diffusion at equal NFE; the distilled student's steps ------

def _sig3(value: float) -> str:
    """3 significant digits, without an exponent where one is not needed: 2132.6 -> 2130, 61.88 -> 61.9."""
    return f"{float(f'{value:.3g}'):g}"


def flow_vs_diffusion(nfes, flow_samples: dict, diffusion_samples: dict, flow_ratio: dict, diffusion_ratio: dict, *,
                      n_points: int = 1000, lim: float = 3.0) -> F.Explorer:
    """Chapter 11: a flow (Euler steps) and a diffusion model (DDIM steps) at the same number of network calls.

    Panels: the first ``n_points`` samples of each, started from the same noise, and the quality of
    both (energy distance to real data over the real-vs-real floor, log scales) against the NFE, with
    the chosen NFE marked. ``*_samples``: NFE → ``(n, 2)``; ``*_ratio``: NFE → energy ratio.
    """
    nfes = [int(k) for k in nfes]
    missing = [k for k in nfes if not all(k in d for d in (flow_samples, diffusion_samples, flow_ratio, diffusion_ratio))]
    if missing:
        raise ValueError(f"no samples or ratios for NFE {missing}")
    x = np.log2(nfes)
    curves = {name: np.log10([float(r[k]) for k in nfes]) for name, r in (("flow", flow_ratio), ("diffusion", diffusion_ratio))}
    low = min(float(c.min()) for c in curves.values())
    high = max(float(c.max()) for c in curves.values())
    cloud = dict(xlim=(-lim, lim), ylim=(-lim, lim), width=220, height=220)
    panels = {
        "flow": F.Panel("flow matching, Euler", "x₁", "x₂", **cloud),
        "diffusion": F.Panel("diffusion, DDIM", "x₁", "x₂", **cloud),
        "quality": F.Panel("log₁₀ energy distance / floor", "log₂ NFE", xlim=(-0.3, float(x[-1]) + 0.3),
                           ylim=(np.floor(min(low, 0.0)) - 0.2, np.ceil(high) + 0.2), width=230, height=200,
                           layers=[F.line(np.stack([x, curves["flow"]], 1), color="C0"),
                                   F.line(np.stack([x, curves["diffusion"]], 1), color="C1")]),
    }

    def frame(NFE: int) -> dict:
        i = nfes.index(NFE)
        marks = [[x[i], curves["flow"][i]], [x[i], curves["diffusion"][i]]]
        return {
            "flow": [F.points(flow_samples[NFE][:n_points], color="C0", size=2.0)],
            "diffusion": [F.points(diffusion_samples[NFE][:n_points], color="C1", size=2.0)],
            "quality": [F.vline(x[i]), F.points(marks, color="#000000", size=6.0)],
            "readout": f"NFE = {NFE}: energy distance / floor {_sig3(float(flow_ratio[NFE]))} for flow matching "
                       f"(blue), {_sig3(float(diffusion_ratio[NFE]))} for diffusion (orange); 1 = as close as "
                       "a second real sample",
        }

    return F.Explorer([F.Control("NFE", nfes, start=min(2, len(nfes) - 1))], panels, frame,
                      caption="The same starting noise in every frame and both panels. With few network calls the "
                              "straighter flow keeps the roll's shape; DDIM needs more steps.")


def distilled_students(steps, swiss: dict, digits: dict, swiss_ratio: dict, digits_fld: dict, *,
                       n_points: int = 1000, n_images: int = 8, lim: float = 3.0) -> F.Explorer:
    """Chapter 11: a distilled student against its teacher's own DDIM at the same number of steps N.

    ``swiss``: N → (teacher samples, student samples), each ``(n, 2)``; ``digits``: N → (teacher
    images, student images), each ``(m, 1, H, W)`` in [−1, 1]; ``swiss_ratio`` and ``digits_fld``:
    N → (teacher value, student value) for the readout (energy ratio; FLD).
    """
    steps = [int(n) for n in steps]
    missing = [n for n in steps if not all(n in d for d in (swiss, digits, swiss_ratio, digits_fld))]
    if missing:
        raise ValueError(f"no samples or scores for {missing} step(s)")
    cloud = dict(xlim=(-lim, lim), ylim=(-lim, lim), width=220, height=220)
    panels = {
        "teacher": F.Panel("teacher's DDIM (swiss roll)", "x₁", "x₂", **cloud),
        "student": F.Panel("distilled student (swiss roll)", "x₁", "x₂", **cloud),
        "digits": F.Panel("digits: teacher (top), student", width=42 + 36 * n_images, height=46 + 36 * 2),
    }

    def frame(N: int) -> dict:
        (teacher, student), (teacher_images, student_images) = swiss[N], digits[N]
        grid = torch.cat([teacher_images[:n_images], student_images[:n_images]]).float().clamp(-1, 1)
        return {
            "teacher": [F.points(teacher[:n_points], color="C1", size=2.0)],
            "student": [F.points(student[:n_points], color="C0", size=2.0)],
            "digits": [F.image_grid(grid.numpy(), cols=n_images)],
            "readout": f"{N} DDIM step(s): swiss roll energy distance / floor {_sig3(swiss_ratio[N][0])} (teacher), "
                       f"{_sig3(swiss_ratio[N][1])} (student); digits FLD {_sig3(digits_fld[N][0])} (teacher), "
                       f"{_sig3(digits_fld[N][1])} (student)",
        }

    return F.Explorer([F.Control("N", steps, start=min(2, len(steps) - 1))], panels, frame,
                      caption="Same starting noise in every frame. The teacher's own DDIM falls apart below about 16 "
                              "steps; each student, trained for its N, keeps the 64-step teacher's quality.")
