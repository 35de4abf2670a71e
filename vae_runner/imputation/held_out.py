"""trainer.monitor=imputation: a validation score that measures what an imputer is for. A seeded share of each
validation row's observed entries is hidden from the model, and the score is the importance-sampled conditional
log-likelihood log p(x_held | x_rest) (imputation/importance.py), nats per held entry, in the table's standardised
units. It picks best.pt and drives early stopping in place of the validation ELBO, whose KL term favours a model
that ignores z (posterior collapse): such a model keeps the continuous columns' linear dependence through
correlated_gaussian's covariance but loses the discrete columns' links to the rest (a clinical table's sex and
smoking as predictors of blood pressure: docs/imputation.md, the clinical example)."""

from __future__ import annotations

import torch

from vae_runner.data import Split
from vae_runner.imputation.importance import importance_imputations

SHARE = 0.2  # of each validation row's observed entries held out
SAMPLES = 100  # K proposals per row


def held_out_mask(x: torch.Tensor, seed: int, share: float = SHARE) -> torch.Tensor:
    """A fixed (seeded) `share` of x's observed entries (not NaN), as a boolean mask of x's shape."""
    generator = torch.Generator().manual_seed(seed)
    draw = torch.rand(x.shape, generator=generator).to(x.device)
    return (draw < share) & ~torch.isnan(x)


def held_out_log_likelihood(model, split: Split, held: torch.Tensor, seed: int, samples: int = SAMPLES) -> float:
    """log p(x_held | x_rest) summed over the split's rows, per held entry: the split's `held` entries hidden, the
    rest (and the file's own holes, NaN) as they are."""
    x = split.x
    hidden = torch.where(held, torch.full_like(x, float("nan")), x)
    _, _, conditional = importance_imputations(model, hidden, x, samples, 1, seed, single=False)  # seeded there
    return float(conditional.sum() / held.sum().clamp(min=1))
