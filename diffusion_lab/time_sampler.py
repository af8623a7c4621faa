"""Importance sampling of the time step for the bound L_vlb (Nichol & Dhariwal 2021, Sec. 3.3, Eq. 18).

L_vlb = Σ_t L_t is estimated from one t per example. Drawn uniformly, T · L_t is unbiased but very
noisy, because a few early terms are orders of magnitude larger than the rest. Drawing t with
p_t ∝ √E[L_t²] and weighting by 1/(T p_t) keeps the estimate unbiased, E_p[T L_t / (T p_t)] = Σ_t L_t,
and makes its variance much smaller. E[L_t²] is a running mean of the last ``history`` values
seen at each t; until every t has that many the sampler stays uniform (weights 1), and it always
mixes in a little uniform probability so that no step is starved.
"""

from __future__ import annotations

import torch

from .validation import check_float, check_int, check_tensor


class ImportanceTimeSampler:
    """Draws steps t in 1..T with p_t ∝ √E[L_t²] once every t has ``history`` recorded losses.

    Args:
        T: the schedule's number of steps.
        history: losses kept per step (the paper keeps 10).
        uniform: the weight of the uniform distribution mixed into p (0.001 in the paper's code).
    """

    def __init__(self, T: int, *, history: int = 10, uniform: float = 0.001) -> None:
        self.T = check_int("T", T, 1)
        self.history = check_int("history", history, 1)
        self.uniform = check_float("uniform", uniform, 0.0, 1.0, low_open=True)
        self._squares = torch.zeros(self.T, self.history, dtype=torch.float64)  # row t − 1: last L_t² values
        self._counts = torch.zeros(self.T, dtype=torch.long)

    @property
    def warm(self) -> bool:
        """Whether every step has ``history`` losses, so that p is no longer uniform."""
        return bool((self._counts >= self.history).all())

    def probabilities(self) -> torch.Tensor:
        """p_t for t = 1..T, float64 ``(T,)``."""
        if not self.warm:
            return torch.full((self.T,), 1.0 / self.T, dtype=torch.float64)
        p = self._squares.mean(1).sqrt()
        p = p / p.sum()
        return (1.0 - self.uniform) * p + self.uniform / self.T

    def sample(self, batch: int, generator: torch.Generator | None = None,
               device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """Steps t ``(B,)`` (long) and their weights 1/(T p_t) ``(B,)`` (float32) for a batch of size ``batch``."""
        batch = check_int("batch", batch, 1)
        p = self.probabilities()
        index = torch.multinomial(p.to(device), batch, replacement=True, generator=generator)
        weights = (1.0 / (self.T * p.to(device)[index])).float()
        return index + 1, weights

    def update(self, t: torch.Tensor, losses: torch.Tensor) -> None:
        """Record the per-example losses L_t (any fixed multiple of them) at steps t ``(B,)``."""
        check_tensor("losses", losses, floating=True, finite=True)
        if t.shape != losses.shape:
            raise ValueError(f"t and losses must have the same shape, got {tuple(t.shape)} and {tuple(losses.shape)}")
        for step, loss in zip(t.tolist(), losses.detach().double().cpu().tolist()):
            row = step - 1
            self._squares[row, self._counts[row] % self.history] = loss**2
            self._counts[row] += 1
