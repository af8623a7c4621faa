"""The one contract between networks and samplers: a :class:`Denoiser`.

A denoiser is built once from a network, its noise process x_t = s(t) x_0 + σ(t) ε (a schedule,
an SDE, a flow path or NCSN's noise levels: see :mod:`diffusion_lab.processes`) and what the
network predicts. Every sampler takes a denoiser and asks it, at (x_t, t), for one of

=============  =========================================  =======================================
method         symbol                                     meaning
=============  =========================================  =======================================
``x0``         x̂₀ = E[x_0 | x_t]                          the denoised guess ("predicted x_0")
``eps``        ε̂  = E[ε | x_t] = (x_t − s x̂₀) / σ         the noise in x_t
``score``      ŝ  = ∇ log p_t(x_t) = −ε̂ / σ               (Tweedie's formula; Song et al. 2021)
``velocity``   u  = ṡ x̂₀ + σ̇ ε̂                             dx/dt of the probability-flow ODE
=============  =========================================  =======================================

converted from the network's output in exactly one place (:func:`prediction_from_output`), in the
spirit of the preconditioning wrappers of Karras et al. (2022). Optional extras, all applied here
and nowhere else: class labels with classifier-free guidance of weight w (Ho & Salimans 2022,
Eq. 6, on the network outputs, so on every quantity alike), and a clip or threshold of x̂₀
(Ho et al. 2020's clipping; Saharia et al. 2022's dynamic thresholding), after which ε̂, the score
and the velocity are recomputed from the clipped x̂₀.

What a network can predict (``predicts``), with x_t = s x_0 + σ ε:

============  =====================  ===============================================================
``predicts``  target                 x̂₀ and ε̂ from the output r
============  =====================  ===============================================================
``eps``       ε                      ε̂ = r,  x̂₀ = (x − σ r) / s
``x0``        x_0                    x̂₀ = r,  ε̂ = (x − s r) / σ  (0 where σ = 0)
``v``         s ε − σ x_0            x̂₀ = (s x − σ r) / (s² + σ²), ε̂ = (σ x + s r) / (s² + σ²)
``score``     −ε / σ                 ε̂ = −σ r,  x̂₀ = (x + σ² r) / s
``velocity``  ṡ x_0 + σ̇ ε            x̂₀ = (σ̇ x − σ r) / (s σ̇ − σ ṡ), ε̂ = (s r − ṡ x) / (s σ̇ − σ ṡ)
============  =====================  ===============================================================

(v is Salimans & Ho 2022, Sec. 4, for which s² + σ² = 1; the velocity is flow matching's target,
Lipman et al. 2023.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .broadcast import expand_like
from .thresholding import Clip, make_clip
from .validation import check_choice, check_float, check_labels, check_tensor

PARAMETERIZATIONS = ("eps", "x0", "v", "score", "velocity")


@dataclass(frozen=True)
class Coefficients:
    """s, σ (and ṡ, σ̇ in continuous time) at the batch's times, broadcast to ``(B, 1, ..., 1)`` in x's dtype."""

    s: torch.Tensor
    sigma: torch.Tensor
    ds: torch.Tensor | None = None
    dsigma: torch.Tensor | None = None

    @classmethod
    def at(cls, process: Any, t: torch.Tensor, like: torch.Tensor, *, derivatives: bool = False) -> Coefficients:
        s, sigma = process.scale_std(t)
        ds = dsigma = None
        if derivatives:
            ds, dsigma = (expand_like(c, like) for c in process.scale_std_derivative(t))
        return cls(expand_like(s, like), expand_like(sigma, like), ds, dsigma)

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Coefficients:
        """Apply ``fn`` to every coefficient (e.g. to repeat or slice the batch)."""
        return Coefficients(*(None if v is None else fn(v) for v in (self.s, self.sigma, self.ds, self.dsigma)))


@dataclass(frozen=True)
class Prediction:
    """The denoiser's answer at (x_t, t): x̂₀ and ε̂, and the score and velocity derived from them."""

    x: torch.Tensor
    x0: torch.Tensor
    eps: torch.Tensor
    coef: Coefficients
    direct_score: torch.Tensor | None = None  # the network's own score, kept where σ → 0
    direct_velocity: torch.Tensor | None = None  # the network's own velocity, kept where s → 0
    nu: torch.Tensor | None = None  # a learned-variance network's interpolation weight ν (variances.py)

    @property
    def score(self) -> torch.Tensor:
        """ŝ = −ε̂ / σ."""
        return self.direct_score if self.direct_score is not None else -self.eps / self.coef.sigma

    @property
    def velocity(self) -> torch.Tensor:
        """u = ṡ x̂₀ + σ̇ ε̂ (continuous time only)."""
        if self.direct_velocity is not None:
            return self.direct_velocity
        if self.coef.ds is None:
            raise ValueError("a velocity needs a continuous-time process (ṡ and σ̇); a discrete schedule has none")
        return self.coef.ds * self.x0 + self.coef.dsigma * self.eps

    def rows(self, rows: slice) -> Prediction:
        """The prediction for a slice of the batch."""

        def take(v):
            return None if v is None else v[rows]

        return Prediction(self.x[rows], self.x0[rows], self.eps[rows], self.coef.map(take),
                          take(self.direct_score), take(self.direct_velocity), take(self.nu))

    def combine(self, other: Prediction, weight: float) -> Prediction:
        """(1 + w)·self − w·other, field by field: classifier-free guidance (Ho & Salimans 2022, Eq. 6).

        A learned variance is not extrapolated: the guided step keeps self's (the conditional) ν, as GLIDE does.
        """

        def mix(a, b):
            return None if a is None or b is None else (1.0 + weight) * a - weight * b

        return Prediction(self.x, mix(self.x0, other.x0), mix(self.eps, other.eps), self.coef,
                          mix(self.direct_score, other.direct_score), mix(self.direct_velocity, other.direct_velocity),
                          self.nu)

    def clipped(self, clip: Clip) -> Prediction:
        """x̂₀ ← clip(x̂₀), and ε̂ recomputed so that x_t = s x̂₀ + σ ε̂ still holds."""
        x0 = clip(self.x0)
        eps = _eps_from_x0(self.x, x0, self.coef)
        return Prediction(self.x, x0, eps, self.coef, nu=self.nu)


