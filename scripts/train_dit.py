"""Train the two checkpoints of the chapter "A transformer backbone" (CPU, one thread, seeded) and print their registry lines.

    python scripts/train_dit.py digits     # a DiT and a UNet on the 8x8 digits, one recipe for both

Both networks are class-conditional (10 digits plus the null class), have about the same number of
parameters (``dit_config((1, 8, 8), "tiny")``: 179,140; ``unet_config((1, 8, 8), "tiny")``: 177,553)
and are trained by the same call of :func:`diffusion_lab.train_diffusion` with the same recipe: the
cosine schedule with T = 1000, eps-prediction, label dropout 0.15, 3,000 Adam steps of 128 images,
learning rate 2e-3 with 200 warm-up steps and cosine decay, gradient clipping at 1, EMA 0.999, seed 0.
The wall time of each run is stored in its ``info`` (``train_seconds``), with the load average: on a
shared machine the two times are comparable only when the load was similar. Paste the printed lines
into REGISTRY in diffusion_lab/pretrained.py; ``--smoke`` runs every code path with tiny budgets
and writes to a temporary directory.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

import diffusion_lab as dl
from diffusion_lab.pretrained import CHECKPOINT_DIR

import checkpoint_cli  # scripts/, beside this file

T = 1000
RECIPE = dict(steps=3000, batch_size=128, lr=2e-3, warmup=200, grad_clip=1.0, ema_decay=0.999, label_dropout=0.15)
OUT_DIR = CHECKPOINT_DIR
SCRIPT = "scripts/train_dit.py"
MODELS = {  # name: (kind, config, description)
    "digits8-dit": ("dit", dl.dit_config((1, 8, 8), "tiny", num_classes=10),
                    "class-conditional DiT (tiny, patch 2: 16 tokens) on the 8x8 digits, 3,000 steps on one CPU thread"),
    "digits8-unet-matched": ("unet", dl.unet_config((1, 8, 8), "tiny", num_classes=10, dropout=0.0),
                             "class-conditional UNet (tiny) on the 8x8 digits, the DiT's recipe and budget (3,000 steps)"),
}


def smoke_settings() -> Path:
    """Tiny budgets for --smoke: every code path runs in seconds (the models are useless)."""
    global OUT_DIR
    RECIPE.update(steps=4, warmup=2)
    OUT_DIR = Path(tempfile.mkdtemp(prefix="train-dit-smoke-"))
    return OUT_DIR


def digits() -> None:
    images, labels = dl.load_images("digits8", split="train")
    for name, (kind, config, description) in MODELS.items():
        torch.manual_seed(0)
        net = dl.DiT(**config) if kind == "dit" else dl.UNet(**config)
        load_before = [round(v, 2) for v in os.getloadavg()]
        result = dl.train_diffusion(dl.Denoiser(net, dl.cosine_schedule(T)), images, labels=labels, seed=0,
                                    progress=False, **RECIPE)
        checkpoint_cli.save(OUT_DIR, SCRIPT, name, result.ema_model, kind, config,
                            dict(dataset="digits8", schedule="cosine", T=T, parameterization="eps",
                                 class_conditional=True, recipe=RECIPE, n_params=dl.parameter_count(net),
                                 train_seconds=round(result.seconds, 1), load_average_before=load_before,
                                 final_loss=round(float(result.loss_history[-200:].mean()), 4)),
                            description)


PARTS = {"digits": digits}


def main() -> None:
    checkpoint_cli.run(PARTS, __doc__, smoke_settings, default_threads=1)


if __name__ == "__main__":
    main()
