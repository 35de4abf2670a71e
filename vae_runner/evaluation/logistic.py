"""L2-penalised logistic regression in torch, the objective of scikit-learn's LogisticRegression(C) with its lbfgs
solver: minimise C * sum_i loss_i + ||W||^2 / 2 (the intercept not penalised), the loss the binomial log-loss of
one weight vector for two classes and the multinomial (softmax) log-loss of one vector per class otherwise. Convex,
so L-BFGS in float64 reaches the same optimum (tests/test_logistic.py checks coefficients and predictions against
scikit-learn's); it spares a run's final evaluation scikit-learn's ~1 s import (benchmarks/time_startup.py)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Logistic:
    classes: Tensor  # (K,) the labels, sorted
    weight: Tensor  # (F, 1) for two classes, (F, K) otherwise
    bias: Tensor  # (1,) or (K,)
    centre: Tensor  # (F,) standardisation (zeros and ones when none)
    scale: Tensor

    def predict(self, x: Tensor) -> Tensor:
        scores = ((x.double() - self.centre) / self.scale) @ self.weight + self.bias
        pick = (scores[:, 0] > 0).long() if len(self.classes) == 2 else scores.argmax(1)
        return self.classes[pick]

    def accuracy(self, x: Tensor, y: Tensor) -> float:
        return (self.predict(x) == y.to(self.classes.device)).double().mean().item()


def fit_logistic(x: Tensor, y: Tensor, c: float = 1.0, standardise: bool = False, max_iter: int = 2000) -> Logistic:
    """x (N, F), y (N,) labels; `standardise`: scale each column to mean 0 and standard deviation 1 first (that of the
    training rows, scikit-learn's StandardScaler; constant columns left unscaled)."""
    x, y = x.detach().double().cpu(), y.detach().cpu()
    centre, scale = torch.zeros(x.shape[1], dtype=x.dtype), torch.ones(x.shape[1], dtype=x.dtype)
    if standardise:
        centre, sd = x.mean(0), x.std(0, unbiased=False)
        scale = torch.where(sd > 0, sd, torch.ones_like(sd))
    z = (x - centre) / scale
    classes, target = torch.unique(y, return_inverse=True)
    outputs = 1 if len(classes) == 2 else len(classes)
    weight = torch.zeros(x.shape[1], outputs, dtype=x.dtype, requires_grad=True)
    bias = torch.zeros(outputs, dtype=x.dtype, requires_grad=True)
    solver = torch.optim.LBFGS(
        [weight, bias],
        lr=1,
        max_iter=max_iter,
        tolerance_grad=1e-9,
        tolerance_change=1e-12,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def objective() -> Tensor:
        solver.zero_grad()
        scores = z @ weight + bias
        if outputs == 1:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(scores[:, 0], target.double(), reduction="sum")
        else:
            loss = torch.nn.functional.cross_entropy(scores, target, reduction="sum")
        total = (c * loss + 0.5 * weight.pow(2).sum()) / len(z)  # divided by N: the same optimum, better scaled
        total.backward()
        return total

    solver.step(objective)
    return Logistic(classes, weight.detach(), bias.detach(), centre, scale)
