"""What every sampler shares: where it starts, the batch's time, and the optional trajectory.

A sampler takes a :class:`~diffusion_lab.Denoiser` and runs on the times of its process's
``time_grid``; ``trajectory[i]`` is always the state at the i-th time visited, in sampling order
(index 0 is the start, the last index is the result).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..validation import check_generator, check_int, check_tensor


def start_state(process, x_T: torch.Tensor | Sequence[int], generator: torch.Generator | None) -> torch.Tensor:
    """``x_T`` itself, or a draw from the process's prior N(0, σ_T² I) of shape ``x_T`` on the generator's device."""
    check_generator(generator)
    if isinstance(x_T, torch.Tensor):
        return check_tensor("x_T", x_T, floating=True, ndim_min=2, finite=True)
    try:
        shape = tuple(int(s) if not isinstance(s, bool) else s for s in x_T)
    except TypeError:
        raise TypeError(f"x_T must be a tensor or a shape such as (B, 2), got {x_T!r}") from None
    if len(shape) < 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape):
        raise ValueError(f"x_T must be a tensor or a shape of positive ints (B, ...) such as (B, 2), got {x_T!r}")
    device = generator.device if generator is not None else torch.device("cpu")
    return process.prior_std * torch.randn(shape, generator=generator, device=device)


def batch_time(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """One grid time (a 0-d tensor) for every example of ``x``: shape ``(B,)`` on x's device."""
    return t.reshape(()).expand(x.shape[0]).to(x.device)


class Trajectory:
    """Collects the visited states when asked to (``keep``), and returns them stacked: ``(N + 1, B, ...)``."""

    def __init__(self, x: torch.Tensor, keep: bool) -> None:
        self.states = [x] if keep else None

    def add(self, x: torch.Tensor) -> None:
        if self.states is not None:
            self.states.append(x)

    def result(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        return x if self.states is None else (x, torch.stack(self.states))


def sampling_grid(denoiser, steps, t_start=None) -> torch.Tensor:
    """The decreasing times a discrete-step sampler visits: the process's ``time_grid``.

    On a schedule ``steps`` may be None (every step), an int or explicit steps; in continuous time it
    is a required number of steps.
    """
    process = denoiser.process
    if process.discrete:
        return process.time_grid(steps, start=t_start)
    if steps is None:
        raise ValueError("steps is required in continuous time (a number of steps from t = 1)")
    return process.time_grid(check_int("steps", steps, 1), start=t_start)
