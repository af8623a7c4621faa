"""The checks of the book's programming exercises: ``check_xxx(student_fn) -> CheckResult``.

Each check calls the student's function on a few fixed random cases (float64, 2D points and small
images, edge steps such as t = 1 and t = T), compares it with the package's own implementation, and
explains a wrong answer (see :mod:`diffusion_lab.homework._engine`). The student's function takes
plain tensors and numbers, so the exercise does not depend on the rest of its chapter.

check                             chapter    the student writes
================================  =========  ============================================================
``check_noise_step``              0          one step of noise √(1 − β) x + √β ε
``check_q_sample``                1          x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε
``check_gaussian_kl``             2          KL between two diagonal Gaussians, elementwise
``check_posterior_mean``          3          μ̃_t(x_t, x_0)
``check_ddpm_step``               4          one step of DDPM's Algorithm 2
``check_langevin_step``           5          one step of Langevin dynamics
``check_reverse_drift``           6          the drift of the reverse-time SDE
``check_ode_drift``               6          the drift of the probability-flow ODE
``check_ddim_step``               7          one deterministic DDIM step
``check_cfg``                     8, 9       the classifier-free guidance combination
``check_ema_update``              9          one update of an exponential moving average
``check_dsm_target``              12         the score of q(x_t | x_0), the target of denoising score matching
``check_consistency_function``    13         c_skip(κ) y + c_out(κ) F, the consistency model's boundary form
``check_learned_variance``        14         exp(ν log β + (1 − ν) log β̃), the learned reverse variance
``check_patchify``                15         (B, C, H, W) → (B, N, P·P·C), a DiT's tokens
``check_ddim_inversion_step``     16         one step of DDIM inversion, s (x_{t'} − σ' ε̂) / s' + σ ε̂
================================  =========  ============================================================
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..elbo import gaussian_kl
from ..forward import q_posterior, q_sample
from ..schedules import NoiseSchedule, cosine_schedule, linear_schedule
from ._engine import Case, CheckResult, Mistake, Spec, Term, fmt, gen, run_check

F64 = torch.float64


def _shape_name(x: torch.Tensor) -> str:
    return "2D points" if x.ndim == 2 else "images"


# ----------------------------------------------------------------------------------------------
# Schedule-based cases: (schedule, data, t) with t a long tensor (B,) that includes 1 and T.

def _schedule_cases(seed: int, n_inputs: int) -> list[tuple[NoiseSchedule, list[torch.Tensor], torch.Tensor]]:
    g = gen(seed)
    out = []
    for schedule, shape in ((cosine_schedule(50), (6, 2)), (linear_schedule(100), (3, 1, 4, 4))):
        t = torch.randint(2, schedule.T, (shape[0],), generator=g)
        t[0], t[-1] = 1, schedule.T  # the edges, where off-by-one mistakes show
        t[1] = 2
        xs = [torch.randn(shape, generator=g, dtype=F64) for _ in range(n_inputs)]
        out.append((schedule, xs, t))
    return out


def _at(schedule: NoiseSchedule, t: torch.Tensor) -> dict[str, torch.Tensor]:
    """Schedule quantities at steps t (and t − 1), as float64 (B,) tensors."""
    def get(name: str, steps: torch.Tensor) -> torch.Tensor:
        return torch.tensor(getattr(schedule, name), dtype=F64)[steps]
    return {"ab": get("alpha_bar", t), "ab_prev": get("alpha_bar", t - 1), "a": get("alpha", t),
            "b": get("beta", t), "bt": get("beta_tilde", t)}


def _t_where(t: torch.Tensor) -> Callable[[int], str]:
    return lambda b: f"at t = {int(t[b])}"


def _sched_label(schedule: NoiseSchedule, x: torch.Tensor, t: torch.Tensor) -> str:
    return f"the {schedule.name} schedule (T = {schedule.T}), {_shape_name(x)} of shape {tuple(x.shape)}, t = {t.tolist()}"


# ----------------------------------------------------------------------------------------------
# Chapter 0: one step of noise.

def _noise_step_ref(x_prev, beta, noise):
    return math.sqrt(1 - beta) * x_prev + math.sqrt(beta) * noise


def _noise_step_cases() -> list[Case]:
    g = gen(100)
    cases = []
    for beta, shape in ((0.02, (5, 2)), (0.3, (2, 1, 4, 4)), (0.81, (4, 3))):
        x, eps = (torch.randn(shape, generator=g, dtype=F64) for _ in range(2))
        cases.append(Case({"x_prev": x, "beta": beta, "noise": eps},
                          f"beta = {beta} and x_prev of shape {tuple(shape)}", lambda b, beta=beta: f"at beta = {beta}"))
    return cases


def _beta_candidates(case: Case) -> dict[str, float]:
    b = case.args["beta"]
    return {"√(1 − β)": math.sqrt(1 - b), "1 − β": 1 - b, "√β": math.sqrt(b), "β": b, "1": 1.0,
            "1 + β": 1 + b, "√(1 + β)": math.sqrt(1 + b)}


NOISE_STEP = Spec(
    name="noise_step",
    signature="noise_step(x_prev, beta, noise) -> x",
    reference=_noise_step_ref,
    cases=_noise_step_cases,
    terms=(Term("x_prev", "the signal term", "√(1 − β)", _beta_candidates),
           Term("noise", "the noise term", "√β", _beta_candidates)),
    mistakes=(Mistake(lambda x, b, e: (1 - b) * x + b * e,
                      "you scaled by 1 − β and β, which are the *variances*; multiply by their square roots, "
                      "√(1 − β) and √β, so that a unit-variance input keeps unit variance."),),
    output_like="x_prev",
    extra={"covers": "points and images, small and large β"},
)


def check_noise_step(fn: Callable) -> CheckResult:
    """Check ``fn(x_prev, beta, noise) -> √(1 − β) x_prev + √β noise`` (β a float)."""
    return run_check(NOISE_STEP, fn)


# ----------------------------------------------------------------------------------------------
# Chapter 1: the closed form q(x_t | x_0).

def _q_sample_ref(schedule, x0, t, noise):
    return q_sample(schedule, x0, t, noise=noise)


def _q_sample_cases() -> list[Case]:
    return [Case({"schedule": s, "x0": x0, "t": t, "noise": eps}, _sched_label(s, x0, t), _t_where(t))
            for s, (x0, eps), t in _schedule_cases(101, 2)]


def _forward_candidates(case: Case) -> dict[str, torch.Tensor]:
    q = _at(case.args["schedule"], case.args["t"])
    return {"√ᾱ_t": q["ab"].sqrt(), "ᾱ_t": q["ab"], "√(1 − ᾱ_t)": (1 - q["ab"]).sqrt(), "1 − ᾱ_t": 1 - q["ab"],
            "√α_t (one step's coefficient, not the closed form's)": q["a"].sqrt(), "α_t": q["a"],
            "√β_t (one step's coefficient, not the closed form's)": q["b"].sqrt(), "β_t": q["b"],
            "√ᾱ_{t−1} (one step off: alpha_bar[t - 1])": q["ab_prev"].sqrt(),
            "√(1 − ᾱ_{t−1}) (one step off: alpha_bar[t - 1])": (1 - q["ab_prev"]).sqrt(),
            "1": torch.ones_like(q["ab"])}


Q_SAMPLE = Spec(
    name="q_sample",
    signature="q_sample(schedule, x0, t, noise) -> x_t",
    reference=_q_sample_ref,
    cases=_q_sample_cases,
    terms=(Term("x0", "the signal term", "√ᾱ_t", _forward_candidates),
           Term("noise", "the noise term", "√(1 − ᾱ_t)", _forward_candidates)),
    output_like="x0",
    broadcast_hint="reshape the (B,) coefficients to (B, 1, ..., 1), e.g. with schedule.gather('alpha_bar', t, x0)",
    extra={"covers": "2D points and images, t = 1 and t = T included"},
)


def check_q_sample(fn: Callable) -> CheckResult:
    """Check ``fn(schedule, x0, t, noise) -> √ᾱ_t x0 + √(1 − ᾱ_t) noise`` with t a long tensor ``(B,)``."""
    return run_check(Q_SAMPLE, fn)


# ----------------------------------------------------------------------------------------------
# Chapter 2: KL divergence between Gaussians.

def _kl_cases() -> list[Case]:
    g = gen(102)
    cases = []
    for shape in ((5, 2), (2, 1, 3, 3)):
        m1, m2 = (torch.randn(shape, generator=g, dtype=F64) for _ in range(2))
        v1, v2 = (torch.rand(shape, generator=g, dtype=F64) * 1.5 + 0.2 for _ in range(2))
        cases.append(Case({"mean1": m1, "var1": v1, "mean2": m2, "var2": v2}, f"arguments of shape {shape}"))
    return cases


GAUSSIAN_KL = Spec(
    name="gaussian_kl",
    signature="gaussian_kl(mean1, var1, mean2, var2) -> KL(N(mean1, var1) ‖ N(mean2, var2)), elementwise",
    reference=gaussian_kl,
    cases=_kl_cases,
    mistakes=(
        Mistake(lambda m1, v1, m2, v2: gaussian_kl(m2, v2, m1, v1),
                "you computed KL(N(mean2, var2) ‖ N(mean1, var1)): the KL divergence is not symmetric. The "
                "expectation is under the *first* distribution, so var2 divides (var1 + (mean1 − mean2)²)."),
        Mistake(lambda m1, v1, m2, v2: gaussian_kl(m1, v1**2, m2, v2**2),
                "you treated var1 and var2 as standard deviations (you squared them); they are variances already."),
        Mistake(lambda m1, v1, m2, v2: gaussian_kl(m1, v1.sqrt(), m2, v2.sqrt()),
                "you took square roots of var1 and var2 where the formula uses the variances themselves."),
        Mistake(lambda m1, v1, m2, v2: 2 * gaussian_kl(m1, v1, m2, v2),
                "your result is exactly twice the KL divergence: the factor ½ in front is missing."),
        Mistake(lambda m1, v1, m2, v2: gaussian_kl(m1, v1, m2, v2) + 0.5,
                "your result is ½ too large: the − 1 inside the bracket (the KL of two equal Gaussians is 0) is missing."),
        Mistake(lambda m1, v1, m2, v2: gaussian_kl(m1, v1, m2, v2) - torch.log(v2 / v1),
                "the log term has the wrong sign: it is + ½ log(var2 / var1), the log of the *second* variance "
                "over the first."),
        Mistake(lambda m1, v1, m2, v2: 0.5 * (torch.log(v2 / v1) + (v1 + (m1 - m2) ** 2) / v1 - 1),
                "you divided by var1; the quadratic term is (var1 + (mean1 − mean2)²) / var2."),
    ),
    output_like="mean1",
    extra={"covers": "points and images"},
)


def check_gaussian_kl(fn: Callable) -> CheckResult:
    """Check ``fn(mean1, var1, mean2, var2)``: the elementwise KL(N(mean1, var1) ‖ N(mean2, var2))."""
    return run_check(GAUSSIAN_KL, fn)


# ----------------------------------------------------------------------------------------------
# Chapter 3: the posterior mean.

def _posterior_ref(schedule, x_t, x0, t):
    return q_posterior(schedule, x_t, x0, t)[0]


def _posterior_cases() -> list[Case]:
    return [Case({"schedule": s, "x_t": x_t, "x0": x0, "t": t}, _sched_label(s, x0, t), _t_where(t))
            for s, (x_t, x0), t in _schedule_cases(103, 2)]


def _posterior_coefficients(case: Case) -> dict[str, torch.Tensor]:
    q = _at(case.args["schedule"], case.args["t"])
    ab, abp, a, b = q["ab"], q["ab_prev"], q["a"], q["b"]
    return {"x0": abp.sqrt() * b / (1 - ab), "x_t": a.sqrt() * (1 - abp) / (1 - ab),
            "x0 no sqrt": abp * b / (1 - ab), "x0 with ab_t": ab.sqrt() * b / (1 - ab),
            "x0 sqrt denominator": abp.sqrt() * b / (1 - ab).sqrt(),
            "x_t no sqrt": a * (1 - abp) / (1 - ab), "x_t with ab_t": a.sqrt() * (1 - ab) / (1 - ab)}


X0_COEF, XT_COEF = "√ᾱ_{t−1} β_t / (1 − ᾱ_t)", "√α_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t)"


def _posterior_x0_candidates(case: Case) -> dict[str, torch.Tensor]:
    c = _posterior_coefficients(case)
    return {X0_COEF: c["x0"], f"{XT_COEF}, the coefficient of x_t (the two coefficients are swapped)": c["x_t"],
            "ᾱ_{t−1} β_t / (1 − ᾱ_t) (the square root of ᾱ_{t−1} is missing)": c["x0 no sqrt"],
            "√ᾱ_t β_t / (1 − ᾱ_t) (ᾱ_t where ᾱ_{t−1} belongs)": c["x0 with ab_t"],
            "√ᾱ_{t−1} β_t / √(1 − ᾱ_t) (a square root too many in the denominator)": c["x0 sqrt denominator"]}


def _posterior_xt_candidates(case: Case) -> dict[str, torch.Tensor]:
    c = _posterior_coefficients(case)
    return {XT_COEF: c["x_t"], f"{X0_COEF}, the coefficient of x_0 (the two coefficients are swapped)": c["x0"],
            "α_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t) (the square root of α_t is missing)": c["x_t no sqrt"],
            "√α_t (1 − ᾱ_t) / (1 − ᾱ_t) = √α_t (ᾱ_t where ᾱ_{t−1} belongs)": c["x_t with ab_t"]}


POSTERIOR_MEAN = Spec(
    name="posterior_mean",
    signature="posterior_mean(schedule, x_t, x0, t) -> mu_tilde",
    reference=_posterior_ref,
    cases=_posterior_cases,
    terms=(Term("x0", "the x_0 term", X0_COEF, _posterior_x0_candidates),
           Term("x_t", "the x_t term", XT_COEF, _posterior_xt_candidates)),
    output_like="x_t",
    broadcast_hint="reshape the (B,) coefficients to (B, 1, ..., 1), e.g. with schedule.gather('alpha_bar', t, x_t)",
    extra={"covers": "2D points and images, t = 1 and t = T included"},
)


def check_posterior_mean(fn: Callable) -> CheckResult:
    """Check ``fn(schedule, x_t, x0, t) -> μ̃_t(x_t, x0)`` (Ho et al. 2020, Eq. 7), t a long tensor ``(B,)``."""
    return run_check(POSTERIOR_MEAN, fn)


# ----------------------------------------------------------------------------------------------
# Chapter 4: one step of Algorithm 2 (sigma_t^2 = beta_t).

def _ddpm_step_ref(schedule, x_t, t, eps_hat, z):
    q = {k: v.reshape(-1, *[1] * (x_t.ndim - 1)) for k, v in _at(schedule, t).items()}
    sigma = torch.where(t.reshape(q["b"].shape) > 1, q["b"].sqrt(), torch.zeros_like(q["b"]))
    return (x_t - q["b"] / (1 - q["ab"]).sqrt() * eps_hat) / q["a"].sqrt() + sigma * z


def _ddpm_step_cases() -> list[Case]:
    return [Case({"schedule": s, "x_t": x, "t": t, "eps_hat": e, "z": z}, _sched_label(s, x, t), _t_where(t))
            for s, (x, e, z), t in _schedule_cases(104, 3)]


def _ddpm_candidates(case: Case) -> dict[str, torch.Tensor]:
    t = case.args["t"]
    q = _at(case.args["schedule"], t)
    ab, a, b, bt = q["ab"], q["a"], q["b"], q["bt"]
    not_last = (t > 1).to(F64)
    return {
        "1 / √α_t": 1 / a.sqrt(), "√α_t": a.sqrt(), "1 / α_t": 1 / a, "1": torch.ones_like(a),
        "− β_t / (√α_t √(1 − ᾱ_t))": -b / (a.sqrt() * (1 - ab).sqrt()),
        "+ β_t / (√α_t √(1 − ᾱ_t)) (the sign is wrong: the predicted noise is subtracted)": b / (a.sqrt() * (1 - ab).sqrt()),
        "− β_t / (√α_t (1 − ᾱ_t)) (the square root of 1 − ᾱ_t is missing)": -b / (a.sqrt() * (1 - ab)),
        "− β_t / √(1 − ᾱ_t) (the division by √α_t must apply to the ε̂ term too)": -b / (1 - ab).sqrt(),
        "− √(1 − ᾱ_t) / √α_t": -(1 - ab).sqrt() / a.sqrt(),
        "σ_t = √β_t, and 0 at t = 1": b.sqrt() * not_last,
        "√β_t at every step (but at t = 1 Algorithm 2 adds no noise: z = 0)": b.sqrt(),
        "β_t (the variance; the noise is scaled by the standard deviation √β_t)": b * not_last,
        "√β̃_t (that is the other choice σ_t² = β̃_t; this exercise uses σ_t² = β_t)": bt.sqrt() * not_last,
    }


DDPM_STEP = Spec(
    name="ddpm_step",
    signature="ddpm_step(schedule, x_t, t, eps_hat, z) -> x_{t-1}",
    reference=_ddpm_step_ref,
    cases=_ddpm_step_cases,
    terms=(Term("x_t", "the x_t term", "1 / √α_t", _ddpm_candidates),
           Term("eps_hat", "the ε̂ term", "− β_t / (√α_t √(1 − ᾱ_t))", _ddpm_candidates),
           Term("z", "the noise term", "σ_t = √β_t, and 0 at t = 1", _ddpm_candidates)),
    output_like="x_t",
    broadcast_hint="reshape the (B,) coefficients to (B, 1, ..., 1), e.g. with schedule.gather('beta', t, x_t)",
    extra={"covers": "2D points and images, t = 1 and t = T included"},
)


def check_ddpm_step(fn: Callable) -> CheckResult:
    """Check one step of DDPM's Algorithm 2 with σ_t² = β_t: ``fn(schedule, x_t, t, eps_hat, z) -> x_{t−1}``."""
    return run_check(DDPM_STEP, fn)


