"""Append the graded programming exercises to the chapters, where they are missing (idempotent).

    python scripts/add_homework_exercises.py                      # every chapter listed below
    python scripts/add_homework_exercises.py 01_forward_process   # one chapter

Used once to add the exercises, and kept to re-apply them after a chapter is rewritten (e.g. on a
merge). Each exercise is a numbered ``{exercise}`` followed by the cells of
``diffusion_lab.homework.notebooks.programming_cells``, with an optional explanation inside the hidden
solution. Re-execute the chapters afterwards: ``python scripts/book.py execute``.
"""

import sys
from pathlib import Path

import nbformat

from diffusion_lab.homework.notebooks import programming_cells, validate

ROOT = Path(__file__).resolve().parent.parent

EX = {}

EX["00_introduction"] = [dict(
    label="intro-ex-noise-step", title="Programming: one step of noise",
    text=r"""Write `noise_step(x_prev, beta, noise)` that returns $\sqrt{1-\beta}\,\mathbf x_{\text{prev}} + \sqrt\beta\,\boldsymbol\epsilon$
for a float $\beta$ and tensors `x_prev` and `noise` of any shape (`noise` holds $\boldsymbol\epsilon$). The check
below calls your function on points and images and compares it with the formula. *Before running it,
predict:* why the square roots, rather than $1-\beta$ and $\beta$ themselves?""",
    solution='''import math


def noise_step(x_prev, beta, noise):
    """One step of the forward process: sqrt(1 - beta) * x_prev + sqrt(beta) * noise."""
    ### BEGIN SOLUTION
    return math.sqrt(1 - beta) * x_prev + math.sqrt(beta) * noise
    ### END SOLUTION''',
    check="from diffusion_lab import homework\n\nhomework.check_noise_step(noise_step)")]

EX["01_forward_process"] = [dict(
    label="forward-ex-q-sample", title="Programming: the closed form in code",
    text=r"""Write `q_sample(schedule, x0, t, noise)` returning $\sqrt{\bar\alpha_t}\,\mathbf x_0 + \sqrt{1-\bar\alpha_t}\,\boldsymbol\epsilon$,
where `t` is a long tensor of shape `(B,)` (one step per example) and `x0`, `noise` have shape `(B, ...)`:
2D points or images. `schedule.alpha_bar` is a NumPy array indexed by $t$; `schedule.gather("alpha_bar", t, x0)`
returns $\bar\alpha_t$ already shaped `(B, 1, ..., 1)` to multiply `x0`. The check compares your function
with `dl.q_sample` and tells you which term is off if it is wrong.""",
    solution='''def q_sample(schedule, x0, t, noise):
    """x_t = sqrt(alpha_bar_t) * x0 + sqrt(1 - alpha_bar_t) * noise, for t of shape (B,)."""
    ### BEGIN SOLUTION
    alpha_bar = schedule.gather("alpha_bar", t, x0)  # (B, 1, ..., 1)
    return alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * noise
    ### END SOLUTION''',
    check="from diffusion_lab import homework\n\nhomework.check_q_sample(q_sample)")]

EX["02_elbo"] = [dict(
    label="elbo-ex-gaussian-kl", title="Programming: the KL divergence of two Gaussians",
    text=r"""Every term $L_{t-1}$ of the bound is a KL divergence between Gaussians. Write
`gaussian_kl(mean1, var1, mean2, var2)` returning, elementwise,
$\mathrm{KL}\big(\mathcal N(\mu_1, \sigma_1^2)\,\|\,\mathcal N(\mu_2, \sigma_2^2)\big) = \tfrac12\big[\log(\sigma_2^2/\sigma_1^2) + (\sigma_1^2 + (\mu_1-\mu_2)^2)/\sigma_2^2 - 1\big]$,
where `var1` and `var2` are variances. The check knows the common slips (swapped arguments,
standard deviations for variances, a missing ½ or − 1).""",
    solution='''import torch


def gaussian_kl(mean1, var1, mean2, var2):
    """Elementwise KL(N(mean1, var1) || N(mean2, var2)); var1 and var2 are variances."""
    ### BEGIN SOLUTION
    return 0.5 * (torch.log(var2 / var1) + (var1 + (mean1 - mean2) ** 2) / var2 - 1)
    ### END SOLUTION''',
    check="from diffusion_lab import homework\n\nhomework.check_gaussian_kl(gaussian_kl)")]

