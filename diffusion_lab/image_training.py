"""Training a UNet on images: one loop for a laptop CPU, one GPU, or many GPUs under ``torchrun``.

This is DDPM's Algorithm 1 (Ho et al. 2020) with the engineering a real run needs:

* **EMA** of the weights (the model we sample from), with a short warm-up of the decay;
* on CUDA, **bf16 autocast**, **channels_last** memory format and optionally ``torch.compile``;
* **gradient clipping**, a linear learning-rate warm-up and a cosine decay;
* **classifier-free guidance training**: labels replaced by the null class with probability
  ``label_dropout`` (Ho & Salimans 2022);
* **periodic checkpoints** written atomically; a run started again with the same ``out`` resumes
  from the last one, so a killed run loses at most one checkpoint interval. Every step draws its
  randomness from a generator seeded by (seed, rank, step), so a resumed run continues exactly as
  the uninterrupted run would have;
* a **progress bar** with the loss and images/s, and a **JSON-lines log** (``out/log.jsonl``);
* **DistributedDataParallel** when launched by ``torchrun`` (NCCL on GPUs, gloo on CPUs): each
  process draws its own batches and gradients are averaged, so all ranks hold identical weights.

The command line is :mod:`diffusion_lab.train` (``python -m diffusion_lab.train --help``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from .validation import check_choice
from .image_data import DATASETS, IMAGE_SHAPES, load_images
from .denoiser import Denoiser
from .fitting import EMA
from .losses import diffusion_loss
from .pretrained import save_checkpoint
from .schedules import SCHEDULES, make_schedule
from .unet import MODEL_SIZES, UNet, unet_config

CHECKPOINT = "checkpoint.pt"
SNAPSHOTS = "snapshots"  # out/snapshots/ema_<step>.pt: fp16 EMA weights with the elapsed time
LOG = "log.jsonl"
EXPORT = "ema_fp16.pt"
NUM_CLASSES = 10
# Settings that must match between a checkpoint and the run that resumes it.
_MODEL_KEYS = ("dataset", "model_size", "class_conditional", "dropout", "schedule", "T")


@dataclass
class ImageTrainConfig:
    """Everything a training run needs; the command-line flags have the same names."""

    dataset: str = "digits8"  # digits8 (offline), mnist, fashion-mnist, cifar10
    data_dir: str | None = None  # directory with the standard files (not needed for digits8)
    download: bool = False  # fetch missing files with torchvision (Colab)
    model_size: str = "small"  # tiny, small, base, large (see unet.unet_config)
    steps: int = 10_000  # total optimisation steps (the learning-rate decay spans them)
    time_budget: float | None = None  # stop this invocation after so many seconds (checkpointed)
    batch_size: int = 128  # global batch, split across ranks
    lr: float = 2e-4
    warmup: int = 200  # linear learning-rate warm-up steps
    class_conditional: bool = False
    label_dropout: float = 0.1  # probability of the null class when class-conditional
    dropout: float = 0.1
    schedule: str = "cosine"
    T: int = 1000
    ema_decay: float = 0.999
    grad_clip: float = 1.0  # maximum gradient norm (0 disables)
    checkpoint_every: int = 1000
    snapshot_every: int = 0  # also keep the EMA weights every so many steps (0: off), for quality vs time
    log_every: int = 50
    out: str = "runs/digits8"
    seed: int = 0
    compile: bool = False  # torch.compile the model (CUDA only)
    progress: bool = True

    def check(self) -> None:
        check_choice("dataset", self.dataset, DATASETS)
        check_choice("model size", self.model_size, MODEL_SIZES)
        check_choice("schedule", self.schedule, SCHEDULES)
        for name in ("steps", "batch_size", "checkpoint_every", "log_every", "T"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.snapshot_every < 0:
            raise ValueError(f"snapshot_every must be >= 0 (0 turns snapshots off), got {self.snapshot_every}")
        if not 0.0 <= self.label_dropout < 1.0:
            raise ValueError(f"label_dropout must lie in [0, 1), got {self.label_dropout}")


def _step_seed(seed: int, rank: int, step: int) -> int:
    """An independent seed per (seed, rank, step), so that resuming replays exactly the same noise."""
    return int(np.random.SeedSequence([seed, rank, step]).generate_state(1, dtype=np.uint64)[0] >> 1)


def _lr_at(config: ImageTrainConfig, step: int) -> float:
    warm = min(1.0, (step + 1) / max(1, config.warmup))
    return config.lr * warm * 0.5 * (1.0 + math.cos(math.pi * step / config.steps))


def weights_digest(model: nn.Module) -> str:
    """SHA-256 of a model's parameters and buffers (identical weights ⇔ identical digest)."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _atomic_save(obj: dict, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)  # a kill during torch.save leaves the previous checkpoint intact