# ----------------------------------------------------------------------------------------------
# Chapter 5: one step of Langevin dynamics.

def _langevin_ref(x, score, step_size, z):
    return x + 0.5 * step_size * score + math.sqrt(step_size) * z


def _langevin_cases() -> list[Case]:
    g = gen(105)
    cases = []
    for step, shape in ((0.1, (6, 2)), (0.02, (2, 1, 4, 4)), (0.3, (4, 2))):
        x, s, z = (torch.randn(shape, generator=g, dtype=F64) for _ in range(3))
        cases.append(Case({"x": x, "score": s, "step_size": step, "z": z}, f"step_size = {step}, x of shape {shape}",
                          lambda b, step=step: f"with step_size = {step}"))
    return cases


def _langevin_x_candidates(case: Case) -> dict[str, float]:
    e = case.args["step_size"]
    return {"1": 1.0, "1 + ε / 2": 1 + e / 2, "ε / 2": e / 2}


def _langevin_score_candidates(case: Case) -> dict[str, float]:
    e = case.args["step_size"]
    return {"ε / 2": e / 2, "ε (the factor ½ is missing)": e, "2ε": 2 * e, "√ε": math.sqrt(e),
            "− ε / 2 (the sign is wrong: the step goes *up* the log-density)": -e / 2}


