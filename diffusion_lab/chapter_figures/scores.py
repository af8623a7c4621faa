"""Chapters 5 and 6: Langevin dynamics on the exact density; reverse SDE and probability-flow paths."""

from __future__ import annotations

import numpy as np
import torch

from .. import figures as F
from .text import COLOR_NAMES, fmt_g, percent


# --- Chapter 5: Langevin dynamics ----------------------------------------------------------------

def density_image(mixture, lim: float, grid: int, scale: float = 1.0, std: float = 0.0, depth: float = 0.6) -> dict:
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
    title = f"particles near {near} = ({fmt_g(float(mean[0]), 2)}, {fmt_g(float(mean[1]), 2)})"
    panels = {
        "particles": F.Panel("particles over p(x)", xlim=(-lim, lim), ylim=(-lim, lim), width=240, height=240,
                             layers=[density_image(mixture, lim, grid)]),
        "spread": F.Panel(f"log₁₀ spread of the particles near {near}", xlabel="log₁₀(1 + K)", xlim=(0.0, right + 0.4),
                          ylim=(min(-0.1, np.floor(10 * min(finite)) / 10), np.ceil(10 * max(finite)) / 10 + 0.1),
                          width=280, height=220, layers=curves + [F.line([[0.0, 0.0], [right + 0.4, 0.0]], color="#999999", width=1.0)]),
    }
    weights = ", ".join(percent(float(w)) for w in mixture.weights)

    def frame(**chosen) -> dict:
        eps, j = float(chosen["ε"]), step_counts.index(int(chosen["K"]))
        share = ", ".join(percent(s) for s in shares[eps][j])
        stationary = (f"stationary value of the chain: {fmt_g(theory[eps])}×" if np.isfinite(theory[eps])
                      else "no stationary value: ε ≥ 4λ, the linear chain diverges")
        spread = "no particle left there" if not np.isfinite(spreads[eps][j]) else f"{fmt_g(spreads[eps][j])}× its variance"
        layers = {"particles": [F.points(chains_by_size[eps][j], color=colors[eps], size=2.0)],
                  "spread": [F.vline(float(x_axis[j]))],
                  "readout": (f"ε = {eps:g}, K = {step_counts[j]} (Langevin time εK/2 = {fmt_g(eps * step_counts[j] / 2)}): "
                              f"spread of the {title}: {spread} ({stationary}); particles per component "
                              f"{share} (π: {weights})")}
        if np.isfinite(log_spread[eps][j]):
            layers["spread"].append(F.points([[x_axis[j], log_spread[eps][j]]], color="#000000", size=7.0))
        return layers

    chains_by_size = dict(zip(sizes, chains.values()))
    names = ", ".join(f"ε = {eps:g} ({COLOR_NAMES[i % 10]})" for i, eps in enumerate(sizes))
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
        background = density_image(mixture, lim, grid, float(s[i]), float(sigma[i]))
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
                             f"between the SDE's and the ODE's particle of the same start: {fmt_g(gap)}")
        return layers

    return F.Explorer(
        [F.Control("t", labels, play=True)], panels, frame,
        caption="Grey: the exact marginal p_t. Both clouds follow it at every t; the coloured paths of the same "
                "three starting points show how differently single particles get there.")
