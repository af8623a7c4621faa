"""Train the checkpoints of the "Beyond DDPM" chapter (all on the CPU, seeded) and print their registry lines.

    python scripts/train_beyond.py swiss-diffusion # 2D: the diffusion teacher
    python scripts/train_beyond.py swiss-flow      # 2D: flow matching with the same network and budget
    python scripts/train_beyond.py swiss-distill   # 2D: progressive distillation of swiss-diffusion
    python scripts/train_beyond.py latent          # digits: autoencoder and latent diffusion model
    python scripts/train_beyond.py latent-extra    # digits latents: flow matching and distilled students

The digits experiments of flow matching and distillation run in the autoencoder's latent space,
where a training step costs milliseconds on a CPU (the pixel UNet's cost about 0.5 s each).

Paste the printed lines into REGISTRY in diffusion_lab/pretrained.py. Each part takes a few
minutes on two CPU cores. ``--smoke`` runs a part with tiny budgets and writes its files to a
temporary directory instead (a check that the script runs; the files are not for shipping).
"""

from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path

import torch

import diffusion_lab as dl
from diffusion_lab.pretrained import CHECKPOINT_DIR

import checkpoint_cli  # scripts/, beside this file

T = 1000
SCHEDULE = "cosine"
SWISS = dict(n=20_000, hidden=128, n_blocks=3, steps=3000, batch_size=256, lr=3e-3)
SWISS_CONFIG = dict(data_dim=2, hidden=SWISS["hidden"], n_blocks=SWISS["n_blocks"])
SWISS_CLIP = 3.0  # the swiss roll lies in [-1.6, 2.3]²; x̂₀ is clipped to [-3, 3] when sampling
SWISS_DISTILL = dict(start_steps=64, steps=1000, batch_size=256, lr=1e-3, warmup=100, ema_decay=0.995)
AUTOENCODER = dict(latent_dim=8, hidden=256, steps=4000, batch_size=128, lr=2e-3, kl_weight=1e-3)
LATENT = dict(hidden=128, n_blocks=3, steps=6000, batch_size=256, lr=2e-3)
LATENT_CLIP = 4.0  # |scaled latent| <= 3.6 on the training digits; x̂₀ is clipped to [-4, 4] when sampling
LATENT_DISTILL = dict(start_steps=64, steps=1000, batch_size=256, lr=1e-3, warmup=100, ema_decay=0.995)
SHIPPED_STUDENTS = (8, 4, 2, 1)
OUT_DIR = CHECKPOINT_DIR  # where save() writes; a temporary directory with --smoke


def smoke_settings() -> Path:
    """Tiny budgets for --smoke: every code path runs in seconds (the models are useless)."""
    global OUT_DIR
    SWISS.update(n=512, steps=20)
    AUTOENCODER.update(steps=20)
    LATENT.update(steps=20)
    for recipe in (SWISS_DISTILL, LATENT_DISTILL):
        recipe.update(start_steps=4, steps=10, warmup=2)
    OUT_DIR = Path(tempfile.mkdtemp(prefix="train-beyond-smoke-"))
    return OUT_DIR


def save(name: str, model: torch.nn.Module, kind: str, config: dict, info: dict, description: str) -> None:
    checkpoint_cli.save(OUT_DIR, "scripts/train_beyond.py", name, model, kind, config, info, description)