def _langevin_z_candidates(case: Case) -> dict[str, float]:
    e = case.args["step_size"]
    return {"√ε": math.sqrt(e), "ε (the variance; the noise is scaled by the standard deviation √ε)": e,
            "√(2ε) (that goes with a score step of ε, not ε / 2)": math.sqrt(2 * e), "ε / 2": e / 2}


LANGEVIN_STEP = Spec(
    name="langevin_step",
    signature="langevin_step(x, score, step_size, z) -> x_next",
    reference=_langevin_ref,
    cases=_langevin_cases,
    terms=(Term("x", "the x term", "1", _langevin_x_candidates),
           Term("score", "the score term", "ε / 2", _langevin_score_candidates),
           Term("z", "the noise term", "√ε", _langevin_z_candidates)),
    output_like="x",
    extra={"covers": "points and images, three step sizes"},
)


def check_langevin_step(fn: Callable) -> CheckResult:
    """Check ``fn(x, score, step_size, z) -> x + (ε/2) score + √ε z`` (Song & Ermon 2019, Eq. 4)."""
    return run_check(LANGEVIN_STEP, fn)


# ----------------------------------------------------------------------------------------------
# Chapter 6: reverse-time SDE and probability-flow ODE drifts.

def _drift_cases(seed: int) -> list[Case]:
    g = gen(seed)
    cases = []
    for shape in ((6, 2), (3, 1, 4, 4)):
        f, s = (torch.randn(shape, generator=g, dtype=F64) for _ in range(2))
        g_t = torch.rand(shape[0], generator=g, dtype=F64) * 3 + 0.5  # (B,)
        cases.append(Case({"f": f, "g": g_t, "score": s}, f"f and score of shape {shape}, g of shape ({shape[0]},)",
                          lambda b, g_t=g_t: f"where g = {fmt(g_t[b])}"))
    return cases