class _Log:
    """Appends one JSON object per line to ``out/log.jsonl`` (rank 0 only)."""

    def __init__(self, path: Path, active: bool) -> None:
        self.path, self.active = path, active

    def __call__(self, **record) -> None:
        if self.active:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")


def train_images(config: ImageTrainConfig, *, stop_after: int | None = None) -> dict:
    """Run (or resume) the training described by ``config``; see the module docstring.

    Args:
        stop_after: stop this call after that many steps, checkpointing as a time budget would
            (used by tests to interrupt a run at a known step).

    Returns:
        A summary dict: final ``step``, ``resumed_from``, ``seconds``, ``weights_sha256`` and paths.
    """
    config.check()
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    cuda = torch.cuda.is_available()
    if distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank() if distributed else 0
    world = dist.get_world_size() if distributed else 1
    if config.batch_size % world:
        raise ValueError(f"batch_size {config.batch_size} must be divisible by the number of processes {world}")
    local_batch = config.batch_size // world
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    out = Path(config.out)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    log = _Log(out / LOG, rank == 0)

    # Data: rank 0 downloads first (if asked), the others read the files afterwards.
    if config.download and distributed and rank != 0:
        dist.barrier()
    images, labels = load_images(config.dataset, config.data_dir, split="train", download=config.download)
    if config.download and distributed and rank == 0:
        dist.barrier()
    images, labels = images.to(device), labels.to(device)
    if cuda:
        images = images.contiguous(memory_format=torch.channels_last)

    # Model, EMA, optimiser: identical on every rank (same seed; DDP also broadcasts rank 0's weights).
    torch.manual_seed(config.seed)
    num_classes = NUM_CLASSES if config.class_conditional else None
    model_config = unet_config(IMAGE_SHAPES[config.dataset], config.model_size, num_classes=num_classes,
                               dropout=config.dropout)
    model = UNet(**model_config).to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    schedule = make_schedule(config.schedule, config.T)
    ema = EMA(model, config.ema_decay)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, fused=cuda or None)

    start_step = 0
    checkpoint_path = out / CHECKPOINT
    if checkpoint_path.exists():
        state = torch.load(checkpoint_path, map_location=device, weights_only=True)
        saved = state["config"]
        clash = {k: (saved.get(k), getattr(config, k)) for k in _MODEL_KEYS if saved.get(k) != getattr(config, k)}
        if clash:
            raise ValueError(f"{checkpoint_path} was trained with different settings {clash} (saved, now); "
                             "use another --out or the same settings")
        model.load_state_dict(state["model"])
        ema.ema_model.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        start_step = int(state["step"])
        log(event="resume", step=start_step)

    net = model
    if distributed:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
    if config.compile and cuda:
        net = torch.compile(net)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()
    training_denoiser = Denoiser(net, schedule)  # ε-prediction on the schedule; labels go in per batch

    def save(step: int) -> None:
        if rank == 0:
            _atomic_save(dict(config=asdict(config), model_config=model_config, step=step, model=model.state_dict(),
                              ema=ema.ema_model.state_dict(), optimizer=optimizer.state_dict()), checkpoint_path)

    if start_step == 0:
        log(event="start", config=asdict(config), world_size=world, device=str(device),
            parameters=sum(p.numel() for p in model.parameters()))
    model.train()
    step, began = start_step, time.perf_counter()
    window_loss, window_steps, window_start = 0.0, 0, time.perf_counter()
    bar = tqdm(total=config.steps, initial=start_step, disable=not config.progress or rank != 0,
               mininterval=1.0, desc=f"training {config.dataset}")
    generator = torch.Generator(device=device)
    try:
        while step < config.steps:
            if stop_after is not None and step - start_step >= stop_after:
                break
            if config.time_budget is not None:
                over = torch.tensor(float(time.perf_counter() - began >= config.time_budget), device=device)
                if distributed:  # every rank must stop at the same step
                    dist.broadcast(over, src=0)
                if over.item():
                    break
            generator.manual_seed(_step_seed(config.seed, rank, step))
            torch.manual_seed(_step_seed(config.seed, rank, step) + 1)  # dropout uses the global generator
            idx = torch.randint(0, images.shape[0], (local_batch,), generator=generator, device=device)
            x0 = images[idx]
            y = None
            if num_classes is not None:
                y = labels[idx]
                # Classifier-free guidance training: drop labels to the null class (Ho & Salimans 2022).
                drop = torch.rand(local_batch, generator=generator, device=device) < config.label_dropout
                y = torch.where(drop, torch.full_like(y, num_classes), y)
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(config, step)
            with autocast:
                loss = diffusion_loss(training_denoiser, x0, labels=y, generator=generator).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            ema.decay = min(config.ema_decay, (1.0 + step) / (10.0 + step))  # EMA warm-up
            ema.update(model)
            step += 1
            window_loss += loss.item()
            window_steps += 1
            bar.update(1)
            if step % config.checkpoint_every == 0:
                save(step)  # before the log line: a logged step is never more than one interval ahead
            if config.snapshot_every and step % config.snapshot_every == 0 and rank == 0:
                (out / SNAPSHOTS).mkdir(exist_ok=True)
                save_checkpoint(out / SNAPSHOTS / f"ema_{step:07d}.pt", ema.ema_model, kind="unet", config=model_config,
                                info=dict(dataset=config.dataset, schedule=config.schedule, T=config.T, step=step,
                                          elapsed_s=round(time.perf_counter() - began, 2), resumed_from=start_step))
            if step % config.log_every == 0 or step == config.steps:
                seconds = time.perf_counter() - window_start
                record = dict(step=step, loss=round(window_loss / window_steps, 5), lr=_lr_at(config, step - 1),
                              images_per_s=round(window_steps * config.batch_size / seconds, 1),
                              elapsed_s=round(time.perf_counter() - began, 2))
                log(**record)
                bar.set_postfix(loss=f"{record['loss']:.4f}", img_s=f"{record['images_per_s']:.0f}", refresh=False)
                window_loss, window_steps, window_start = 0.0, 0, time.perf_counter()
    except KeyboardInterrupt:
        save(step)
        log(event="interrupted", step=step)
        raise
    finally:
        bar.close()
    if step % config.checkpoint_every:
        save(step)
    digest = weights_digest(model)
    last_loss = round(loss.item(), 6) if step > start_step else None
    digests, losses = [digest], [last_loss]
    if distributed:  # every rank reports: identical weights, yet each rank saw its own batches
        digests, losses = [None] * world, [None] * world
        dist.all_gather_object(digests, digest)
        dist.all_gather_object(losses, last_loss)
    summary = dict(event="stop" if step < config.steps else "done", step=step, resumed_from=start_step,
                   seconds=round(time.perf_counter() - began, 2), weights_sha256=digest,
                   rank_weights_sha256=digests, rank_last_loss=losses, checkpoint=str(checkpoint_path))
    if step == config.steps and rank == 0:
        info = dict(dataset=config.dataset, schedule=config.schedule, T=config.T, steps=step,
                    class_conditional=config.class_conditional, trained_with="python -m diffusion_lab.train")
        save_checkpoint(out / EXPORT, ema.ema_model, kind="unet", config=model_config, info=info)
        summary["export"] = str(out / EXPORT)
    log(**summary)
    if distributed:
        dist.barrier()
        dist.destroy_process_group()
    return summary


def config_fields() -> list[str]:
    """Names of the settings of :class:`ImageTrainConfig` (the command-line flags)."""
    return [f.name for f in fields(ImageTrainConfig)]
