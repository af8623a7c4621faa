"""Checkpoints the project trained itself, shipped inside the package and checked before loading.

Each file in ``diffusion_lab/checkpoints/`` is a ``torch.save`` of plain data: ``kind``
(``unet``, ``dit``, ``lenet``, ``timemlp`` or ``autoencoder``), the model's constructor ``config``, its ``state_dict`` in float16 and an
``info`` dict (data set, schedule, how it was trained). Loading verifies the file's SHA-256
against the registry below *before* unpickling, and unpickles with ``weights_only=True``, so a
damaged or substituted file is refused with a clear error and no code inside a file ever runs.

    >>> import diffusion_lab as dl
    >>> loaded = dl.pretrained.load("digits8-unet")
    >>> loaded.model, loaded.denoiser, loaded.info["dataset"]

A diffusion or flow checkpoint comes back with its :class:`~diffusion_lab.Denoiser`, built from the
stored ``info`` (the schedule or path, what the network predicts, the time scale; a consistency
model's F_θ comes back inside :func:`~diffusion_lab.consistency_model`, whose x̂₀ is f_θ); image models
clip x̂₀ to the data range [−1, 1], as DDPM's reference sampler does.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .autoencoder import Autoencoder
from .denoiser import Denoiser
from .dit import DiT
from .lenet import LeNet
from .mlp import TimeMLP
from .processes import linear_path, vp_path
from .schedules import make_schedule
from .sde import VESDE, VPSDE
from .unet import UNet
from .validation import check_choice, check_device

CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"
KINDS = {"unet": UNet, "dit": DiT, "lenet": LeNet, "timemlp": TimeMLP, "autoencoder": Autoencoder}


@dataclass(frozen=True)
class Entry:
    """One registered checkpoint: its file in ``CHECKPOINT_DIR``, SHA-256 and a one-line description."""

    file: str
    sha256: str
    description: str


# Written by scripts/train_checkpoints.py, which trained every file here on a CPU.
REGISTRY: dict[str, Entry] = {
    "digits8-classifier": Entry("digits8_lenet.pt", "2edc740a01365e3d782b1bfc64fe3c6e48764b8a9ea8d2198747d9b559b3ec6f",
        "LeNet on digits8 (CPU), test accuracy 0.992; features for the FLD"),
    "mnist-classifier": Entry("mnist_lenet.pt", "f28162380348c88bdf853eddd9c98a3b4f3c8eccda543d32db3b4e56f9fd6c95",
        "LeNet on mnist (CPU), test accuracy 0.990; features for the FLD"),
    "fashion-mnist-classifier": Entry("fashion_mnist_lenet.pt",
        "df05f20375c1a02e6a601004de8ffba512deb96a1f5ad9f72720d8788571a233",
        "LeNet on fashion-mnist (CPU), test accuracy 0.889; features for the FLD"),
    "digits8-unet": Entry("digits8_unet.pt", "c84bfdafeeee821d8bb2614b90b31a249fb2b8043b73ec8417cf7de022b99b23",
        "class-conditional UNet (tiny) on the 8x8 digits, trained on the CPU"),
    "mnist-cpu-preview-unet": Entry("mnist_cpu_preview_unet.pt",
        "dd800acee8a3087b3887cf6c5219cffafb388b04d08ce19e62667c10195c048e",
        "CPU PREVIEW: a tiny class-conditional UNet on MNIST trained briefly on the CPU; not the GPU model"),
    # Written by scripts/train_beyond.py (chapter "Beyond DDPM"), also on a CPU.
    "digits8-autoencoder": Entry("digits8_autoencoder.pt", "5ab4db74cb11228a5977620f7f7a82585efd2fa444c69456f1cf555db31d8ea7",
        "MLP autoencoder 1x8x8 <-> 8 latent numbers (KL-reg) on the 8x8 digits"),
    "digits8-latent-diffusion": Entry("digits8_latent_diffusion.pt", "4eee4f2272b183d2799e9aff7377379cab74b3fd51fdb7f55e4712b99f4b9ae1",
        "TimeMLP eps-model on the 8 latent numbers of digits8-autoencoder (cosine, T = 1000)"),
    "digits8-latent-flow": Entry("digits8_latent_flow.pt", "9275a98de6c1522957042a137f54bbf235c2163fae4e72f34effbe9d07b3d47e",
        "TimeMLP velocity model on the digits8 latents (flow matching, same recipe as the latent diffusion model)"),
    "digits8-latent-distilled-8": Entry("digits8_latent_distilled_8.pt", "a907f4984e5bd38d9a04ab60151921c8872508490e932f1bcc127f75df5c625d",
        "latent student of progressive distillation of digits8-latent-diffusion: DDIM in 8 step(s)"),
    "digits8-latent-distilled-4": Entry("digits8_latent_distilled_4.pt", "dba2f3eab6171692c5e7bd35f011132fe724d7bd3f6dbc3752a876f8aaaaeebc",
        "latent student of progressive distillation of digits8-latent-diffusion: DDIM in 4 step(s)"),
    "digits8-latent-distilled-2": Entry("digits8_latent_distilled_2.pt", "80bb7ff22ce18001e17d1f1a464d3bed6da3b257d9fdbdcf19f89c09785243ee",
        "latent student of progressive distillation of digits8-latent-diffusion: DDIM in 2 step(s)"),
    "digits8-latent-distilled-1": Entry("digits8_latent_distilled_1.pt", "62763babe670962695e8dddcbabb8a1303aaa1d865c5e5534a4a81a5bf61bf57",
        "latent student of progressive distillation of digits8-latent-diffusion: DDIM in 1 step(s)"),
    "swiss-diffusion": Entry("swiss_diffusion.pt", "f6ef7c4826189aa9909eb03a3337d4bed552a72df96dc94327da74fcffa27832",
        "TimeMLP eps-model on the swiss roll (cosine, T = 1000): teacher for distillation"),
    "swiss-flow": Entry("swiss_flow.pt", "20aedba6327cb857d793da1038772a8ef37c16b660e42adbcee26b7f06cf5d17",
        "TimeMLP velocity model on the swiss roll (flow matching, linear path, times scaled by 1000)"),
    "swiss-distilled-8": Entry("swiss_distilled_8.pt", "8352898a668c161800b682a90133518b12305107c42d914ddb89d608df54f139",
        "swiss-roll student of progressive distillation: DDIM in 8 step(s), v-prediction"),
    "swiss-distilled-4": Entry("swiss_distilled_4.pt", "d04c602865f769ea309ac9dd26a92a101fb00b493a8cfd6bcd17f8e5ce71bdd9",
        "swiss-roll student of progressive distillation: DDIM in 4 step(s), v-prediction"),
    "swiss-distilled-2": Entry("swiss_distilled_2.pt", "f60274cc618c96be6db42844936187c88c7c1a4ebb2c598c2f3ef2ee533ff4b7",
        "swiss-roll student of progressive distillation: DDIM in 2 step(s), v-prediction"),
    "swiss-distilled-1": Entry("swiss_distilled_1.pt", "42c10d0264d83eb781e8f77a8c8cc4751ef97128eda9d99a7ad14edd8b491cbd",
        "swiss-roll student of progressive distillation: DDIM in 1 step(s), v-prediction"),
    # Written by scripts/train_continuous_score.py (chapter "Training a continuous-time score model"), on a CPU.
    "swiss-vp-score": Entry("swiss_vp_score.pt", "241e3ef46f8fac1a9ef7de716b6c2bd8cef051dbb3b9f1cde1c11c661a302a1f",
        "TimeMLP score model (s = -eps/sigma) on the swiss roll, VP SDE (beta 0.1..20), DSM with sigma^2 weighting"),
    "swiss-ve-score": Entry("swiss_ve_score.pt", "2ef2b619637d01f2831afe543f14a850790ed4db3c07a8b8a21bcfb8ba5fbd46",
        "TimeMLP score model (s = -eps/sigma) on the swiss roll, VE SDE (sigma 0.01..10), DSM with sigma^2 weighting"),
    "ring-vp-score": Entry("ring_vp_score.pt", "3c94ca86fbd536263f768f6d58e633a23d4d63a6a7a96ce74e5236af6b63d3cd",
        "TimeMLP score model (s = -eps/sigma) on the ring of 8 Gaussians, VP SDE, DSM with sigma^2 weighting"),
    # Written by scripts/train_consistency.py (chapter "Consistency models"), on a CPU with one thread.
    "swiss-consistency-cd": Entry("swiss_consistency_cd.pt", "aa11dbda1d6be248fcd924c08206f087bdb9e28bbb1e2ff8873d5b9f47943b9f",
        "swiss-roll consistency model by consistency distillation of swiss-diffusion (F_theta of f = c_skip x + c_out F)"),
    "swiss-consistency-ct": Entry("swiss_consistency_ct.pt", "3e16ef7a654d44e1841c447acc414943d0e640f9196765ca3ae9908414736440",
        "swiss-roll consistency model by consistency training (F_theta of f = c_skip x + c_out F)"),
    # Written by scripts/train_learned_variance.py (chapter "Learning the reverse variance"), on a CPU.
    "swiss-variance-simple": Entry("swiss_variance_simple.pt", "0fffb60ad37e2f2fa54e4fa1dc83b340703d6771255efcfcddd9da16b635adb5",
        "TimeMLP on the swiss roll (cosine, T = 1000): L_simple, fixed variances"),
    "swiss-variance-hybrid": Entry("swiss_variance_hybrid.pt", "d2f6413038387d176f0f5ca3c821884a07168b57e925af7d71537bb8270765cd",
        "TimeMLP on the swiss roll (cosine, T = 1000): L_hybrid = L_simple + 0.001 L_vlb, learned variance"),
    "swiss-variance-vlb": Entry("swiss_variance_vlb.pt", "6198ff63897f09bfde89914a382f7aa3e2e49d1058201653b4a2163cd3c5615d",
        "TimeMLP on the swiss roll (cosine, T = 1000): L_vlb alone with importance-sampled t, learned variance"),
    "digits8-variance-simple": Entry("digits8_variance_simple.pt", "d9504b7d3e5ca99844a649cecc6855d92935e40d7bc8b8bfa389accf0f089167",
        "unconditional tiny UNet on the 8x8 digits (cosine, T = 1000): L_simple, fixed variances"),
    "digits8-variance-hybrid": Entry("digits8_variance_hybrid.pt", "329fd4ae61a0f29c13998e7650571752af470b53e15ac5d573ecd59e1966fc18",
        "unconditional tiny UNet on the 8x8 digits (cosine, T = 1000): L_hybrid = L_simple + 0.001 L_vlb, learned variance"),
    # Written by scripts/train_dit.py (chapter "A transformer backbone"), on a CPU with one thread.
    "digits8-dit": Entry("digits8_dit.pt", "13934c02573153162cb86d9f52582800f1e341c65362ade541202cea2a058f21",
        "class-conditional DiT (tiny, patch 2: 16 tokens) on the 8x8 digits, 3,000 steps on one CPU thread"),
    "digits8-unet-matched": Entry("digits8_unet_matched.pt", "9e2a8801f15a43e39dccc338b1a63c13c47d2d6e0d9381f7ff7d3df7972e1429",
        "class-conditional UNet (tiny) on the 8x8 digits, the DiT's recipe and budget (3,000 steps)"),
}


class ChecksumError(RuntimeError):
    """A checkpoint's bytes do not match the SHA-256 recorded for it: the file is damaged or replaced."""