def _drift_candidates(case: Case) -> dict[str, torch.Tensor]:
    g = case.args["g"]
    return {"1": torch.ones_like(g), "− g²": -g**2, "− ½ g²": -0.5 * g**2,
            "+ g² (the sign is wrong: the reverse drift subtracts g² · score)": g**2,
            "+ ½ g² (the sign is wrong: the ODE drift subtracts ½ g² · score)": 0.5 * g**2,
            "− g (g is the diffusion coefficient; the drift needs its square, g²)": -g,
            "− ½ g (g is the diffusion coefficient; the drift needs its square, ½ g²)": -0.5 * g,
            "− 2 g²": -2 * g**2}


REVERSE_DRIFT = Spec(
    name="reverse_drift",
    signature="reverse_drift(f, g, score) -> f - g² · score",
    reference=lambda f, g, s: f - (g**2).reshape(-1, *[1] * (f.ndim - 1)) * s,
    cases=lambda: _drift_cases(106),
    mistakes=(Mistake(lambda f, g, s: f - 0.5 * (g**2).reshape(-1, *[1] * (f.ndim - 1)) * s,
                      "you returned the drift of the probability-flow ODE, f − ½ g² · score. The reverse-time SDE "
                      "injects noise as well, and its drift needs the full g² · score (Anderson 1982)."),),
    terms=(Term("f", "the f term", "1", _drift_candidates), Term("score", "the score term", "− g²", _drift_candidates)),
    output_like="f",
    broadcast_hint="reshape g from (B,) to (B, 1, ..., 1) with dl.expand_like(g, f)",
    extra={"covers": "points and images"},
)

ODE_DRIFT = Spec(
    name="ode_drift",
    signature="ode_drift(f, g, score) -> f - ½ g² · score",
    reference=lambda f, g, s: f - 0.5 * (g**2).reshape(-1, *[1] * (f.ndim - 1)) * s,
    cases=lambda: _drift_cases(107),
    mistakes=(Mistake(lambda f, g, s: f - (g**2).reshape(-1, *[1] * (f.ndim - 1)) * s,
                      "you returned the drift of the reverse-time SDE, f − g² · score. The probability-flow ODE "
                      "injects no noise, and only half of the score term remains: f − ½ g² · score."),),
    terms=(Term("f", "the f term", "1", _drift_candidates), Term("score", "the score term", "− ½ g²", _drift_candidates)),
    output_like="f",
    broadcast_hint="reshape g from (B,) to (B, 1, ..., 1) with dl.expand_like(g, f)",
    extra={"covers": "points and images"},
)


def check_reverse_drift(fn: Callable) -> CheckResult:
    """Check ``fn(f, g, score) -> f − g² score``, the reverse-time SDE drift; g has shape ``(B,)``."""
    return run_check(REVERSE_DRIFT, fn)


def check_ode_drift(fn: Callable) -> CheckResult:
    """Check ``fn(f, g, score) -> f − ½ g² score``, the probability-flow ODE drift; g has shape ``(B,)``."""
    return run_check(ODE_DRIFT, fn)


# ----------------------------------------------------------------------------------------------
# Chapter 7: one deterministic DDIM step (eta = 0).

def _ddim_ref(x_t, eps_hat, alpha_bar, alpha_bar_prev):
    x0_hat = (x_t - math.sqrt(1 - alpha_bar) * eps_hat) / math.sqrt(alpha_bar)
    return math.sqrt(alpha_bar_prev) * x0_hat + math.sqrt(1 - alpha_bar_prev) * eps_hat


