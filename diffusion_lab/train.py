"""Command line: train a diffusion UNet on images (see :mod:`diffusion_lab.image_training`).

    python -m diffusion_lab.train --dataset digits8 --class-conditional --steps 4000 --out runs/digits8
    python -m diffusion_lab.train --dataset mnist --data-dir data/mnist --model-size base \\
        --class-conditional --steps 60000 --batch-size 256 --out runs/mnist           # one GPU
    torchrun --standalone --nproc_per_node 4 -m diffusion_lab.train --dataset cifar10 \\
        --data-dir data --download --model-size large --batch-size 512 --out runs/cifar  # four GPUs

Run the same command again to resume from ``--out``'s last checkpoint. (The in-memory trainer of
the chapters is :func:`diffusion_lab.train_diffusion`; this module is only the command line.)
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from .image_data import DATASETS
from .image_training import ImageTrainConfig, train_images
from .schedules import SCHEDULES
from .unet import MODEL_SIZES


def parse_args(argv: list[str] | None = None) -> ImageTrainConfig:
    d = ImageTrainConfig()
    p = argparse.ArgumentParser(prog="python -m diffusion_lab.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=DATASETS, default=d.dataset)
    p.add_argument("--data-dir", default=d.data_dir, help="directory with the standard files (not for digits8)")
    p.add_argument("--download", action="store_true", help="fetch missing files with torchvision (needs a network)")
    p.add_argument("--model-size", choices=MODEL_SIZES, default=d.model_size)
    p.add_argument("--steps", type=int, default=d.steps, help="total optimisation steps")
    p.add_argument("--time-budget", type=float, default=d.time_budget,
                   help="stop this invocation after so many seconds (a checkpoint is written; rerun to resume)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="global batch, split across processes")
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--warmup", type=int, default=d.warmup)
    p.add_argument("--class-conditional", action="store_true", help="condition on labels (with a null class)")
    p.add_argument("--label-dropout", type=float, default=d.label_dropout,
                   help="probability of replacing a label with the null class (classifier-free guidance)")
    p.add_argument("--dropout", type=float, default=d.dropout)
    p.add_argument("--schedule", choices=SCHEDULES, default=d.schedule)
    p.add_argument("--T", type=int, default=d.T, help="number of diffusion steps")
    p.add_argument("--ema-decay", type=float, default=d.ema_decay)
    p.add_argument("--grad-clip", type=float, default=d.grad_clip, help="maximum gradient norm (0: off)")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every)
    p.add_argument("--snapshot-every", type=int, default=d.snapshot_every,
                   help="keep the EMA weights every so many steps in out/snapshots (0: off)")
    p.add_argument("--log-every", type=int, default=d.log_every)
    p.add_argument("--out", default=d.out, help="output directory (checkpoint.pt, log.jsonl, ema_fp16.pt)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--compile", action="store_true", help="torch.compile the model (CUDA only)")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    return ImageTrainConfig(**vars(p.parse_args(argv)))


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    try:
        summary = train_images(config)
    except KeyboardInterrupt:
        print(f"interrupted: the checkpoint in {config.out} was saved; run the same command to resume",
              file=sys.stderr)
        return 130
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({k: summary[k] for k in ("event", "step", "resumed_from", "seconds")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