EX["03_posterior"] = [dict(
    label="posterior-ex-mean", title="Programming: the posterior mean",
    text=r"""Write `posterior_mean(schedule, x_t, x0, t)` returning
$\tilde{\boldsymbol\mu}_t = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t}\,\mathbf x_0 + \frac{\sqrt{\alpha_t}\,(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}\,\mathbf x_t$
for `t` of shape `(B,)` (`schedule.gather(name, t, x_t)` gives $\beta_t$, $\alpha_t$, $\bar\alpha_t$ shaped to
multiply `x_t`; $\bar\alpha_{t-1}$ is `schedule.gather("alpha_bar", t - 1, x_t)`). *Predict* first: what
must your function return at $t = 1$? The check includes $t = 1$ and $t = T$.""",
    solution='''def posterior_mean(schedule, x_t, x0, t):
    """The mean of q(x_{t-1} | x_t, x_0) (Ho et al. 2020, Eq. 7), for t of shape (B,)."""
    ### BEGIN SOLUTION
    alpha_bar = schedule.gather("alpha_bar", t, x_t)
    alpha_bar_prev = schedule.gather("alpha_bar", t - 1, x_t)
    alpha, beta = schedule.gather("alpha", t, x_t), schedule.gather("beta", t, x_t)
    coef_x0 = alpha_bar_prev.sqrt() * beta / (1 - alpha_bar)
    coef_xt = alpha.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar)
    return coef_x0 * x0 + coef_xt * x_t
    ### END SOLUTION''',
    check="from diffusion_lab import homework\n\nhomework.check_posterior_mean(posterior_mean)")]

EX["04_training"] = [dict(
    label="training-ex-ddpm-step", title="Programming: one step of Algorithm 2",
    text=r"""Write `ddpm_step(schedule, x_t, t, eps_hat, z)` returning
$\mathbf x_{t-1} = \frac{1}{\sqrt{\alpha_t}}\big(\mathbf x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,\hat{\boldsymbol\epsilon}\big) + \sigma_t\,\mathbf z$
with $\sigma_t^2 = \beta_t$, for `t` of shape `(B,)`, where `eps_hat` is the network's $\hat{\boldsymbol\epsilon}$ and
`z` a standard normal draw. Mind the last step: Algorithm 2 adds no noise at $t = 1$.""",
    solution='''import torch


def ddpm_step(schedule, x_t, t, eps_hat, z):
    """One step of DDPM's Algorithm 2 with sigma_t^2 = beta_t; no noise at t = 1."""
    ### BEGIN SOLUTION
    alpha, beta = schedule.gather("alpha", t, x_t), schedule.gather("beta", t, x_t)
    alpha_bar = schedule.gather("alpha_bar", t, x_t)
    mean = (x_t - beta / (1 - alpha_bar).sqrt() * eps_hat) / alpha.sqrt()
    sigma = torch.where(t.reshape(beta.shape) > 1, beta.sqrt(), torch.zeros_like(beta))
    return mean + sigma * z
    ### END SOLUTION''',
    check="from diffusion_lab import homework\n\nhomework.check_ddpm_step(ddpm_step)")]

EX["05_score_matching"] = [dict(
    label="score-ex-langevin-step", title="Programming: one Langevin step",
    text=r"""Write `langevin_step(x, score, step_size, z)` returning
$\mathbf x + \frac{\varepsilon}{2}\,\nabla_{\mathbf x}\log p(\mathbf x) + \sqrt{\varepsilon}\,\mathbf z$, where `score` is the
score already evaluated at `x`, `step_size` is $\varepsilon$ (a float) and `z` is a standard normal draw.
The check tells you which of the three terms is off.""",
    solution='''import math


def langevin_step(x, score, step_size, z):
    """x + (eps / 2) * score + sqrt(eps) * z (Song & Ermon 2019, Eq. 4)."""
    ### BEGIN SOLUTION
    return x + 0.5 * step_size * score + math.sqrt(step_size) * z
    ### END SOLUTION''',
    check="from diffusion_lab import homework\n\nhomework.check_langevin_step(langevin_step)")]