def _eps_from_x0(x: torch.Tensor, x0: torch.Tensor, c: Coefficients) -> torch.Tensor:
    # Where σ = 0 the noise is not identifiable and E[ε | x_t] = E[ε] = 0.
    return torch.where(c.sigma > 0, (x - c.s * x0) / c.sigma.clamp_min(torch.finfo(x.dtype).tiny), 0.0)


def prediction_from_output(predicts: str, output: torch.Tensor, x: torch.Tensor, c: Coefficients) -> Prediction:
    """Convert a network output r of the given parameterization into a :class:`Prediction` (module table)."""
    if predicts == "eps":
        return Prediction(x, (x - c.sigma * output) / c.s, output, c)
    if predicts == "x0":
        return Prediction(x, output, _eps_from_x0(x, output, c), c)
    if predicts == "v":
        norm = c.s**2 + c.sigma**2
        return Prediction(x, (c.s * x - c.sigma * output) / norm, (c.sigma * x + c.s * output) / norm, c)
    if predicts == "score":
        return Prediction(x, (x + c.sigma**2 * output) / c.s, -c.sigma * output, c, direct_score=output)
    if predicts == "velocity":
        det = c.s * c.dsigma - c.sigma * c.ds
        return Prediction(x, (c.dsigma * x - c.sigma * output) / det, (c.s * output - c.ds * x) / det, c,
                          direct_velocity=output)
    raise ValueError(f"unknown parameterization {predicts!r}; choose one of: {', '.join(PARAMETERIZATIONS)}")


def training_target(predicts: str, x0: torch.Tensor, eps: torch.Tensor, c: Coefficients) -> torch.Tensor:
    """The regression target of a network that predicts ``predicts``, from the true (x_0, ε)."""
    check_choice("parameterization", predicts, PARAMETERIZATIONS)
    if predicts == "eps":
        return eps
    if predicts == "x0":
        return x0
    if predicts == "v":
        return c.s * eps - c.sigma * x0
    if predicts == "score":
        return -eps / c.sigma
    return c.ds * x0 + c.dsigma * eps