def _ddim_cases() -> list[Case]:
    g = gen(108)
    cases = []
    for ab, abp, shape in ((0.3, 0.6, (6, 2)), (0.05, 0.4, (2, 1, 4, 4)), (0.8, 1.0, (4, 2))):
        x, e = (torch.randn(shape, generator=g, dtype=F64) for _ in range(2))
        cases.append(Case({"x_t": x, "eps_hat": e, "alpha_bar": ab, "alpha_bar_prev": abp},
                          f"alpha_bar = {ab}, alpha_bar_prev = {abp}, x_t of shape {shape}",
                          lambda b, ab=ab, abp=abp: f"with ᾱ = {ab}, ᾱ' = {abp}"))
    return cases


def _ddim_candidates(case: Case) -> dict[str, float]:
    ab, abp = case.args["alpha_bar"], case.args["alpha_bar_prev"]
    return {"√(ᾱ' / ᾱ)": math.sqrt(abp / ab), "√(ᾱ / ᾱ') (ᾱ and ᾱ' are swapped)": math.sqrt(ab / abp),
            "1 / √ᾱ (that is x̂₀'s coefficient: the step must re-noise x̂₀ to the level ᾱ')": 1 / math.sqrt(ab),
            "ᾱ' / ᾱ (square roots missing)": abp / ab,
            "√(1 − ᾱ') − √(ᾱ' (1 − ᾱ) / ᾱ)": math.sqrt(1 - abp) - math.sqrt(abp * (1 - ab) / ab),
            "− √(ᾱ' (1 − ᾱ) / ᾱ) (the direction term √(1 − ᾱ') ε̂ is missing)": -math.sqrt(abp * (1 - ab) / ab),
            "− √(1 − ᾱ) / √ᾱ (that is x̂₀'s coefficient)": -math.sqrt(1 - ab) / math.sqrt(ab)}


DDIM_STEP = Spec(
    name="ddim_step",
    signature="ddim_step(x_t, eps_hat, alpha_bar, alpha_bar_prev) -> x_prev",
    reference=_ddim_ref,
    cases=_ddim_cases,
    mistakes=(Mistake(lambda x, e, ab, abp: (x - math.sqrt(1 - ab) * e) / math.sqrt(ab),
                      "you returned x̂₀, the predicted clean data. One DDIM step goes to the next noise level: "
                      "√ᾱ' x̂₀ + √(1 − ᾱ') ε̂ (Song et al. 2021, Eq. 12 with σ = 0)."),
              Mistake(lambda x, e, ab, abp: _ddim_ref(x, e, abp, ab),
                      "you swapped ᾱ and ᾱ': the step predicts x̂₀ from x_t with the *current* ᾱ, then re-noises "
                      "it to the *next* level ᾱ'."),),
    terms=(Term("x_t", "the x_t term", "√(ᾱ' / ᾱ)", _ddim_candidates),
           Term("eps_hat", "the ε̂ term", "√(1 − ᾱ') − √(ᾱ' (1 − ᾱ) / ᾱ)", _ddim_candidates)),
    output_like="x_t",
    extra={"covers": "points and images, the last step ᾱ' = 1 included"},
)


def check_ddim_step(fn: Callable) -> CheckResult:
    """Check one deterministic DDIM step ``fn(x_t, eps_hat, alpha_bar, alpha_bar_prev) -> x_{t'}`` (floats ᾱ, ᾱ')."""
    return run_check(DDIM_STEP, fn)


# ----------------------------------------------------------------------------------------------
# Chapters 8 and 9: classifier-free guidance.

def _cfg_ref(eps_cond, eps_uncond, w):
    return (1 + w) * eps_cond - w * eps_uncond


def _cfg_cases() -> list[Case]:
    g = gen(109)
    cases = []
    for w, shape in ((2.0, (5, 2)), (0.5, (2, 1, 4, 4)), (0.0, (3, 2))):
        c, u = (torch.randn(shape, generator=g, dtype=F64) for _ in range(2))
        cases.append(Case({"eps_cond": c, "eps_uncond": u, "w": w}, f"w = {w}, eps of shape {shape}",
                          lambda b, w=w: f"with w = {w}"))
    return cases


def _cfg_cond_candidates(case: Case) -> dict[str, float]:
    w = case.args["w"]
    return {"1 + w": 1 + w, "w": w, "1 − w": 1 - w, "1": 1.0, "− w": -w}


def _cfg_uncond_candidates(case: Case) -> dict[str, float]:
    w = case.args["w"]
    return {"− w": -w, "+ w (the sign is wrong: guidance moves *away* from the unconditional prediction)": w,
            "1 − w": 1 - w, "− (1 + w)": -(1 + w), "1": 1.0}


CFG = Spec(
    name="cfg",
    signature="cfg(eps_cond, eps_uncond, w) -> eps_guided",
    reference=_cfg_ref,
    cases=_cfg_cases,
    mistakes=(Mistake(lambda c, u, w: u + w * (c - u),
                      "you used the other convention, ε_u + w (ε_c − ε_u), in which w = 1 means no guidance (as in "
                      "Stable Diffusion's guidance_scale). This book follows Ho & Salimans (2022), Eq. 6: "
                      "(1 + w) ε_c − w ε_u, where w = 0 means no guidance; the two agree when their w differ by 1."),
              Mistake(lambda c, u, w: (1 + w) * u - w * c,
                      "you swapped ε_cond and ε_uncond: guidance extrapolates from the unconditional prediction "
                      "*towards and past* the conditional one, (1 + w) ε_cond − w ε_uncond."),),
    terms=(Term("eps_cond", "the conditional term", "1 + w", _cfg_cond_candidates),
           Term("eps_uncond", "the unconditional term", "− w", _cfg_uncond_candidates)),
    output_like="eps_cond",
    extra={"covers": "points and images, w = 0 included"},
)


def check_cfg(fn: Callable) -> CheckResult:
    """Check ``fn(eps_cond, eps_uncond, w) -> (1 + w) eps_cond − w eps_uncond`` (Ho & Salimans 2022, Eq. 6)."""
    return run_check(CFG, fn)


# ----------------------------------------------------------------------------------------------
# Chapter 9: exponential moving average.

