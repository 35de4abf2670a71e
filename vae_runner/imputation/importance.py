"""The model's imputations of missing entries (NaN): what `mode=impute`, `Run.impute` and the final evaluation's
imputation scores all use.

For each row, K proposals z_k ~ q(z | x_obs) get self-normalised importance weights
w_k ∝ p(x_obs | z_k) p(z_k) / q(z_k | x_obs) (MIWAE's, Mattei & Frellsen 2019), and
- the single imputation is E[x_mis | x_obs] ≈ sum_k w_k E[x_mis | z_k];
- M multiple imputations are sampling-importance-resampling draws: k ~ Categorical(w), then x ~ p(x | z_k), so
  their spread is the model's uncertainty about the missing entries given the observed ones;
- the conditional log-likelihood log p(x_mis | x_obs) ≈ log sum_k w_k p(x_mis | z_k), nats per row in the table's
  standardised units (consistent as K grows; the same K proposals as the imputations).
"""

from __future__ import annotations

import torch
from torch import Tensor

from vae_runner.rng import seeded


@torch.no_grad()
def importance_imputations(
    model, x: Tensor, truth: Tensor, samples: int, draws: int, seed: int, chunk_rows: int = 100_000
) -> tuple[Tensor, Tensor, Tensor]:
    """x (N, *shape) with NaN for missing entries, truth (N, *shape) -> the single imputation (N, *shape), `draws`
    multiple imputations (M, N, *shape) and log p(x_mis | x_obs) per row (N,); truth None (unknown): no
    log-likelihood (None). Observed entries are returned as they are."""
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
                hidden_only = torch.where(missing, tb, torch.full_like(tb, float("nan")))  # the truth's missing part
                log_mis = p.log_prob(hidden_only.expand(samples, *tb.shape).flatten(0, 1)).view(samples, n)
                conditional.append(torch.logsumexp(log_w + log_mis, dim=0))
            weights = log_w.exp().view(samples, n, *[1] * (xb.dim() - 1))
            mean = (weights * p.mean.view(samples, *xb.shape)).sum(0)
            means.append(torch.where(missing, mean, xb))
            pick = torch.multinomial(log_w.exp().T, draws, replacement=True)  # (n, M) indices of proposals
            z_pick = z[pick.T, torch.arange(n, device=x.device)]  # (M, n, D)
            drawn = model.decode(z_pick.flatten(0, 1)).sample().view(draws, *xb.shape)
            multiple.append(torch.where(missing, drawn, xb))
    model.train(was_training)
    return torch.cat(means), torch.cat(multiple, dim=1), torch.cat(conditional) if conditional else None
