"""Training a UNet on images: one loop for a laptop CPU, one GPU, or many GPUs under ``torchrun``.

This is DDPM's Algorithm 1 (Ho et al. 2020) with the engineering a real run needs:

* **EMA** of the weights (the model we sample from), with a short warm-up of the decay;
* on CUDA, **bf16 autocast**, **channels_last** memory format and optionally ``torch.compile``;
* **gradient clipping**, a linear learning-rate warm-up and a cosine decay;
* **classifier-free guidance training**: labels replaced by the null class with probability
  ``label_dropout`` (Ho & Salimans 2022);
* **periodic checkpoints**; a run started again with the same ``out`` resumes from the last one,
  so a killed run loses at most one checkpoint interval. Every step draws its randomness from a
  generator seeded by (seed, rank, step), so a resumed run continues exactly as the uninterrupted
  run would have;
* a **progress bar** with the loss and images/s, and a **JSON-lines log** (``out/log.jsonl``);
* **files that a kill cannot damage**: the checkpoint, the EMA export and the snapshots are written
  to a temporary file in the same folder, flushed to disk and renamed over the old one
  (``os.replace``), so each is always either the old complete file or the new one. A log record is
  appended with a single ``write`` (a kill cannot leave half a record), and on resume the log is
  rewritten the same atomic way to end at the checkpoint's step, so the steps the killed run logged
  after its last checkpoint are not logged twice. A checkpoint that cannot be read (copied
  incompletely, say) stops the run with :class:`DamagedCheckpointError`, which names the file and
  what to do;
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
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from .validation import check_choice, check_float, check_int
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
_CHECKPOINT_KEYS = ("config", "model_config", "step", "model", "ema", "optimizer")

#: The valid range of every numeric setting: (int or float, low, high, low open, high open, note).
#: Both :meth:`ImageTrainConfig.check` and the command line's usage errors are made from it.
RANGES: dict[str, tuple[type, float | None, float | None, bool, bool, str]] = {
    "steps": (int, 1, None, False, False, ""),
    "batch_size": (int, 1, None, False, False, ""),
    "warmup": (int, 0, None, False, False, "0 turns the warm-up off"),
    "T": (int, 1, None, False, False, ""),
    "checkpoint_every": (int, 1, None, False, False, ""),
    "snapshot_every": (int, 0, None, False, False, "0 turns snapshots off"),
    "log_every": (int, 1, None, False, False, ""),
    "seed": (int, 0, 2**63 - 1, False, False, ""),
    "time_budget": (float, 0.0, None, True, False, "seconds"),
    "lr": (float, 0.0, None, True, False, ""),
    "label_dropout": (float, 0.0, 1.0, False, True, ""),
    "dropout": (float, 0.0, 1.0, False, True, ""),
    "ema_decay": (float, 0.0, 1.0, False, True, ""),
    "grad_clip": (float, 0.0, None, False, False, "0 turns clipping off"),
}


def describe_range(name: str) -> str:
    """The valid values of setting ``name`` in words, e.g. ``">= 0 (0 turns clipping off)"``."""
    kind, low, high, low_open, high_open, note = RANGES[name]
    fmt = str if kind is int else (lambda v: f"{v:g}")
    if high is None:
        text = f"{'>' if low_open else '>='} {fmt(low)}"
    else:
        text = f"in {'(' if low_open else '['}{fmt(low)}, {fmt(high)}{')' if high_open else ']'}"
    return text + (f" ({note})" if note else "")


def check_setting(name: str, value: object) -> int | float:
    """``value`` if it is valid for setting ``name`` (see :data:`RANGES`); else a ValueError or TypeError."""
    kind, low, high, low_open, high_open, _ = RANGES[name]
    if kind is int:
        try:
            value = check_int(name, value)
        except TypeError:
            raise TypeError(f"{name} must be an integer {describe_range(name)}, got {value!r}") from None
    else:
        try:
            value = check_float(name, value)
        except ValueError:
            raise ValueError(f"{name} must be a finite number {describe_range(name)}, got {value!r}") from None
    bad = (value <= low if low_open else value < low) or (
        high is not None and (value >= high if high_open else value > high))
    if bad:
        raise ValueError(f"{name} must be {describe_range(name)}, got {value!r}")
    return value


class DamagedCheckpointError(RuntimeError):
    """``out/checkpoint.pt`` exists but cannot be read or is not a checkpoint of this trainer."""


class SettingsMismatchError(ValueError):
    """The checkpoint in ``out`` was written by a run with other model settings (or more steps)."""


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
        """Raise a ValueError (or TypeError) naming the first setting that is out of its range."""
        check_choice("dataset", self.dataset, DATASETS)
        check_choice("model size", self.model_size, MODEL_SIZES)
        check_choice("schedule", self.schedule, SCHEDULES)
        for name in RANGES:
            if not (name == "time_budget" and self.time_budget is None):
                check_setting(name, getattr(self, name))
        for name in ("download", "class_conditional", "compile", "progress"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if not isinstance(self.out, (str, os.PathLike)) or not str(self.out):
            raise ValueError(f"out must be a folder name, got {self.out!r}")
        if self.data_dir is not None and not isinstance(self.data_dir, (str, os.PathLike)):
            raise TypeError(f"data_dir must be a folder name or None, got {self.data_dir!r}")


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


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """``write(tmp)`` a temporary file next to ``path``, flush it to disk, then rename it to ``path``.

    A kill at any moment leaves ``path`` as it was or as the new complete file, never half-written
    (``os.replace`` is atomic within a file system); only the temporary file may remain, and
    :func:`remove_stale_temporaries` deletes it at the next start.
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with tmp.open("rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_stale_temporaries(folder: Path) -> None:
    """Delete the temporary files a killed run may have left (``.<name>.<random>.tmp``)."""
    for tmp in Path(folder).glob(".*.tmp"):
        if tmp.name.startswith((f".{CHECKPOINT}.", f".{EXPORT}.", f".{LOG}.", ".ema_")):
            tmp.unlink(missing_ok=True)


def _atomic_save(obj: dict, path: Path) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def _damaged(path: Path, reason: str) -> DamagedCheckpointError:
    return DamagedCheckpointError(
        f"the checkpoint {path} is damaged: {reason}. It cannot be resumed from. Put back a good copy to "
        f"resume, or move it away (mv {path} {path}.damaged) to start this run again from step 0 in the same folder.")


def load_training_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict:
    """Read ``out/checkpoint.pt``, or raise :class:`DamagedCheckpointError` naming it and what to do."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # truncated, not a zip archive, unpickling refused, I/O error, ...
        raise _damaged(path, f"{type(err).__name__}: {str(err)[:300]}") from err
    if not isinstance(state, dict) or not set(_CHECKPOINT_KEYS) <= set(state):
        found = sorted(map(str, state)) if isinstance(state, dict) else type(state).__name__
        raise _damaged(path, f"it holds {found}, not the keys {list(_CHECKPOINT_KEYS)} of a training checkpoint")
    if not isinstance(state["config"], dict) or isinstance(state["step"], bool) or not isinstance(state["step"], int) \
            or state["step"] < 0:
        raise _damaged(path, "its config or step is not valid")
    return state


class _Log:
    """Appends one JSON object per line to ``out/log.jsonl`` (rank 0 only).

    Each record is one ``write`` on a file opened for appending, so a kill cannot leave half a
    record; :meth:`truncate` rewrites the log atomically when a run resumes.
    """

    def __init__(self, path: Path, active: bool) -> None:
        self.path, self.active = path, active

    def __call__(self, **record) -> None:
        if self.active:
            data = (json.dumps(record) + "\n").encode()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                while data:
                    data = data[os.write(fd, data):]
            finally:
                os.close(fd)

    def truncate(self, step: int) -> None:
        """Keep the records up to ``step`` (the checkpoint's), dropping what a killed run logged later."""
        if not self.active or not self.path.exists():
            return
        kept = []
        for line in self.path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                break  # a record cut short: nothing after it is trusted either
            at = record.get("step", 0) if isinstance(record, dict) else None
            if not isinstance(at, int) or at > step:
                break
            kept.append(line + "\n")
        atomic_write(self.path, lambda tmp: tmp.write_text("".join(kept)))


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
        remove_stale_temporaries(out)
        remove_stale_temporaries(out / SNAPSHOTS)
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
        state = load_training_checkpoint(checkpoint_path, device)
        saved = state["config"]
        clash = {k: (saved.get(k), getattr(config, k)) for k in _MODEL_KEYS if saved.get(k) != getattr(config, k)}
        if clash:
            raise SettingsMismatchError(f"{checkpoint_path} was trained with different settings {clash} (saved, now); "
                                        "use another --out or the same settings")
        if state["step"] > config.steps:
            raise SettingsMismatchError(f"{checkpoint_path} is at step {state['step']}, past --steps {config.steps}; "
                                        "give at least that many steps, or use another --out")
        try:
            model.load_state_dict(state["model"])
            ema.ema_model.load_state_dict(state["ema"])
            optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError, TypeError) as err:
            raise _damaged(checkpoint_path, f"its weights do not fit the model ({type(err).__name__}: "
                           f"{str(err)[:300]})") from err
        start_step = int(state["step"])
        log.truncate(start_step)  # the killed run may have logged steps after its last checkpoint
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
                info = dict(dataset=config.dataset, schedule=config.schedule, T=config.T, step=step,
                            elapsed_s=round(time.perf_counter() - began, 2), resumed_from=start_step)
                atomic_write(out / SNAPSHOTS / f"ema_{step:07d}.pt", lambda tmp: save_checkpoint(
                    tmp, ema.ema_model, kind="unet", config=model_config, info=info))
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
        atomic_write(out / EXPORT, lambda tmp: save_checkpoint(tmp, ema.ema_model, kind="unet", config=model_config,
                                                                info=info))
        summary["export"] = str(out / EXPORT)
    log(**summary)
    if distributed:
        dist.barrier()
        dist.destroy_process_group()
    return summary


def config_fields() -> list[str]:
    """Names of the settings of :class:`ImageTrainConfig` (the command-line flags)."""
    return [f.name for f in fields(ImageTrainConfig)]
