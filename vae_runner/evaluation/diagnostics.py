"""Why a model is good or poor, beyond its ELBO: posterior collapse and hole diagnostics, and representation
quality. Every function takes the posteriors of a split (one encoder pass, `encode_split`) or their means.

- active units (Burda et al. 2016): dimension d is active when Cov_x(E_q[z_d]) > threshold (0.01);
- KL per latent dimension: E_x KL(q(z_d|x) || p(z_d)) between the marginals of d (the prior's closed form
  where it has one, e.g. the Gaussian prior with a Gaussian posterior; Monte Carlo for mixtures; none for the flows
  (prior=flow, posterior=iaf), whose marginals have no closed form);
- ELBO surgery (Hoffman & Johnson 2016): E_x KL(q(z|x) || p(z)) = I_q(x; z) + KL(q(z) || p(z)) with q(z) the
  aggregate posterior, estimated on a held-out subset of M points where q(z) is the uniform mixture of their M
  posteriors (so the I_q estimate is at most log M); not for posterior=iaf, whose density at other examples' draws
  needs an inversion of the flow per pair;
- linear probe: logistic regression on standardised training posterior means, accuracy on the test means;
- triplet accuracy (TVAE, Ishfaq et al. 2018): over fixed random test triplets (anchor and positive of one class,
  negative of another), how often the anchor is closer to the positive than to the negative in mean space.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.distributions as td
from torch import Tensor

from vae_runner.data import Split, eval_batches
from vae_runner.evaluation.logistic import fit_logistic
from vae_runner.rng import seeded

TRIPLET_SEED = 0  # the same triplets for every run


@torch.no_grad()
def encode_params(model, split: Split, batch_size: int = 1000, limit: int | None = None) -> Tensor:
    """The encoder's outputs (N, posterior.outputs) for the first `limit` examples (all by default);
    `model.variational(params)` is their q(z|x), `model.variational(params[:m])` the first m's."""
    params = []
    n = len(split) if limit is None else min(limit, len(split))
    for x, _ in eval_batches(Split(split.x[:n]), batch_size):
        params.append(model.encode(x))
    return torch.cat(params)


def encode_split(model, split: Split, batch_size: int = 1000, limit: int | None = None) -> td.Distribution:
    """q(z|x) of the first `limit` examples as one posterior of batch shape (N,) (the contract of
    model/posteriors/base.py: its `mean` is the point code)."""
    return model.variational(encode_params(model, split, batch_size, limit))


def active_units(mu: Tensor, threshold: float = 0.01) -> tuple[Tensor, list[int]]:
    """Per-dimension activity Cov_x(E_q[z_d]) (D,) and the active dimensions, most active first."""
    activity = mu.var(0, correction=1 if len(mu) > 1 else 0)  # (D,) unbiased variance over examples (0 for one)
    order = torch.argsort(activity, descending=True)
    return activity, [int(d) for d in order if activity[d] > threshold]


@torch.no_grad()
def mean_kl_per_dim(prior, q: td.Distribution, samples: int = 16, seed: int = 0) -> Tensor | None:
    """E_x KL(q(z_d|x) || p(z_d)) per dimension (D,) between q's marginals and the prior's: the prior's closed form
    (`analytic_kl_per_dim`) for Normal marginals where it has one, else E_q[log q(z_d|x) - log p(z_d)] by Monte
    Carlo (`samples` draws per example); None when the prior or the posterior has no closed-form marginals. For a
    factorised prior and posterior these sum to the average KL."""
    marginal = q.marginal()
    if marginal is None:
        return None
    closed = prior.analytic_kl_per_dim(marginal) if isinstance(marginal, td.Normal) else None
    if closed is not None:
        return closed.mean(0)  # (D,)
    with seeded(marginal.mean.device, seed):
        z = marginal.sample((samples,))  # (S, N, D)
    rows = [prior.marginal_log_prob(c) for c in z.flatten(0, 1).split(4096)]
    if rows[0] is None:
        return None
    return (marginal.log_prob(z) - torch.cat(rows).view_as(z)).mean((0, 1))  # (D,)


@torch.no_grad()
def elbo_surgery(prior, q: td.Distribution, samples: int = 8, seed: int = 0) -> dict[str, float] | None:
    """Average KL, I_q(x; z) and KL(q(z) || p(z)) on the given M posteriors (one estimator, the same z draws, so
    avg_kl = mutual_information + marginal_kl holds exactly; the Gaussian prior's avg_kl is also in closed form).
    None when the posterior's aggregate has no cheap density (posteriors/base.py)."""
    m = q.batch_shape[0]
    with seeded(q.mean.device, seed):
        z = q.sample((samples,))  # (S, M, D)
    flat = z.flatten(0, 1)  # (S*M, D)
    log_q_agg = q.aggregate_log_prob(flat)  # uniform over the M
    if log_q_agg is None:
        return None
    log_q_cond = q.log_prob(z).flatten()  # (S*M,) log q(z | its own x)
    log_prior = prior.log_prob_fn()  # the prior's parameters once, not per chunk
    log_p = torch.cat([log_prior(c) for c in flat.split(4096)])
    avg_kl = (log_q_cond - log_p).mean().item()
    mi = (log_q_cond - log_q_agg).mean().item()
    marg = (log_q_agg - log_p).mean().item()
    return {
        "avg_kl": avg_kl,
        "mutual_information": mi,
        "marginal_kl": marg,
        "points": m,
        "samples": samples,
        "mutual_information_bound": math.log(m),
    }


def linear_probe_accuracy(train_mu: Tensor, train_y: Tensor, test_mu: Tensor, test_y: Tensor) -> float:
    """Standardised codes, L2-penalised logistic regression with C = 1 (scikit-learn's defaults, solved to its
    optimum: evaluation/logistic.py), accuracy on the test codes."""
    return fit_logistic(train_mu, train_y, standardise=True).accuracy(test_mu, test_y)


def fixed_triplets(y: Tensor, n: int, seed: int = TRIPLET_SEED) -> Tensor:
    """(n, 3) indices (anchor, positive, negative): anchor and positive of one class (distinct), negative not."""
    rng = np.random.default_rng(seed)
    labels = y.cpu().numpy()
    by_class = {c: np.flatnonzero(labels == c) for c in np.unique(labels)}
    classes = [c for c, idx in by_class.items() if len(idx) >= 2]
    if not classes or len(by_class) < 2:
        return torch.empty(0, 3, dtype=torch.long)
    others = {c: np.flatnonzero(labels != c) for c in classes}
    out = np.empty((n, 3), dtype=np.int64)
    for i in range(n):
        c = classes[rng.integers(len(classes))]
        out[i, :2] = rng.choice(by_class[c], 2, replace=False)
        out[i, 2] = others[c][rng.integers(len(others[c]))]
    return torch.from_numpy(out)


def triplet_accuracy(mu: Tensor, triplets: Tensor) -> float:
    a = mu[triplets[:, 0]]
    p = mu[triplets[:, 1]]
    n = mu[triplets[:, 2]]
    return ((a - p).norm(dim=1) < (a - n).norm(dim=1)).double().mean().item()
