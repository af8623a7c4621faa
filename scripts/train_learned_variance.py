"""Train the checkpoints of the chapter "Learned reverse variances" (CPU, seeded) and print their registry lines.

    python scripts/train_learned_variance.py swiss    # swiss roll: L_simple, L_hybrid, L_vlb (importance-sampled)
    python scripts/train_learned_variance.py digits   # 8x8 digits: L_simple and L_hybrid, same UNet and budget

Within a data set every model has the same network (except the variance head), the same data, seed,
optimiser and number of steps, through :func:`diffusion_lab.train_diffusion`; only the objective
differs. The swiss-roll models are small TimeMLPs (about 50 KB each, one CPU core, about a minute
each); the digit models are unconditional tiny UNets (``unet_config((1, 8, 8), "tiny")``, about
4 minutes each on two cores). The hybrid and bound objectives use the discretised decoder for the
digits (17 grey levels: bin width 2/16) and the Gaussian one for the continuous swiss roll.
Paste the printed lines into REGISTRY in diffusion_lab/pretrained.py; ``--smoke`` runs every code
path with tiny budgets and writes to a temporary directory.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

import diffusion_lab as dl
from diffusion_lab.pretrained import CHECKPOINT_DIR

import checkpoint_cli  # scripts/, beside this file

T = 1000
SWISS = dict(n=20_000, hidden=64, n_blocks=2, steps=4000, batch_size=256, lr=3e-3)
DIGITS = dict(size="tiny", steps=4000, batch_size=128, lr=2e-3, warmup=200, ema_decay=0.999, bin_width=2 / 16)
OBJECTIVES = {  # name suffix: (objective, importance sampling, what it is)
    "simple": ("simple", False, "L_simple, fixed variances"),
    "hybrid": ("hybrid", False, "L_hybrid = L_simple + 0.001 L_vlb, learned variance"),
    "vlb": ("vlb", True, "L_vlb alone with importance-sampled t, learned variance"),
}
OUT_DIR = CHECKPOINT_DIR
SCRIPT = "scripts/train_learned_variance.py"


def smoke_settings() -> Path:
    """Tiny budgets for --smoke: every code path runs in seconds (the models are useless)."""
    global OUT_DIR
    SWISS.update(n=512, steps=20)
    DIGITS.update(steps=4, warmup=2)
    OUT_DIR = Path(tempfile.mkdtemp(prefix="train-variance-smoke-"))
    return OUT_DIR


def train(net: torch.nn.Module, data: torch.Tensor, objective: str, recipe: dict, **options) -> dl.TrainResult:
    kind, importance, _ = OBJECTIVES[objective]
    torch.manual_seed(0)
    denoiser = dl.Denoiser(net, dl.cosine_schedule(T))
    return dl.train_diffusion(denoiser, data, steps=recipe["steps"], batch_size=recipe["batch_size"],
                              lr=recipe["lr"], warmup=recipe.get("warmup", 0),
                              ema_decay=recipe.get("ema_decay", 0.995), objective=kind,
                              importance_sampling=importance, seed=0, progress=False, **options)


def swiss() -> None:
    data = dl.swiss_roll(SWISS["n"], seed=0)
    for objective in OBJECTIVES:
        config = dict(data_dim=2, hidden=SWISS["hidden"], n_blocks=SWISS["n_blocks"],
                      learns_variance=objective != "simple")
        torch.manual_seed(0)
        result = train(dl.TimeMLP(**config), data, objective, SWISS)
        checkpoint_cli.save(OUT_DIR, SCRIPT, f"swiss-variance-{objective}", result.ema_model, "timemlp", config,
                            dict(dataset="swiss_roll", schedule="cosine", T=T, parameterization="eps",
                                 objective=objective, recipe=SWISS, train_seconds=round(result.seconds, 1),
                                 final_loss=round(float(result.loss_history[-200:].mean()), 4)),
                            f"TimeMLP on the swiss roll (cosine, T = 1000): {OBJECTIVES[objective][2]}")


def digits() -> None:
    images, _ = dl.load_images("digits8", split="train")
    for objective in ("simple", "hybrid"):
        config = dict(dl.unet_config((1, 8, 8), DIGITS["size"], dropout=0.0), learns_variance=objective != "simple")
        torch.manual_seed(0)
        result = train(dl.UNet(**config), images, objective, DIGITS, decoder="discretized",
                       bin_width=DIGITS["bin_width"])
        checkpoint_cli.save(OUT_DIR, SCRIPT, f"digits8-variance-{objective}", result.ema_model, "unet", config,
                            dict(dataset="digits8", schedule="cosine", T=T, parameterization="eps",
                                 class_conditional=False, objective=objective, recipe=DIGITS,
                                 train_seconds=round(result.seconds, 1),
                                 final_loss=round(float(result.loss_history[-200:].mean()), 4)),
                            f"unconditional tiny UNet on the 8x8 digits (cosine, T = 1000): {OBJECTIVES[objective][2]}")


PARTS = {"swiss": swiss, "digits": digits}


def main() -> None:
    checkpoint_cli.run(PARTS, __doc__, smoke_settings, default_threads=1)


if __name__ == "__main__":
    main()