def _ema_cases() -> list[Case]:
    g = gen(110)
    cases = []
    for decay, shape in ((0.9, (4, 3)), (0.999, (2, 1, 3, 3))):
        e, p = (torch.randn(shape, generator=g, dtype=F64) for _ in range(2))
        cases.append(Case({"ema": e, "param": p, "decay": decay}, f"decay = {decay}, tensors of shape {shape}",
                          lambda b, decay=decay: f"with decay = {decay}"))
    return cases


def _ema_candidates(case: Case) -> dict[str, float]:
    d = case.args["decay"]
    return {"decay": d, "1 − decay": 1 - d, "1": 1.0}


EMA_UPDATE = Spec(
    name="ema_update",
    signature="ema_update(ema, param, decay) -> new_ema",
    reference=lambda e, p, d: d * e + (1 - d) * p,
    cases=_ema_cases,
    mistakes=(Mistake(lambda e, p, d: (1 - d) * e + d * p,
                      "you swapped the weights: with decay = 0.999 the average must keep 99.9% of its old value "
                      "and take only 0.1% of the new parameters, decay · ema + (1 − decay) · param."),),
    terms=(Term("ema", "the old-average term", "decay", _ema_candidates),
           Term("param", "the new-parameter term", "1 − decay", _ema_candidates)),
    output_like="ema",
    extra={"covers": "two decays"},
)


def check_ema_update(fn: Callable) -> CheckResult:
    """Check ``fn(ema, param, decay) -> decay · ema + (1 − decay) · param`` (one EMA update, on tensors)."""
    return run_check(EMA_UPDATE, fn)


# ----------------------------------------------------------------------------------------------
# Chapter 12: the target of denoising score matching, ∇ log q(x_t | x_0) = −(x_t − s x_0) / σ².

def _dsm_target_ref(x_t, x0, s, sigma):
    return -(x_t - s.reshape(-1, *[1] * (x0.ndim - 1)) * x0) / (sigma**2).reshape(-1, *[1] * (x0.ndim - 1))


def _dsm_cases() -> list[Case]:
    g = gen(111)
    cases = []
    for shape, ve in (((6, 2), False), ((3, 1, 4, 4), False), ((5, 2), True)):
        x_t, x0 = (torch.randn(shape, generator=g, dtype=F64) for _ in range(2))
        sigma = torch.rand(shape[0], generator=g, dtype=F64) * 0.8 + 0.1  # (B,)
        s = torch.ones(shape[0], dtype=F64) if ve else (1 - sigma**2).sqrt()  # VE: s = 1; VP: s² + σ² = 1
        cases.append(Case({"x_t": x_t, "x0": x0, "s": s, "sigma": sigma},
                          f"{'VE' if ve else 'VP'} coefficients, x of shape {shape}, s and sigma of shape ({shape[0]},)",
                          lambda b, s=s, sigma=sigma: f"where s = {fmt(s[b])} and σ = {fmt(sigma[b])}"))
    return cases


def _dsm_xt_candidates(case: Case) -> dict[str, torch.Tensor]:
    sigma = case.args["sigma"]
    return {"− 1 / σ²": -1 / sigma**2,
            "− 1 / σ (σ must be squared: the score of N(m, σ² I) is −(x − m) / σ²)": -1 / sigma,
            "+ 1 / σ² (the sign is wrong: the score points from x_t back towards the mean s · x_0)": 1 / sigma**2,
            "− 1 (the division by the variance σ² is missing)": -torch.ones_like(sigma)}


def _dsm_x0_candidates(case: Case) -> dict[str, torch.Tensor]:
    s, sigma = case.args["s"], case.args["sigma"]
    return {"s / σ²": s / sigma**2,
            "1 / σ² (the mean of x_t is s · x_0, not x_0)": 1 / sigma**2,
            "s / σ (σ must be squared: the score of N(m, σ² I) is −(x − m) / σ²)": s / sigma,
            "− s / σ² (the sign is wrong: the score points from x_t back towards the mean s · x_0)": -s / sigma**2}


DSM_TARGET = Spec(
    name="dsm_target",
    signature="dsm_target(x_t, x0, s, sigma) -> -(x_t - s · x0) / sigma²",
    reference=_dsm_target_ref,
    cases=_dsm_cases,
    mistakes=(Mistake(lambda x_t, x0, s, sigma: -(x_t - s.reshape(-1, *[1] * (x0.ndim - 1)) * x0)
                      / sigma.reshape(-1, *[1] * (x0.ndim - 1)),
                      "you returned −(x_t − s · x_0) / σ = −ε, the noise with a minus sign. The score of "
                      "N(s · x_0, σ² I) divides by the variance σ², once more by σ: −ε / σ."),),
    terms=(Term("x_t", "the x_t term", "− 1 / σ²", _dsm_xt_candidates),
           Term("x0", "the x_0 term", "s / σ²", _dsm_x0_candidates)),
    output_like="x_t",
    broadcast_hint="reshape s and sigma from (B,) to (B, 1, ..., 1) with dl.expand_like(sigma, x_t)",
    extra={"covers": "points and images, VP and VE"},
)


def check_dsm_target(fn: Callable) -> CheckResult:
    """Check ``fn(x_t, x0, s, sigma) -> −(x_t − s x0) / σ²``, the score of q(x_t | x_0); s, sigma of shape ``(B,)``."""
    return run_check(DSM_TARGET, fn)


# Chapter 13: the consistency function's boundary-condition parameterisation.

def _cm_coefficients(kappa, kappa_eps, sigma_data):
    c_skip = sigma_data**2 / ((kappa - kappa_eps) ** 2 + sigma_data**2)
    c_out = sigma_data * (kappa - kappa_eps) / math.sqrt(sigma_data**2 + kappa**2)
    return c_skip, c_out


def _cm_ref(y, F, kappa, kappa_eps, sigma_data):
    c_skip, c_out = _cm_coefficients(kappa, kappa_eps, sigma_data)
    return c_skip * y + c_out * F


def _cm_cases() -> list[Case]:
    g = gen(111)
    cases = []
    for kappa, kappa_eps, sigma_data, shape in ((0.3, 0.1, 1.0, (6, 2)), (2.0, 0.002, 0.5, (2, 1, 4, 4)),
                                                (0.1, 0.1, 0.5, (4, 2)), (80.0, 0.002, 0.5, (3, 2))):
        y, f = (torch.randn(shape, generator=g, dtype=F64) for _ in range(2))
        cases.append(Case({"y": y, "F": f, "kappa": kappa, "kappa_eps": kappa_eps, "sigma_data": sigma_data},
                          f"kappa = {kappa}, kappa_eps = {kappa_eps}, sigma_data = {sigma_data}, y of shape {shape}",
                          lambda b, k=kappa, ke=kappa_eps: f"with κ = {k}, κ_ε = {ke}"))
    return cases


