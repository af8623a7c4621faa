"""Train the checkpoints shipped in diffusion_lab/checkpoints/ (all on the CPU) and print their SHA-256.

    python scripts/train_checkpoints.py classifier digits8
    python scripts/train_checkpoints.py classifier mnist --data-dir /path/to/mnist
    python scripts/train_checkpoints.py digits8-unet            # the 8×8 diffusion model (benchmarked)
    python scripts/train_checkpoints.py mnist-preview --data-dir /path/to/mnist --time-budget 900

Paste the printed registry lines into diffusion_lab/pretrained.py. The data files are read from
the directory given and are never copied into the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

import diffusion_lab as dl
from diffusion_lab.lenet import accuracy
from diffusion_lab.image_data import IMAGE_SHAPES
from diffusion_lab.pretrained import CHECKPOINT_DIR, save_checkpoint

# The recipes. digits8-unet is also what benchmarks/digits8.py times.
CLASSIFIER = {
    "digits8": dict(feature_dim=32, steps=3000, batch_size=128, lr=2e-3, noise_std=0.15),
    "mnist": dict(feature_dim=64, steps=2000, batch_size=128, lr=2e-3, noise_std=0.15),
    "fashion-mnist": dict(feature_dim=64, steps=2000, batch_size=128, lr=2e-3, noise_std=0.15),
}
# The shipped digits8-unet (commit 3b14c05): 6000 steps of 128 images, EMA 0.999. About six times the
# compute of the first recipe (2000 of 64, EMA 0.995, 167 s on 2 cores), which left DDPM-100 at 1.45x the floor.
DIGITS8_UNET = dict(dataset="digits8", model_size="tiny", class_conditional=True, label_dropout=0.15,
                    dropout=0.0, steps=6000, batch_size=128, lr=2e-3, warmup=200, T=1000, schedule="cosine",
                    ema_decay=0.999, checkpoint_every=1000, log_every=500)
MNIST_PREVIEW = dict(dataset="mnist", model_size="tiny", class_conditional=True, label_dropout=0.15,
                     dropout=0.0, steps=800, batch_size=32, lr=2e-3, warmup=100, T=1000, schedule="cosine",
                     ema_decay=0.995, checkpoint_every=100, log_every=50)


def registry_line(name: str, path: Path, description: str) -> str:
    return f'    "{name}": Entry("{path.name}", "{dl.pretrained.sha256_of(path)}",\n        "{description}"),'


def train_classifier(dataset: str, data_dir: str | None) -> None:
    recipe = CLASSIFIER[dataset]
    train_x, train_y = dl.load_images(dataset, data_dir, split="train")
    test_x, test_y = dl.load_images(dataset, data_dir, split="test")
    c, h, _ = IMAGE_SHAPES[dataset]
    torch.manual_seed(0)
    model = dl.LeNet(c, h, feature_dim=recipe["feature_dim"])
    start = time.perf_counter()
    dl.train_lenet(model, train_x, train_y, steps=recipe["steps"], batch_size=recipe["batch_size"],
                        lr=recipe["lr"], noise_std=recipe["noise_std"], seed=0)
    seconds = time.perf_counter() - start
    model.eval()
    acc = accuracy(model, test_x, test_y)
    path = CHECKPOINT_DIR / f"{dataset.replace('-', '_')}_lenet.pt"
    config = dict(in_channels=c, image_size=h, num_classes=10, feature_dim=recipe["feature_dim"])
    info = dict(dataset=dataset, test_accuracy=round(acc, 4), train_seconds=round(seconds, 1),
                recipe=recipe, trained_with="scripts/train_checkpoints.py classifier", device="cpu")
    save_checkpoint(path, model, kind="lenet", config=config, info=info)
    print(json.dumps(info))
    print(registry_line(f"{dataset}-classifier", path,
                        f"LeNet on {dataset} (CPU), test accuracy {acc:.3f}; features for the FLD"))


def train_unet(recipe: dict, name: str, file: str, description: str, data_dir: str | None,
               time_budget: float | None) -> dict:
    out = Path(tempfile.mkdtemp(prefix=f"{name}-"))
    config = dl.ImageTrainConfig(**recipe, data_dir=data_dir, out=str(out), time_budget=time_budget)
    cpu_before = time.process_time()
    summary = dl.train_images(config)
    cpu_seconds = time.process_time() - cpu_before
    if summary["event"] != "done":  # a time budget ended it early: export what was reached, honestly
        state = torch.load(out / "checkpoint.pt", weights_only=True)
        model = dl.UNet(**state["model_config"])
        model.load_state_dict(state["ema"])
    else:
        model = dl.pretrained.load_checkpoint(out / "ema_fp16.pt").model
        state = torch.load(out / "checkpoint.pt", weights_only=True)
    info = dict(dataset=recipe["dataset"], schedule=recipe["schedule"], T=recipe["T"], steps=summary["step"],
                class_conditional=True, train_seconds=summary["seconds"], train_cpu_seconds=round(cpu_seconds, 1),
                recipe=recipe,
                trained_with=f"scripts/train_checkpoints.py {name}", device="cpu",
                torch_threads=torch.get_num_threads(), load_average=list(os.getloadavg()))
    path = CHECKPOINT_DIR / file
    save_checkpoint(path, model, kind="unet", config=state["model_config"], info=info)
    shutil.rmtree(out)
    print(json.dumps(info))
    print(registry_line(name, path, description))
    return info


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["classifier", "digits8-unet", "mnist-preview"])
    p.add_argument("dataset", nargs="?", default="digits8", choices=list(CLASSIFIER))
    p.add_argument("--data-dir")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--time-budget", type=float)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    CHECKPOINT_DIR.mkdir(exist_ok=True)
    if args.what == "classifier":
        train_classifier(args.dataset, args.data_dir)
    elif args.what == "digits8-unet":
        train_unet(DIGITS8_UNET, "digits8-unet", "digits8_unet.pt",
                   "class-conditional UNet (tiny) on the 8x8 digits, trained on the CPU", None, args.time_budget)
    else:
        train_unet(MNIST_PREVIEW, "mnist-cpu-preview-unet", "mnist_cpu_preview_unet.pt",
                   "CPU PREVIEW: a tiny class-conditional UNet on MNIST trained briefly on the CPU; "
                   "not the GPU model", args.data_dir, args.time_budget)


if __name__ == "__main__":
    main()