class DenoiserBase:
    """What samplers use: ``process`` and ``predict(x, t)``; the four accessors are derived from it."""

    process: Any

    def predict(self, x: torch.Tensor, t: int | float | torch.Tensor) -> Prediction:
        raise NotImplementedError

    def x0(self, x: torch.Tensor, t: int | float | torch.Tensor) -> torch.Tensor:
        """x̂₀ at (x_t, t), shaped like x."""
        return self.predict(x, t).x0

    def eps(self, x: torch.Tensor, t: int | float | torch.Tensor) -> torch.Tensor:
        """ε̂ at (x_t, t), shaped like x."""
        return self.predict(x, t).eps

    def score(self, x: torch.Tensor, t: int | float | torch.Tensor) -> torch.Tensor:
        """ŝ ≈ ∇ log p_t(x) at (x_t, t), shaped like x."""
        return self.predict(x, t).score

    def velocity(self, x: torch.Tensor, t: int | float | torch.Tensor) -> torch.Tensor:
        """dx/dt of the probability-flow ODE at (x_t, t) (continuous time), shaped like x."""
        return self.predict(x, t).velocity


def check_denoiser(denoiser: object) -> DenoiserBase:
    """Samplers take a :class:`Denoiser` (or a classifier-guided one); anything else gets a hint."""
    if not isinstance(denoiser, DenoiserBase):
        raise TypeError(f"samplers take a dl.Denoiser, got {type(denoiser).__name__}; wrap the network once: "
                        f"dl.Denoiser(net, schedule, predicts='eps')")
    return denoiser