def _cm_candidates(case: Case) -> dict[str, float]:
    k, ke, sd = case.args["kappa"], case.args["kappa_eps"], case.args["sigma_data"]
    return {"σ_data² / ((κ − κ_ε)² + σ_data²)": sd**2 / ((k - ke) ** 2 + sd**2),
            "σ_data² / (κ² + σ_data²) (the shift by κ_ε is missing, so f(y, κ_ε) ≠ y)": sd**2 / (k**2 + sd**2),
            "σ_data (κ − κ_ε) / √(σ_data² + κ²)": sd * (k - ke) / math.sqrt(sd**2 + k**2),
            "σ_data κ / √(σ_data² + κ²) (the shift by κ_ε is missing, so f(y, κ_ε) ≠ y)": sd * k / math.sqrt(sd**2 + k**2),
            "σ_data (κ − κ_ε) / (σ_data² + κ²) (the square root is missing)": sd * (k - ke) / (sd**2 + k**2),
            "1": 1.0, "κ − κ_ε": k - ke}


CONSISTENCY_FUNCTION = Spec(
    name="consistency_function",
    signature="consistency_function(y, F, kappa, kappa_eps, sigma_data) -> f",
    reference=_cm_ref,
    cases=_cm_cases,
    mistakes=(Mistake(lambda y, f, k, ke, sd: _cm_coefficients(k, ke, sd)[1] * y + _cm_coefficients(k, ke, sd)[0] * f,
                      "you swapped c_skip and c_out: c_skip multiplies the input y (it is 1 at the boundary, where "
                      "f must return y itself) and c_out the network output F (0 at the boundary)."),),
    terms=(Term("y", "the skip term (coefficient of y)", "σ_data² / ((κ − κ_ε)² + σ_data²)", _cm_candidates),
           Term("F", "the network term (coefficient of F)", "σ_data (κ − κ_ε) / √(σ_data² + κ²)", _cm_candidates)),
    output_like="y",
    extra={"covers": "points and images, the boundary κ = κ_ε included"},
)


def check_consistency_function(fn: Callable) -> CheckResult:
    """Check ``fn(y, F, kappa, kappa_eps, sigma_data) -> c_skip(κ) y + c_out(κ) F`` (Song et al. 2023, App. C)."""
    return run_check(CONSISTENCY_FUNCTION, fn)


# Chapter 14: the learned reverse variance, ω² = exp(ν log β + (1 − ν) log β̃) (Nichol & Dhariwal 2021, Eq. 15).