EX["06_sde"] = [dict(
    label="sde-ex-reverse-drift", title="Programming: the drift of the reverse-time SDE",
    text=r"""Write `reverse_drift(f, g, score)` returning $\mathbf f(\mathbf x, t) - g(t)^2\,\nabla_{\mathbf x}\log p_t(\mathbf x)$,
where `f` and `score` have the data's shape `(B, ...)` and `g` holds one diffusion coefficient per
example, shape `(B,)` (so it must be reshaped before it multiplies `score`; `dl.expand_like(g, f)` does it).""",
    solution='''import diffusion_lab as dl


def reverse_drift(f, g, score):
    """The drift of the reverse-time SDE, f - g^2 * score, with g of shape (B,)."""
    ### BEGIN SOLUTION
    return f - dl.expand_like(g, f) ** 2 * score
    ### END SOLUTION''',
    check="from diffusion_lab import homework\n\nhomework.check_reverse_drift(reverse_drift)"),
    dict(
    label="sde-ex-ode-drift", title="Programming: the drift of the probability-flow ODE",
    text=r"""Now write `ode_drift(f, g, score)`, the drift of the probability-flow ODE with the same arguments.
*Predict* first how it differs from `reverse_drift`, and why.""",
    solution='''import diffusion_lab as dl


def ode_drift(f, g, score):
    """The drift of the probability-flow ODE, f - g^2 / 2 * score, with g of shape (B,)."""
    ### BEGIN SOLUTION
    return f - 0.5 * dl.expand_like(g, f) ** 2 * score
    ### END SOLUTION''',
    check="from diffusion_lab import homework\n\nhomework.check_ode_drift(ode_drift)")]

EX["07_ddim"] = [dict(
    label="ddim-ex-step", title="Programming: one deterministic DDIM step",
    text=r"""Write `ddim_update(x_t, eps_hat, alpha_bar, alpha_bar_prev)` returning the η = 0 update of this chapter,
$\mathbf x_{t'} = \sqrt{\bar\alpha_{t'}}\,\hat{\mathbf x}_0 + \sqrt{1-\bar\alpha_{t'}}\,\hat{\boldsymbol\epsilon}$ with
$\hat{\mathbf x}_0 = (\mathbf x_t - \sqrt{1-\bar\alpha_t}\,\hat{\boldsymbol\epsilon})/\sqrt{\bar\alpha_t}$, where `alpha_bar` $= \bar\alpha_t$ and
`alpha_bar_prev` $= \bar\alpha_{t'}$ are floats (the next step $t' < t$ of any subsequence). The check runs
it on points and images, the last step $\bar\alpha_{t'} = 1$ included. *Predict:* what does your function
return at that last step?""",
    solution='''import math


def ddim_update(x_t, eps_hat, alpha_bar, alpha_bar_prev):
    """One DDIM step with eta = 0: predict x0, then re-noise it to the level alpha_bar_prev."""
    ### BEGIN SOLUTION
    x0_hat = (x_t - math.sqrt(1 - alpha_bar) * eps_hat) / math.sqrt(alpha_bar)
    return math.sqrt(alpha_bar_prev) * x0_hat + math.sqrt(1 - alpha_bar_prev) * eps_hat
    ### END SOLUTION''',
    check="from diffusion_lab import homework\n\nhomework.check_ddim_step(ddim_update)")]