@dataclass
class Loaded:
    """What :func:`load` returns: the model (float32, eval mode), its denoiser (None for a classifier
    or an autoencoder) and the ``info`` stored with it."""

    model: nn.Module
    denoiser: Denoiser | None
    info: dict


PATHS = {"linear": linear_path, "vp": vp_path}
SDES = {"vp": VPSDE, "ve": VESDE}


def denoiser_from_info(model: nn.Module, kind: str, info: dict) -> Denoiser | None:
    """The denoiser a checkpoint's ``info`` describes: its schedule (flow path or SDE), parameterization and time scale."""
    if info.get("parameterization") == "consistency":  # f_θ through the boundary-condition wrapper
        from .consistency import consistency_model

        return consistency_model(model, make_schedule(info["schedule"], info["T"]), info["sigma_data"])
    if "schedule" in info:
        process, predicts = make_schedule(info["schedule"], info["T"]), info.get("parameterization", "eps")
    elif "path" in info:
        process, predicts = PATHS[check_choice("flow path", info["path"], PATHS)](), "velocity"
    elif "sde" in info:  # a time-continuous score model: the SDE and its parameters, e.g. sigma_max
        sde = SDES[check_choice("SDE", info["sde"], SDES)]
        process, predicts = sde(**info.get("sde_params", {})), info.get("parameterization", "eps")
    else:
        return None
    clip = 1.0 if kind in ("unet", "dit") else None  # image data live in [−1, 1]
    return Denoiser(model, process, predicts, clip=clip, time_scale=info.get("time_scale", 1.0))


