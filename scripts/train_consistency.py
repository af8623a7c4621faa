"""Train the checkpoints of the "Consistency models" chapter (on the CPU, seeded) and print their registry lines.

    python scripts/train_consistency.py swiss-cd   # consistency distillation of swiss-diffusion
    python scripts/train_consistency.py swiss-ct   # consistency training on the swiss roll, no teacher

Both use the swiss roll, the network and the data of scripts/train_beyond.py, and record in the
checkpoint's ``info`` their wall-clock time, the number of teacher calls (one DDIM step per
example per training step for CD, none for CT) and the threads they ran with. Paste the printed
lines into REGISTRY in diffusion_lab/pretrained.py. ``--smoke`` runs a part with a tiny budget and
writes its file to a temporary directory instead (the model is useless).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

import diffusion_lab as dl
from diffusion_lab.pretrained import CHECKPOINT_DIR

import checkpoint_cli  # scripts/, beside this file

SWISS_N = 20_000  # the training set of swiss-diffusion (scripts/train_beyond.py)
# A quarter of the teacher's TimeMLP (31,554 parameters against 120,450): the shipped checkpoints must fit
# the repository's budget (tests/test_pretrained.py), and a 128-wide network's file is 248 KB.
CM_CONFIG = dict(data_dim=2, hidden=64, n_blocks=3)
SWISS_CLIP = 3.0  # the teacher samples with x̂₀ clipped to [-3, 3]², as in the chapters
SIGMA_DATA = 1.0  # the swiss roll's std is 0.98
# Both start from a fresh network (a smaller one than the teacher, so not from its weights).
SWISS_CD = dict(n_steps=64, steps=8000, batch_size=256, lr=2e-3, warmup=100, target_decay=0.95, ema_decay=0.995)
SWISS_CT = dict(n_steps=64, steps=8000, batch_size=256, lr=2e-3, warmup=100, target_decay=0.95, ema_decay=0.995)
OUT_DIR = CHECKPOINT_DIR


def smoke_settings() -> Path:
    global OUT_DIR
    for recipe in (SWISS_CD, SWISS_CT):
        recipe.update(steps=10, warmup=2)
    OUT_DIR = Path(tempfile.mkdtemp(prefix="train-consistency-smoke-"))
    return OUT_DIR


def save(name: str, model: torch.nn.Module, info: dict, description: str) -> None:
    checkpoint_cli.save(OUT_DIR, "scripts/train_consistency.py", name, model, "timemlp", CM_CONFIG, info, description)

def swiss(distil: bool) -> None:
    loaded = dl.pretrained.load("swiss-diffusion")
    loaded.model.requires_grad_(False)
    teacher = loaded.denoiser.replace(clip=SWISS_CLIP)
    recipe = SWISS_CD if distil else SWISS_CT
    torch.manual_seed(0)
    net = dl.TimeMLP(**CM_CONFIG)
    model = dl.consistency_model(net, teacher.process, sigma_data=SIGMA_DATA)
    result = dl.train_consistency(model, dl.swiss_roll(SWISS_N, seed=0), teacher=teacher if distil else None,
                                  seed=0, **recipe)
    teacher_calls = recipe["steps"] * recipe["batch_size"] if distil else 0
    tag = "cd" if distil else "ct"
    print(f"swiss-{tag}: final loss {result.loss_history[-100:].mean():.3g}, {result.seconds:.0f} s", flush=True)
    save(f"swiss-consistency-{tag}", result.ema_model.net,
         dict(dataset="swiss_roll", schedule="cosine", T=1000, parameterization="consistency", sigma_data=SIGMA_DATA,
              method="consistency distillation" if distil else "consistency training",
              teacher="swiss-diffusion, one DDIM step, x0 clipped to [-3, 3]" if distil else None,
              teacher_calls=teacher_calls, recipe=recipe, train_seconds=round(result.seconds, 1)),
         f"swiss-roll consistency model by consistency {'distillation of swiss-diffusion' if distil else 'training'}"
         f" (F_theta of f = c_skip x + c_out F)")


PARTS = {"swiss-cd": lambda: swiss(True), "swiss-ct": lambda: swiss(False)}


def main() -> None:
    checkpoint_cli.run(PARTS, __doc__, smoke_settings, default_threads=1)


if __name__ == "__main__":
    main()