@dataclass(frozen=True, eq=False)
class Denoiser(DenoiserBase):
    """A network with its noise process, parameterization, labels, guidance and x̂₀ clip.

    Args:
        net: ``(x, t[, y]) -> tensor shaped like x``. It is called with the process's own time
            (long steps for a schedule) times ``time_scale``, and with labels ``y`` of shape ``(B,)``
            when it is class-conditional (``net.num_classes`` = K set; label K is the null class).
            A network with ``net.learns_variance = True`` returns twice x's channels (dim 1): the
            prediction, then r with ν = (r + 1)/2, the weight of its reverse variance (:mod:`~diffusion_lab.variances`).
        process: the noise process the network was trained on (schedule, SDE, path, noise levels).
        predicts: what the network outputs: ``eps``, ``x0``, ``v``, ``score`` or ``velocity``.
        labels: the requested classes ``(B,)`` (or one int) for a class-conditional net; None asks
            for the null class, i.e. unconditional samples.
        guidance: classifier-free guidance weight w ≥ 0 (0: plain conditional sampling).
        clip: None, a bound b (x̂₀ clipped to [−b, b], the data range), a pair (low, high), or a
            threshold function such as :func:`~diffusion_lab.dynamic_threshold`.
        time_scale: the network sees ``time_scale · t`` (e.g. 1000 for continuous times fed to an
            embedding built for steps 0..1000).

    Change one field with :meth:`replace`, e.g. ``denoiser.replace(labels=y, guidance=2.0)``. The
    denoiser holds no state and does not change the network's mode (train/eval) or gradients.
    """

    net: Callable[..., torch.Tensor]
    process: Any
    predicts: str = "eps"
    labels: torch.Tensor | int | None = None
    guidance: float = 0.0
    clip: object = None
    time_scale: float = 1.0

    def __post_init__(self) -> None:
        if not callable(self.net):
            raise TypeError(f"net must be a callable network (x, t[, y]) -> tensor, got {type(self.net).__name__}")
        for method in ("scale_std", "check_time", "time_grid"):
            if not hasattr(self.process, method):
                raise TypeError(f"process must be a noise process (a NoiseSchedule, SDE, GaussianPath or "
                                f"NoiseLevels), got {type(self.process).__name__}")
        check_choice("parameterization", self.predicts, PARAMETERIZATIONS)
        if self.predicts == "velocity" and self.process.discrete:
            raise ValueError("a velocity network needs a continuous-time process (a GaussianPath or an SDE)")
        object.__setattr__(self, "guidance", check_float("guidance", self.guidance, 0.0))
        object.__setattr__(self, "time_scale", check_float("time_scale", self.time_scale, 0.0, low_open=True))
        if (self.labels is not None or self.guidance > 0) and self.num_classes is None:
            raise ValueError("labels and guidance need a class-conditional network (net.num_classes is None)")
        make_clip(self.clip)  # validates

    @property
    def num_classes(self) -> int | None:
        """K for a class-conditional network (labels 0..K−1, K the null class), else None."""
        return getattr(self.net, "num_classes", None)

    @property
    def learns_variance(self) -> bool:
        """Whether the network also outputs the weight ν of its reverse variance (Nichol & Dhariwal 2021)."""
        return bool(getattr(self.net, "learns_variance", False))

    def replace(self, **changes: Any) -> Denoiser:
        """A copy with some fields changed: ``denoiser.replace(labels=y, guidance=2.0, clip=1.0)``."""
        return dataclasses.replace(self, **changes)

    # --- Network calls ---------------------------------------------------------------------------

    def network_output(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The network's output r shaped like x, and ν (None unless it learns its variance), at validated
        times t ``(B,)`` for labels ``(B,)`` (None: none/null). One network call."""
        t_net = t if self.process.discrete else t * self.time_scale
        if labels is None and self.num_classes is not None:
            labels = torch.full((x.shape[0],), self.num_classes, dtype=torch.long, device=x.device)  # null class
        out = self.net(x, t_net) if labels is None else self.net(x, t_net, labels)
        if not self.learns_variance:
            if out.shape != x.shape:
                raise ValueError(f"the network must return a tensor shaped like x, {tuple(x.shape)}, "
                                 f"got {tuple(out.shape)}")
            return out.to(x.dtype), None
        doubled = (x.shape[0], 2 * x.shape[1], *x.shape[2:])
        if out.shape != doubled:
            raise ValueError(f"a network with learns_variance must return twice x's channels, {doubled}, "
                             f"got {tuple(out.shape)}")
        out, variance_output = out.to(x.dtype).chunk(2, dim=1)
        # ν = (r + 1)/2 maps the network's natural range [−1, 1] onto [0, 1] (Nichol & Dhariwal's code).
        return out, (variance_output + 1.0) / 2.0

    def raw(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The network's prediction r shaped like x (without ν) at validated times t ``(B,)``."""
        return self.network_output(x, t, labels)[0]

    def conditional(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None,
                    c: Coefficients) -> Prediction:
        """The prediction for given labels, no guidance: one network call, converted."""
        out, nu = self.network_output(x, t, labels)
        return dataclasses.replace(prediction_from_output(self.predicts, out, x, c), nu=nu)

    def predict(self, x: torch.Tensor, t: int | float | torch.Tensor) -> Prediction:
        """x̂₀, ε̂ (and score, velocity) at (x_t, t), with this denoiser's labels, guidance and clip."""
        check_tensor("x", x, floating=True, ndim_min=2)
        t = self.process.check_time(t, x)
        c = Coefficients.at(self.process, t, x, derivatives=not self.process.discrete)
        labels = None
        if self.labels is not None:
            labels = check_labels("labels", self.labels, x.shape[0], self.num_classes).to(x.device)
        if labels is None or self.guidance == 0.0:
            prediction = self.conditional(x, t, labels, c)
        else:
            # One batched call for both predictions: (2B, ...).
            null = torch.full_like(labels, self.num_classes)
            both = self.conditional(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, null]),
                                    c.map(lambda v: torch.cat([v, v])))
            cond, uncond = both.rows(slice(0, x.shape[0])), both.rows(slice(x.shape[0], None))
            # Classifier-free guidance (Ho & Salimans 2022), Eq. 6.
            prediction = cond.combine(uncond, self.guidance)
        clip = make_clip(self.clip)
        return prediction if clip is None else prediction.clipped(clip)