def distill_rounds(teacher: dl.Denoiser, data: torch.Tensor, recipe: dict, clip: float, tag: str, seed: int):
    """Rounds 2N → N from recipe['start_steps']; yields (N, EMA student network) after each round.

    ``teacher`` samples with x̂₀ clipped to [−clip, clip], as the chapter samples; each student
    starts as a copy of its teacher's network read as a v-prediction (Salimans & Ho 2022, Sec. 4),
    and regresses the unclipped x̂₀.
    """
    student = dl.Denoiser(copy.deepcopy(teacher.net).requires_grad_(True), teacher.process, predicts="v")
    n = recipe["start_steps"] // 2
    while n >= 1:
        start = time.perf_counter()
        result = dl.distill(student, teacher, data, student_steps=n, steps=recipe["steps"],
                            batch_size=recipe["batch_size"], lr=recipe["lr"], warmup=recipe["warmup"],
                            ema_decay=recipe["ema_decay"], seed=seed + n)
        print(f"{tag}: student of {n} steps, final loss {result.loss_history[-100:].mean():.4f}, "
              f"{time.perf_counter() - start:.0f} s", flush=True)
        ema = result.ema_model
        yield n, ema
        # The trained student is the next round's teacher; the next student starts from it.
        teacher = result.denoiser.replace(net=copy.deepcopy(ema).requires_grad_(False), clip=clip)
        student = student.replace(net=copy.deepcopy(ema).requires_grad_(True))
        n //= 2


def swiss_diffusion() -> None:
    schedule = dl.make_schedule(SCHEDULE, T)
    torch.manual_seed(0)
    denoiser = dl.Denoiser(dl.TimeMLP(**SWISS_CONFIG), schedule, predicts="eps")
    diffusion = dl.train_diffusion(denoiser, dl.swiss_roll(SWISS["n"], seed=0), steps=SWISS["steps"],
                                   batch_size=SWISS["batch_size"], lr=SWISS["lr"], seed=0, progress=False)
    save("swiss-diffusion", diffusion.ema_model, "timemlp", SWISS_CONFIG,
         dict(dataset="swiss_roll", schedule=SCHEDULE, T=T, parameterization="eps", recipe=SWISS,
              train_seconds=round(diffusion.seconds, 1)),
         "TimeMLP eps-model on the swiss roll (cosine, T = 1000): teacher for distillation")


def swiss_flow() -> None:
    torch.manual_seed(0)
    # Flow matching: the diffusion loss of a velocity network on the linear path; t ∈ [0, 1] is fed
    # to the network as 1000 t, the range its step embedding was built for.
    denoiser = dl.Denoiser(dl.TimeMLP(**SWISS_CONFIG), dl.linear_path(), predicts="velocity", time_scale=1000.0)
    flow = dl.train_diffusion(denoiser, dl.swiss_roll(SWISS["n"], seed=0), steps=SWISS["steps"],
                              batch_size=SWISS["batch_size"], lr=SWISS["lr"], seed=0, progress=False)
    save("swiss-flow", flow.ema_model, "timemlp", SWISS_CONFIG,
         dict(dataset="swiss_roll", path="linear", time_scale=1000.0, recipe=SWISS, train_seconds=round(flow.seconds, 1)),
         "TimeMLP velocity model on the swiss roll (flow matching, linear path, times scaled by 1000)")


def swiss_distill() -> None:
    loaded = dl.pretrained.load("swiss-diffusion")
    loaded.model.requires_grad_(False)
    # The teacher clips x̂₀ to a box around the data ([-3, 3]²), as the chapter samples.
    teacher = loaded.denoiser.replace(clip=SWISS_CLIP)
    data = dl.swiss_roll(SWISS["n"], seed=0)
    for n, ema in distill_rounds(teacher, data, SWISS_DISTILL, SWISS_CLIP, "swiss", 0):
        if n in SHIPPED_STUDENTS:
            save(f"swiss-distilled-{n}", ema, "timemlp", SWISS_CONFIG,
                 dict(dataset="swiss_roll", schedule=SCHEDULE, T=T, parameterization="v", sampling_steps=n,
                      teacher="swiss-diffusion, DDIM 64 steps, x0 clipped to [-3, 3]", recipe=SWISS_DISTILL),
                 f"swiss-roll student of progressive distillation: DDIM in {n} step(s), v-prediction")