def _expand(coef: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return coef.reshape(-1, *[1] * (like.ndim - 1))


def _variance_ref(nu, beta, beta_tilde):
    return torch.exp(nu * _expand(beta, nu).log() + (1 - nu) * _expand(beta_tilde, nu).log())


def _variance_cases() -> list[Case]:
    g = gen(141)
    schedule = cosine_schedule(1000)
    cases = []
    for shape in ((6, 2), (3, 1, 4, 4), (4, 2)):
        t = torch.randint(2, 1001, (shape[0],), generator=g)
        t[0] = 2  # where β and β̃ differ most
        beta = torch.tensor(schedule.beta, dtype=F64)[t]
        beta_tilde = torch.tensor(schedule.beta_tilde, dtype=F64)[t]
        nu = torch.rand(shape, generator=g, dtype=F64)
        cases.append(Case({"nu": nu, "beta": beta, "beta_tilde": beta_tilde},
                          f"nu of shape {shape}, beta and beta_tilde of shape ({shape[0]},) at steps {t.tolist()}",
                          lambda b, t=t: f"at t = {int(t[b])}"))
    return cases


LEARNED_VARIANCE = Spec(
    name="learned_variance",
    signature="learned_variance(nu, beta, beta_tilde) -> exp(nu log beta + (1 - nu) log beta_tilde)",
    reference=_variance_ref,
    cases=_variance_cases,
    mistakes=(Mistake(lambda nu, b, bt: nu * _expand(b, nu) + (1 - nu) * _expand(bt, nu),
                      "you interpolated the variances themselves, ν β + (1 − ν) β̃. Nichol & Dhariwal interpolate "
                      "their logarithms, exp(ν log β + (1 − ν) log β̃): at small t, β and β̃ differ by orders of "
                      "magnitude, and a linear mix would leave almost every ν near β."),
              Mistake(lambda nu, b, bt: torch.exp(nu * _expand(bt, nu).log() + (1 - nu) * _expand(b, nu).log()),
                      "you swapped the ends: ν = 1 must give β (the forward step's variance) and ν = 0 must give β̃, "
                      "exp(ν log β + (1 − ν) log β̃)."),),
    output_like="nu",
    broadcast_hint="reshape beta and beta_tilde from (B,) to (B, 1, ..., 1) with dl.expand_like(beta, nu)",
    extra={"covers": "points and images, t = 2 where β / β̃ is largest"},
)


def check_learned_variance(fn: Callable) -> CheckResult:
    """Check ``fn(nu, beta, beta_tilde) -> exp(ν log β + (1 − ν) log β̃)``; ν shaped like x, β and β̃ of shape ``(B,)``."""
    return run_check(LEARNED_VARIANCE, fn)


# Chapter 15: a DiT's tokens, (B, C, H, W) -> (B, N, P·P·C) (Peebles & Xie 2023; Dosovitskiy et al. 2021).

def _patchify_ref(x, patch_size):
    b, c, h, w = x.shape
    p = patch_size
    return x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1).reshape(b, (h // p) * (w // p), p * p * c)


def _patchify_channels_first(x, patch_size):  # a token ordered (channel, row, column)
    b, c, h, w = x.shape
    p = patch_size
    return x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // p) * (w // p), p * p * c)


def _patchify_column_major(x, patch_size):  # patches ordered column by column
    b, c, h, w = x.shape
    p = patch_size
    return x.reshape(b, c, h // p, p, w // p, p).permute(0, 4, 2, 3, 5, 1).reshape(b, (h // p) * (w // p), p * p * c)


def _patchify_cases() -> list[Case]:
    g = gen(151)
    cases = []
    for shape, p in (((2, 1, 8, 8), 2), ((2, 3, 4, 4), 2), ((1, 2, 6, 6), 3), ((3, 1, 4, 4), 4)):
        x = torch.randn(shape, generator=g, dtype=F64)
        cases.append(Case({"x": x, "patch_size": p}, f"x of shape {shape}, patch_size = {p}"))
    return cases


PATCHIFY = Spec(
    name="patchify",
    signature="patchify(x, patch_size) -> tokens (B, N, P·P·C)",
    reference=_patchify_ref,
    cases=_patchify_cases,
    mistakes=(Mistake(lambda x, p: x.reshape(x.shape[0], -1, p * p * x.shape[1]),
                      "you reshaped x directly: each of your tokens is a run of P·P·C consecutive numbers of the "
                      "flattened image, i.e. part of a pixel row, not a P×P square. Split H and W into "
                      "(H/P, P) and (W/P, P) first, then move the two patch indices to the front."),
              Mistake(_patchify_channels_first,
                      "your patches are right but the numbers inside a token are ordered (channel, row, column); "
                      "the package orders them (row, column, channel), as DiT's unpatchify does."),
              Mistake(_patchify_column_major,
                      "your tokens run down the columns of patches; token i·(W/P) + j must be patch (i, j), "
                      "row by row (row-major), so that the position embedding matches.")),
    extra={"covers": "one and three channels, P = 2, 3 and P = H (a single token)"},
)


def check_patchify(fn: Callable) -> CheckResult:
    """Check ``fn(x, patch_size) -> (B, N, P·P·C)`` tokens in row-major patch order, each ordered (row, column, channel)."""
    return run_check(PATCHIFY, fn)


# Chapter 16: one step of DDIM inversion, x_{t'} → x_t with ε̂ held fixed (Song et al. 2021, Sec. 5.4; Su et al. 2023).

def _inversion_ref(x_prev, eps_hat, s_prev, sigma_prev, s, sigma):
    return s * (x_prev - sigma_prev * eps_hat) / s_prev + sigma * eps_hat


def _inversion_cases() -> list[Case]:
    g = gen(161)
    cases = []
    for ab_prev, ab, shape in ((1.0, 0.9, (6, 2)), (0.6, 0.3, (2, 1, 4, 4)), (0.2, 0.01, (4, 2))):
        x, e = (torch.randn(shape, generator=g, dtype=F64) for _ in range(2))
        args = {"x_prev": x, "eps_hat": e, "s_prev": math.sqrt(ab_prev), "sigma_prev": math.sqrt(1 - ab_prev),
                "s": math.sqrt(ab), "sigma": math.sqrt(1 - ab)}
        cases.append(Case(args, f"s_prev = √{ab_prev}, sigma_prev = √{1 - ab_prev:.2g}, s = √{ab}, sigma = √{1 - ab:.2g}, "
                          f"x_prev of shape {shape}", lambda b, abp=ab_prev, ab=ab: f"from ᾱ' = {abp} up to ᾱ = {ab}"))
    return cases


def _inversion_candidates(case: Case) -> dict[str, float]:
    sp, gp, s, g = (case.args[k] for k in ("s_prev", "sigma_prev", "s", "sigma"))
    return {"s / s'": s / sp, "s' / s (the levels are swapped: inversion goes *up*, from t' to the noisier t)": sp / s,
            "1 / s' (that is x̂₀'s coefficient: the step must re-noise x̂₀ to the level t)": 1 / sp,
            "σ − s σ' / s'": g - s * gp / sp,
            "σ' − s' σ / s (the levels are swapped: inversion goes *up*, from t' to the noisier t)": gp - sp * g / s,
            "σ (the x̂₀ part, − s σ' ε̂ / s', is missing)": g,
            "− σ' / s' (that is x̂₀'s coefficient)": -gp / sp}


DDIM_INVERSION_STEP = Spec(
    name="ddim_inversion_step",
    signature="ddim_inversion_step(x_prev, eps_hat, s_prev, sigma_prev, s, sigma) -> x_t",
    reference=_inversion_ref,
    cases=_inversion_cases,
    mistakes=(Mistake(lambda x, e, sp, gp, s, g: (x - gp * e) / sp,
                      "you returned x̂₀ = (x_{t'} − σ' ε̂) / s', the predicted clean data. Inversion re-noises it to "
                      "the *noisier* level t: s x̂₀ + σ ε̂."),
              Mistake(lambda x, e, sp, gp, s, g: _inversion_ref(x, e, s, g, sp, gp),
                      "you took a DDIM step *down* (the levels are swapped): inversion predicts x̂₀ from x_{t'} with "
                      "s' and σ', then moves it up to s and σ."),),
    terms=(Term("x_prev", "the x_{t'} term", "s / s'", _inversion_candidates),
           Term("eps_hat", "the ε̂ term", "σ − s σ' / s'", _inversion_candidates)),
    output_like="x_prev",
    extra={"covers": "points and images, the first step up from the data (s' = 1, σ' = 0) included"},
)


def check_ddim_inversion_step(fn: Callable) -> CheckResult:
    """Check ``fn(x_prev, eps_hat, s_prev, sigma_prev, s, sigma) -> s (x_{t'} − σ' ε̂) / s' + σ ε̂`` (floats s, σ)."""
    return run_check(DDIM_INVERSION_STEP, fn)


#: Every check by name, with its spec (the tests plant each spec's mistakes).
SPECS = {spec.name: spec for spec in (NOISE_STEP, Q_SAMPLE, GAUSSIAN_KL, POSTERIOR_MEAN, DDPM_STEP, LANGEVIN_STEP,
                                      REVERSE_DRIFT, ODE_DRIFT, DDIM_STEP, CFG, EMA_UPDATE, DSM_TARGET,
                                      CONSISTENCY_FUNCTION, LEARNED_VARIANCE, PATCHIFY,
                                      DDIM_INVERSION_STEP)}
#: The spec of each ``check_<name>`` function: what the grader runs, in its own process, for a check cell.
CHECKS = {f"check_{name}": spec for name, spec in SPECS.items()}
