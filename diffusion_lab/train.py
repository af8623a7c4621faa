"""Command line: train a diffusion UNet on images (see :mod:`diffusion_lab.image_training`).

    python -m diffusion_lab.train --dataset digits8 --class-conditional --steps 4000 --out runs/digits8
    python -m diffusion_lab.train --dataset mnist --data-dir data/mnist --model-size base \\
        --class-conditional --steps 60000 --batch-size 256 --out runs/mnist           # one GPU
    torchrun --standalone --nproc_per_node 4 -m diffusion_lab.train --dataset cifar10 \\
        --data-dir data --download --model-size large --batch-size 512 --out runs/cifar  # four GPUs

Run the same command again to resume from ``--out``'s last checkpoint. (The in-memory trainer of
the chapters is :func:`diffusion_lab.train_diffusion`; this module is only the command line.)

Every numeric option is range-checked when the command line is read: a value out of range is a
usage error (exit status 2) that names the option and its valid range. A checkpoint that cannot be
resumed from, or a data set that is not there, ends the command with a one-line message (exit
status 1) instead of a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from .image_data import DATASETS, DataFileError
from .image_training import (RANGES, DamagedCheckpointError, ImageTrainConfig, SettingsMismatchError, check_setting,
                             describe_range, train_images)
from .schedules import SCHEDULES
from .unet import MODEL_SIZES

PROG = "python -m diffusion_lab.train"


def _ranged(name: str):
    """An argparse ``type`` for setting ``name``: parse, then range-check (an error is a usage error)."""
    kind = RANGES[name][0]

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if kind is int else 'a number'} {describe_range(name)}, got {text!r}") from None
        try:
            return check_setting(name, value)
        except (ValueError, TypeError):
            raise argparse.ArgumentTypeError(f"must be {describe_range(name)}, got {text!r}") from None

    parse.__name__ = kind.__name__  # argparse names the type in some messages
    return parse


def build_parser() -> argparse.ArgumentParser:
    d = ImageTrainConfig()
    p = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)

    def number(flag: str, name: str, help: str) -> None:
        p.add_argument(flag, type=_ranged(name), default=getattr(d, name),
                       help=f"{help} ({describe_range(name)}; default {getattr(d, name)})")

    p.add_argument("--dataset", choices=DATASETS, default=d.dataset)
    p.add_argument("--data-dir", default=d.data_dir, help="directory with the standard files (not for digits8)")
    p.add_argument("--download", action="store_true", help="fetch missing files with torchvision (needs a network)")
    p.add_argument("--model-size", choices=MODEL_SIZES, default=d.model_size)
    number("--steps", "steps", "total optimisation steps")
    number("--time-budget", "time_budget",
           "stop this invocation after so many seconds (a checkpoint is written; rerun to resume)")
    number("--batch-size", "batch_size", "global batch, split across processes")
    number("--lr", "lr", "peak learning rate")
    number("--warmup", "warmup", "linear learning-rate warm-up steps")
    p.add_argument("--class-conditional", action="store_true", help="condition on labels (with a null class)")
    number("--label-dropout", "label_dropout",
           "probability of replacing a label with the null class (classifier-free guidance)")
    number("--dropout", "dropout", "dropout probability in the UNet")
    p.add_argument("--schedule", choices=SCHEDULES, default=d.schedule)
    number("--T", "T", "number of diffusion steps")
    number("--ema-decay", "ema_decay", "decay of the exponential moving average of the weights")
    number("--grad-clip", "grad_clip", "maximum gradient norm")
    number("--checkpoint-every", "checkpoint_every", "steps between checkpoints")
    number("--snapshot-every", "snapshot_every", "keep the EMA weights every so many steps in out/snapshots")
    number("--log-every", "log_every", "steps between records of out/log.jsonl")
    p.add_argument("--out", default=d.out, help="output directory (checkpoint.pt, log.jsonl, ema_fp16.pt)")
    number("--seed", "seed", "random seed")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (CUDA only)")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    return p


def parse_args(argv: list[str] | None = None) -> ImageTrainConfig:
    """The configuration the command line describes; a usage error (SystemExit 2) if it is invalid."""
    parser = build_parser()
    config = ImageTrainConfig(**vars(parser.parse_args(argv)))
    try:
        config.check()  # what the per-option checks cannot see
    except (ValueError, TypeError) as exc:
        parser.error(str(exc))
    return config


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    try:
        summary = train_images(config)
    except KeyboardInterrupt:
        print(f"interrupted: the checkpoint in {config.out} was saved; run the same command to resume",
              file=sys.stderr)
        return 130
    except (DamagedCheckpointError, SettingsMismatchError, DataFileError, FileNotFoundError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({k: summary[k] for k in ("event", "step", "resumed_from", "seconds")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