EX["09_images"] = [dict(
    label="images-ex-cfg", title="Programming: classifier-free guidance",
    text=r"""Write `cfg(eps_cond, eps_uncond, w)` returning the guided prediction
$\tilde{\boldsymbol\epsilon} = (1 + w)\,\boldsymbol\epsilon_\theta(\mathbf x_t, t, y) - w\,\boldsymbol\epsilon_\theta(\mathbf x_t, t, \varnothing)$
that a class-conditional `dl.Denoiser` applies with `guidance=w` (Ho & Salimans 2022, Eq. 6), for a float $w \ge 0$. Beware: another common
convention writes the same idea with a $w$ that is larger by one; the check recognises it.""",
    solution='''def cfg(eps_cond, eps_uncond, w):
    """(1 + w) * eps_cond - w * eps_uncond: w = 0 is plain conditional sampling."""
    ### BEGIN SOLUTION
    return (1 + w) * eps_cond - w * eps_uncond
    ### END SOLUTION''',
    check="from diffusion_lab import homework\n\nhomework.check_cfg(cfg)"),
    dict(
    label="images-ex-ema", title="Programming: one EMA update",
    text=r"""The sampled weights are an exponential moving average of the trained ones. Write
`ema_update(ema, param, decay)` returning the new average of one parameter tensor after a training
step, without changing `ema` in place. *Predict*: with `decay = 0.999`, roughly how many steps does the
average remember?""",
    solution='''def ema_update(ema, param, decay):
    """decay * ema + (1 - decay) * param, as a new tensor."""
    ### BEGIN SOLUTION
    return decay * ema + (1 - decay) * param
    ### END SOLUTION''',
    check="from diffusion_lab import homework\n\nhomework.check_ema_update(ema_update)")]

NOTES = {
 "ddim-ex-step": r"""At $\bar\alpha_{t'} = 1$ the noise term vanishes and the step returns $\hat{\mathbf x}_0$ itself: the last
DDIM step is the network's denoised guess, with no noise added.""",
 "intro-ex-noise-step": r"""Variances add: $\operatorname{Var}(\mathbf x) = (1-\beta)\operatorname{Var}(\mathbf x_{\text{prev}}) + \beta$, so with the
square roots a unit-variance input keeps unit variance at every step. With $1-\beta$ and $\beta$ themselves
the variance would become $(1-\beta)^2 + \beta^2 < 1$, and the chain would not end at $\mathcal N(\mathbf 0, \mathbf I)$.""",
 "posterior-ex-mean": r"""At $t = 1$, $\bar\alpha_0 = 1$: the coefficient of $\mathbf x_t$ vanishes and that of $\mathbf x_0$ is
$\beta_1 / (1 - \bar\alpha_1) = 1$, so $\tilde{\boldsymbol\mu}_1 = \mathbf x_0$. Given $\mathbf x_0$ there is nothing left to infer
(and $\tilde\beta_1 = 0$).""",
 "sde-ex-ode-drift": r"""Only the factor changes: $\mathbf f - \tfrac12 g^2\,\nabla_{\mathbf x}\log p_t$. The ODE has the same marginals
$p_t$ as the SDE but injects no noise; in the reverse SDE, the other half of the score term
compensates for the diffusion that the SDE adds.""",
 "images-ex-ema": r"""About $1/(1-\text{decay}) = 1000$ steps: the weight of the parameters from $k$ steps ago is
$(1-\text{decay})\,\text{decay}^k \approx 0.001\,e^{-k/1000}$.""",
}


def add(stem: str) -> bool:
    path = ROOT / "book" / f"{stem}.ipynb"
    nb = nbformat.read(path, as_version=4)
    present = {c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells}
    changed = False
    for ex in EX[stem]:
        if ex["label"] in present:
            continue
        nb.cells.append(nbformat.v4.new_markdown_cell(
            f"```{{exercise}} {ex['title']}\n:label: {ex['label']}\n\n{ex['text']}\n```"))
        start, code, end, check = programming_cells(ex["label"], ex["solution"], ex["check"])
        note = [nbformat.v4.new_markdown_cell(NOTES[ex["label"]])] if ex["label"] in NOTES else []
        nb.cells += [start, code, *note, end, check]
        changed = True
    validate(nb)
    if changed:
        nbformat.write(nb, path)
    return changed


if __name__ == "__main__":
    for stem in sys.argv[1:] or list(EX):
        print(f"{stem}: {'added' if add(stem) else 'already there'}")
