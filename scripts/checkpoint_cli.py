"""What the scripts that train the shipped toy checkpoints share: writing a checkpoint with its
provenance (and printing its registry line), and their command line (`what`, --threads, --smoke)."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path

import torch

from diffusion_lab.pretrained import save_checkpoint


def save(out_dir: Path, script: str, name: str, model: torch.nn.Module, kind: str, config: dict, info: dict,
         description: str) -> None:
    """Write ``<out_dir>/<name with _>.pt`` with where and how it was trained; print the line for the registry."""
    path = Path(out_dir) / f"{name.replace('-', '_')}.pt"
    info = dict(info, trained_with=script, device="cpu", torch_threads=torch.get_num_threads(),
                load_average=[round(v, 2) for v in os.getloadavg()])
    sha = save_checkpoint(path, model, kind=kind, config=config, info=info)
    print(json.dumps({k: v for k, v in info.items() if k != "recipe"}), flush=True)
    print(f'    "{name}": Entry("{path.name}", "{sha}",\n        "{description}"),', flush=True)


def run(parts: dict[str, Callable[[], None]], doc: str | None, smoke: Callable[[], Path], *,
        default_threads: int) -> None:
    """Parse ``what [--threads N] [--smoke]`` and train that part; ``smoke()`` shrinks the budgets and
    returns the temporary directory the files then go to."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=list(parts))
    p.add_argument("--threads", type=int, default=default_threads)
    p.add_argument("--smoke", action="store_true", help="tiny budgets, files to a temporary directory")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.smoke:
        print("smoke run: files go to", smoke(), flush=True)
    parts[args.what]()
