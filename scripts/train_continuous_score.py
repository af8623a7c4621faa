"""Train the checkpoints of the chapter "Training a continuous-time score model" (CPU, seeded) and print
their registry lines.

    python scripts/train_continuous_score.py swiss   # score models on the swiss roll: VP SDE and VE SDE
    python scripts/train_continuous_score.py ring    # the ring of Gaussians: a VP score model

Every model is the same ``TimeMLP`` trained with the same budget through :func:`diffusion_lab.fit`:
the score models by :func:`diffusion_lab.train_score` (denoising score matching with λ(t) = σ(t)²,
network ŝ = −ε_θ / σ, i.e. ``predicts="eps"``; continuous times fed to the network as 1000 t). The
network is small (64 wide, 2 blocks: about 50 KB per file) to keep the shipped checkpoints small.
The chapter trains its discrete comparison model itself, with chapter 2's recipe. Paste the printed lines into
REGISTRY in diffusion_lab/pretrained.py. Each part takes about a minute on one CPU core;
``--smoke`` runs it with tiny budgets and writes to a temporary directory.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

import diffusion_lab as dl
from diffusion_lab.pretrained import CHECKPOINT_DIR

import checkpoint_cli  # scripts/, beside this file

RECIPE = dict(n=20_000, hidden=64, n_blocks=2, steps=4000, batch_size=256, lr=3e-3, weighting="sigma2")
CONFIG = dict(data_dim=2, hidden=RECIPE["hidden"], n_blocks=RECIPE["n_blocks"])
TIME_SCALE = 1000.0  # t ∈ [0, 1] is fed to the network as 1000 t, the range its step embedding was built for
SDES = {"vp": ({}, "VP SDE (beta 0.1..20)"), "ve": (dict(sigma_min=0.01, sigma_max=10.0), "VE SDE (sigma 0.01..10)")}
RING = dict(n_components=8, radius=1.5, std=0.15)  # dl.GaussianMixture.ring()'s defaults, as in chapter 2
OUT_DIR = CHECKPOINT_DIR


def save(name: str, model: torch.nn.Module, info: dict, description: str) -> None:
    checkpoint_cli.save(OUT_DIR, "scripts/train_continuous_score.py", name, model, "timemlp", CONFIG, info, description)


def smoke_settings() -> Path:
    """Tiny budgets for --smoke: every code path runs in seconds (the models are useless)."""
    global OUT_DIR
    RECIPE.update(n=512, steps=20)
    OUT_DIR = Path(tempfile.mkdtemp(prefix="train-score-smoke-"))
    return OUT_DIR

def score_model(name: str, sde: str, data: torch.Tensor, dataset: str, description: str) -> None:
    params, _ = SDES[sde]
    torch.manual_seed(0)
    denoiser = dl.Denoiser(dl.TimeMLP(**CONFIG), dl.pretrained.SDES[sde](**params), predicts="eps",
                           time_scale=TIME_SCALE)
    result = dl.train_score(denoiser, data, steps=RECIPE["steps"], weighting=RECIPE["weighting"],
                            batch_size=RECIPE["batch_size"], lr=RECIPE["lr"], seed=0, progress=False)
    save(name, result.ema_model,
         dict(dataset=dataset, sde=sde, sde_params=params, parameterization="eps", time_scale=TIME_SCALE,
              recipe=RECIPE, final_loss=round(float(result.loss_history[-200:].mean()), 4),
              train_seconds=round(result.seconds, 1)),
         description)


def swiss() -> None:
    data = dl.swiss_roll(RECIPE["n"], seed=0)
    for sde in ("vp", "ve"):
        score_model(f"swiss-{sde}-score", sde, data, "swiss_roll",
                    f"TimeMLP score model (s = -eps/sigma) on the swiss roll, {SDES[sde][1]}, DSM with sigma^2 weighting")


def ring() -> None:
    mixture = dl.GaussianMixture.ring(**RING)
    data = mixture.sample(RECIPE["n"], generator=torch.Generator().manual_seed(0))
    score_model("ring-vp-score", "vp", data, "ring", "TimeMLP score model (s = -eps/sigma) on the ring of 8 "
                "Gaussians, VP SDE, DSM with sigma^2 weighting")


PARTS = {"swiss": swiss, "ring": ring}


def main() -> None:
    checkpoint_cli.run(PARTS, __doc__, smoke_settings, default_threads=1)


if __name__ == "__main__":
    main()
