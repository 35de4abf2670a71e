"""L2-penalised logistic regression in torch, the objective of scikit-learn's LogisticRegression(C) with its lbfgs
solver: minimise C * sum_i loss_i + ||W||^2 / 2 (the intercept not penalised), the loss the binomial log-loss of
one weight vector for two classes and the multinomial (softmax) log-loss of one vector per class otherwise. Convex,
so L-BFGS in float64 (ours, `lbfgs`) reaches the same optimum (tests/test_logistic.py checks coefficients and
predictions against scikit-learn's); it spares a run's final evaluation scikit-learn's ~1 s import and torch.optim's
import of torch._dynamo, ~1.8 s (benchmarks/time_startup.py)."""

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
    features = x.shape[1]

    def unpack(theta: Tensor) -> tuple[Tensor, Tensor]:  # flat: the weights (F, outputs), then the biases (outputs,)
        return theta[: features * outputs].view(features, outputs), theta[features * outputs :]

    def objective(theta: Tensor) -> Tensor:
        weight, bias = unpack(theta)
        scores = z @ weight + bias
        if outputs == 1:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(scores[:, 0], target.double(), reduction="sum")
        else:
            loss = torch.nn.functional.cross_entropy(scores, target, reduction="sum")
        return (c * loss + 0.5 * weight.pow(2).sum()) / len(z)  # divided by N: the same optimum, better scaled

    weight, bias = unpack(lbfgs(objective, torch.zeros((features + 1) * outputs, dtype=x.dtype), max_iter))
    return Logistic(classes, weight, bias, centre, scale)


def _value_and_grad(f, theta: Tensor) -> tuple[float, Tensor]:
    theta = theta.detach().requires_grad_(True)
    with torch.enable_grad():
        value = f(theta)
        (grad,) = torch.autograd.grad(value, theta)
    return value.item(), grad


def _direction(grad: Tensor, pairs: list[tuple[Tensor, Tensor]]) -> Tensor:
    """-H grad, H the L-BFGS inverse-Hessian estimate from the (step, gradient change) pairs (two-loop recursion,
    Nocedal & Wright 2006, Algorithm 7.4)."""
    q, alphas = grad.clone(), []
    for s, y in reversed(pairs):
        alphas.append((s @ q) / (y @ s))
        q -= alphas[-1] * y
    if pairs:
        s, y = pairs[-1]
        q *= (s @ y) / (y @ y)
    for (s, y), alpha in zip(pairs, reversed(alphas)):
        q += s * (alpha - (y @ q) / (y @ s))
    return -q


def lbfgs(f, theta: Tensor, max_iter: int, tol_grad: float = 1e-9, tol_change: float = 1e-12, history: int = 20):
    """The minimiser of the smooth convex f (a tensor -> scalar tensor) from `theta`: L-BFGS with a backtracking
    (Armijo) line search, stopped when the largest gradient entry is below `tol_grad` or f changes by less than
    `tol_change` (torch.optim.LBFGS's tolerances; it is not used because torch.optim imports torch._dynamo on first
    use, 1.8 s of every run's final evaluation)."""
    value, grad = _value_and_grad(f, theta)
    pairs: list[tuple[Tensor, Tensor]] = []
    for _ in range(max_iter):
        if grad.abs().max() <= tol_grad:
            break
        d = _direction(grad, pairs)
        slope = (grad @ d).item()
        t = 1.0 if pairs else min(1.0, 1.0 / grad.abs().sum().item())
        while True:
            new_value, new_grad = _value_and_grad(f, theta + t * d)
            if new_value <= value + 1e-4 * t * slope or t < 1e-12:
                break
            t /= 2
        s, y = t * d, new_grad - grad
        if (s @ y) > 1e-12 * (y @ y):  # curvature seen along the step (always, for strictly convex f)
            pairs = [*pairs[-(history - 1) :], (s, y)]
        done = abs(new_value - value) < tol_change
        theta, value, grad = theta + s, new_value, new_grad
        if done:
            break
    return theta.detach()