def latent() -> None:
    train_x, _ = dl.digits_8x8(split="train")
    torch.manual_seed(0)
    ae = dl.Autoencoder((1, 8, 8), AUTOENCODER["latent_dim"], AUTOENCODER["hidden"])
    result = dl.train_autoencoder(ae, train_x, steps=AUTOENCODER["steps"], batch_size=AUTOENCODER["batch_size"],
                                  lr=AUTOENCODER["lr"], kl_weight=AUTOENCODER["kl_weight"], seed=0)
    ae = result.ema_model.eval()
    scale = dl.fit_latent_scale(ae, train_x)
    save("digits8-autoencoder", ae, "autoencoder",
         dict(image_shape=(1, 8, 8), latent_dim=AUTOENCODER["latent_dim"], hidden=AUTOENCODER["hidden"]),
         dict(dataset="digits8", latent_scale=scale, recipe=AUTOENCODER, train_seconds=round(result.seconds, 1)),
         "MLP autoencoder 1x8x8 <-> 8 latent numbers (KL-reg) on the 8x8 digits")
    with torch.no_grad():
        z = ae.to_latent(train_x)
    schedule = dl.make_schedule(SCHEDULE, T)
    config = dict(data_dim=AUTOENCODER["latent_dim"], hidden=LATENT["hidden"], n_blocks=LATENT["n_blocks"])
    torch.manual_seed(0)
    model = dl.train_diffusion(dl.Denoiser(dl.TimeMLP(**config), schedule, predicts="eps"), z, steps=LATENT["steps"],
                               batch_size=LATENT["batch_size"], lr=LATENT["lr"], seed=0, progress=False)
    save("digits8-latent-diffusion", model.ema_model, "timemlp", config,
         dict(dataset="digits8 latents of digits8-autoencoder", schedule=SCHEDULE, T=T, parameterization="eps",
              recipe=LATENT, train_seconds=round(model.seconds, 1)),
         "TimeMLP eps-model on the 8 latent numbers of digits8-autoencoder (cosine, T = 1000)")


def latent_extra() -> None:
    """Flow matching and progressive distillation in the latent space of digits8-autoencoder."""
    train_x, _ = dl.digits_8x8(split="train")
    ae = dl.pretrained.load("digits8-autoencoder").model
    teacher = dl.pretrained.load("digits8-latent-diffusion")
    with torch.no_grad():
        z = ae.to_latent(train_x)
    config = dict(data_dim=AUTOENCODER["latent_dim"], hidden=LATENT["hidden"], n_blocks=LATENT["n_blocks"])
    torch.manual_seed(0)
    denoiser = dl.Denoiser(dl.TimeMLP(**config), dl.linear_path(), predicts="velocity", time_scale=1000.0)
    flow = dl.train_diffusion(denoiser, z, steps=LATENT["steps"], batch_size=LATENT["batch_size"], lr=LATENT["lr"],
                              seed=0, progress=False)
    save("digits8-latent-flow", flow.ema_model, "timemlp", config,
         dict(dataset="digits8 latents of digits8-autoencoder", path="linear", time_scale=1000.0, recipe=LATENT,
              train_seconds=round(flow.seconds, 1)),
         "TimeMLP velocity model on the digits8 latents (flow matching, same recipe as the latent diffusion model)")
    teacher.model.requires_grad_(False)
    # The teacher clips x̂₀ to the box that holds the training latents, as the chapter samples.
    for n, ema in distill_rounds(teacher.denoiser.replace(clip=LATENT_CLIP), z, LATENT_DISTILL, LATENT_CLIP, "latent", 0):
        if n in SHIPPED_STUDENTS:
            save(f"digits8-latent-distilled-{n}", ema, "timemlp", config,
                 dict(dataset="digits8 latents of digits8-autoencoder", schedule=SCHEDULE, T=T, parameterization="v",
                      sampling_steps=n, teacher="digits8-latent-diffusion, DDIM 64 steps, x0 clipped to [-4, 4]", recipe=LATENT_DISTILL),
                 f"latent student of progressive distillation of digits8-latent-diffusion: DDIM in {n} step(s)")


PARTS = {"swiss-diffusion": swiss_diffusion, "swiss-flow": swiss_flow, "swiss-distill": swiss_distill,
         "latent": latent, "latent-extra": latent_extra}


def main() -> None:
    checkpoint_cli.run(PARTS, __doc__, smoke_settings, default_threads=2)


if __name__ == "__main__":
    main()
