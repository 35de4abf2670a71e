"""The training terms between two host syncs: `RunningWindow` sums each step's batch-mean terms and gradient norm on
the device and records the first step at which each went non-finite, so the trainer reads the device only every
`trainer.log_every` steps (one `.tolist()`), and a divergence is still named with its step and term."""

from __future__ import annotations

import torch


class RunningWindow:
    """The step terms' running sums since the last host sync, and the step at which each term first went non-finite
    (-1: never), both kept on the device; `progress` is the last step's (epoch fraction, step) for warm-up."""

    def __init__(self):
        self.names: list[str] = []
        self.sums: torch.Tensor | None = None
        self.n = 0
        self.first_bad: torch.Tensor | None = None  # kept across windows: a bad step is reported once read
        self.progress: tuple[float, int] | None = None

    def add(self, names: list[str], means: torch.Tensor, step: int, progress: tuple[float, int]) -> None:
        self.names = names
        self.progress = progress
        bad = ~torch.isfinite(means)  # (T,)
        if self.first_bad is None:
            self.first_bad = torch.where(bad, step, -1)
        else:
            self.first_bad = torch.where((self.first_bad < 0) & bad, step, self.first_bad)
        self.sums = means if self.sums is None else self.sums + means
        self.n += 1

    def restart(self) -> None:
        """After a host sync: new sums (the non-finite record stays)."""
        self.sums = None
        self.n = 0


def grad_norm(params) -> torch.Tensor:
    """The gradients' global L2 norm, one kernel on CPU too (logged as train/grad_norm when there is no clipping)."""
    grads = [p.grad for p in params if p.grad is not None]
    return torch.nn.utils.get_total_norm(grads, foreach=True) if grads else torch.zeros(())