def sha256_of(path: str | Path) -> str:
    """SHA-256 hex digest of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def save_checkpoint(path: str | Path, model: nn.Module, *, kind: str, config: dict, info: dict) -> str:
    """Write ``model``'s weights in float16 with its constructor ``config``; return the file's SHA-256."""
    check_choice("checkpoint kind", kind, KINDS)
    state = {k: (v.detach().half() if v.is_floating_point() else v.detach()).cpu().contiguous()
             for k, v in model.state_dict().items()}
    torch.save(dict(format=1, kind=kind, config=dict(config), state_dict=state, info=dict(info)), path)
    return sha256_of(path)


def load_checkpoint(path: str | Path, *, sha256: str | None = None, device: torch.device | str = "cpu") -> Loaded:
    """Load a checkpoint file written by :func:`save_checkpoint`, verifying ``sha256`` when given."""
    path = Path(path)
    device = check_device(device)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if sha256 is not None:
        actual = sha256_of(path)
        if actual != sha256:
            raise ChecksumError(
                f"checkpoint {path.name} is corrupted or was replaced: its SHA-256 is {actual[:16]}…, "
                f"expected {sha256[:16]}…. Restore it (git checkout -- {path.name}, or reinstall diffusion-lab)."
            )
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file without a known hash
        raise ChecksumError(f"checkpoint {path} cannot be read ({type(err).__name__}: {err})") from err
    kind = check_choice("checkpoint kind", blob.get("kind"), KINDS)
    model = KINDS[kind](**blob["config"])
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in blob["state_dict"].items()})
    model = model.to(device).eval()
    info = dict(blob["info"])
    return Loaded(model, denoiser_from_info(model, kind, info), info)


def available() -> dict[str, str]:
    """The registered checkpoints: name → description."""
    return {name: e.description for name, e in REGISTRY.items()}


def load(name: str, *, device: torch.device | str = "cpu") -> Loaded:
    """Load a registered checkpoint by name (see :func:`available`), verified by SHA-256."""
    check_choice("pretrained checkpoint", name, REGISTRY)
    entry = REGISTRY[name]
    return load_checkpoint(CHECKPOINT_DIR / entry.file, sha256=entry.sha256, device=device)
