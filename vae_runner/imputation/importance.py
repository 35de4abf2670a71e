"""The model's imputations of missing entries (NaN): what `mode=impute`, `Run.impute` and the final evaluation's
imputation scores all use.

For each row, K proposals z_k ~ q(z | x_obs) get self-normalised importance weights
w_k ∝ p(x_obs | z_k) p(z_k) / q(z_k | x_obs) (MIWAE's, Mattei & Frellsen 2019), and
- the single imputation is E[x_mis | x_obs] ≈ sum_k w_k E[x_mis | x_obs, z_k];
- M multiple imputations are sampling-importance-resampling draws: k ~ Categorical(w), then
  x_mis ~ p(x_mis | x_obs, z_k), so their spread is the model's uncertainty about the missing entries given the
  observed ones;
- the conditional log-likelihood log p(x_mis | x_obs) ≈ log sum_k w_k p(x_mis | x_obs, z_k), nats per row in the table's
  standardised units (consistent as K grows; the same K proposals as the imputations).
Where p(x|z)'s entries are independent (every likelihood but correlated_gaussian), p(x_mis | x_obs, z) = p(x_mis | z).

These M draws are *improper*: they hold the model's parameters at their fitted values. `proper_imputations`
(evaluation.imputation.proper=true) draws each imputation under its own posterior draw of the likelihood's
parameters, so that an analysis pooled by Rubin's rules carries their estimation error too.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vae_runner.errors import UserError
from vae_runner.rng import seeded


@torch.no_grad()
def importance_imputations(
    model,
    x: Tensor,
    truth: Tensor,
    samples: int,
    draws: int,
    seed: int,
    chunk_rows: int = 100_000,
    single: bool = True,
) -> tuple[Tensor | None, Tensor, Tensor | None]:
    """x (N, *shape) with NaN for missing entries, truth (N, *shape) -> the single imputation (N, *shape), `draws`
    multiple imputations (M, N, *shape) and log p(x_mis | x_obs) per row (N,); truth None (unknown): no
    log-likelihood (None); single=False: no single imputation (None; the draws as with it). Observed entries are
    returned as they are."""
    was_training = model.training
    model.eval()
    means = []
    multiple = []
    conditional = []
    rows = max(1, chunk_rows // samples)
    with seeded(x.device, seed):
        for start in range(0, len(x), rows):
            xb = x[start : start + rows]
            n, missing = len(xb), torch.isnan(xb)
            q = model.posterior(xb)
            z = q.rsample((samples,))  # (K, n, D)
            p = model.decode(z.flatten(0, 1))  # batch K * n, event the row
            log_obs = p.log_prob(xb.expand(samples, *xb.shape).flatten(0, 1)).view(samples, n)
            log_w = log_obs + model.prior.log_prob(z.flatten(0, 1)).view(samples, n) - q.log_prob(z)  # (K, n)
            log_w = torch.log_softmax(log_w, dim=0)
            if truth is not None:
                tb = truth[start : start + rows]
                known = torch.where(missing, tb, xb)  # the observed entries and the truth's hidden ones
                log_all = p.log_prob(known.expand(samples, *tb.shape).flatten(0, 1)).view(samples, n)
                conditional.append(torch.logsumexp(log_w + log_all - log_obs, dim=0))  # log p(x_mis | x_obs, z_k)
            if single:
                weights = log_w.exp().view(samples, n, *[1] * (xb.dim() - 1))
                mean = conditional_mean(p, xb.expand(samples, *xb.shape).flatten(0, 1)).view(samples, *xb.shape)
                means.append(torch.where(missing, (weights * mean).sum(0), xb))
            pick = torch.multinomial(log_w.exp().T, draws, replacement=True)  # (n, M) indices of proposals
            z_pick = z[pick.T, torch.arange(n, device=x.device)]  # (M, n, D)
            drawn = conditional_sample(model.decode(z_pick.flatten(0, 1)), xb.expand(draws, *xb.shape).flatten(0, 1))
            multiple.append(torch.where(missing, drawn.view(draws, *xb.shape), xb))
    model.train(was_training)
    return (
        torch.cat(means) if single else None,
        torch.cat(multiple, dim=1),
        torch.cat(conditional) if conditional else None,
    )


def conditional_mean(p, x: Tensor) -> Tensor:
    """E[x | x_obs, z] under p(x|z): its mean where the entries are independent given z, the correlated likelihood's
    conditional mean where they are not (model/correlated_gaussian.py)."""
    return p.conditional_mean(x) if hasattr(p, "conditional_mean") else p.mean


def conditional_sample(p, x: Tensor) -> Tensor:
    """One draw from p(x_mis | x_obs, z) per row (a draw of p(x|z) where its entries are independent given z)."""
    return p.conditional_sample(x) if hasattr(p, "conditional_sample") else p.sample()


def proper_imputations(model, x: Tensor, train: Tensor, samples: int, draws: int, seed: int) -> Tensor:
    """M = `draws` proper multiple imputations of x (M, N, *shape): each drawn by the estimator above from p(x|z)
    under its own draw of the likelihood's parameters given the training rows `train` (`likelihood.parameter_draws`:
    correlated_gaussian's covariance and mean, from their posterior under a multivariate normal by data
    augmentation), so that the M carry the estimation error of those parameters as well as p(x_mis | x_obs)
    ("proper" in Rubin's sense, as R mice's norm draws its regression parameters per imputation). Imputation m's
    proposals are drawn from their own seed."""
    if not hasattr(model.likelihood, "parameter_draws"):
        raise UserError(
            f"evaluation.imputation.proper=true draws the likelihood's parameters per imputation, which this model's "
            f"{type(model.likelihood).__name__} cannot (likelihood=correlated_gaussian on a table can): impute with "
            f"evaluation.imputation.proper=false, or with a bootstrap ensemble (mode=impute ckpt=<sweep directory>)."
        )
    drawn = []
    for m, parameters in enumerate(model.likelihood.parameter_draws(train, draws, seed)):
        with model.likelihood.drawn(parameters):
            seed_m = (seed * 65_537 + m + 1) % 2**63
            drawn.append(importance_imputations(model, x, None, samples, 1, seed_m, single=False)[1])
    return torch.cat(drawn)
