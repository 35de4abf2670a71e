"""Penalties on a batch's codes that target disentanglement, added to the loss by the objective (objectives.py), and
the cyclical KL schedule. Each takes the batch's samples z (B, D) and Gaussian posterior parameters (B, D).

- total correlation TC = KL(q(z) || prod_d q(z_d)) (beta-TCVAE, Chen et al. 2018), per example i:
  log q(z_i) - sum_d log q(z_i,d), with q(z) = (1/N) sum_n q(z|x_n) estimated from the batch. `mws` (minibatch
  weighted sampling) weighs every batch member 1/B; `mss` (minibatch stratified sampling) weighs the example itself
  1/N, one other member (N - M)/(N M) and the remaining M - 1 members 1/M, with M = B - 1. Both weightings sum to 1
  per row, so the reported TC estimates the TC (Chen et al.'s code subtracts log(B N) under mws: the same gradient,
  a value offset by (D - 1) log N);
- DIP-VAE (Kumar et al. 2018): lambda_od sum_{i != j} C_ij^2 + lambda_d sum_i (C_ii - 1)^2 with C the covariance of
  the posterior means (DIP-VAE-I) or of q(z), Cov[mu] + E[diag(sigma^2)] (DIP-VAE-II): q(z) pushed towards N(0, I);
- MMD (InfoVAE, Zhao et al. 2019): the unbiased squared maximum mean discrepancy between the batch's codes and as many
  prior samples, Gaussian kernel exp(-||a - b||^2 / (2 D));
- the cyclical KL weight (Fu et al. 2019): in each cycle of `cycle_epochs` epochs the weight rises linearly from
  `start` to beta over the first `ratio` of the cycle, then stays at beta.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

LOG_2PI = math.log(2 * math.pi)


def pairwise_log_density(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """(B, B, D): log N(z_i,d; mu_j,d, exp(logvar_j,d)) for every sample i and posterior j."""
    z, mu, logvar = z[:, None], mu[None], logvar[None]
    return -0.5 * (LOG_2PI + logvar + (z - mu).square() * torch.exp(-logvar))


def log_weights(batch: int, dataset_size: int, estimator: str, like: Tensor) -> Tensor:
    """(B, B) log w_ij of the estimator (rows sum to 1)."""
    if estimator == "mws":
        return torch.full((batch, batch), -math.log(batch), dtype=like.dtype, device=like.device)
    if estimator != "mss":
        raise ValueError(f"objective.tc_estimator={estimator}: choose mws or mss")
    n, m = dataset_size, batch - 1
    w = torch.full((batch, batch), 1.0 / m, dtype=torch.float64)
    rows = torch.arange(batch)
    w[rows, rows] = 1.0 / n  # the example itself
    w[rows, (rows + 1) % batch] = (n - m) / (n * m)  # one member stands for the part of the data outside the batch
    return w.log().to(like)


def total_correlation(z: Tensor, mu: Tensor, logvar: Tensor, dataset_size: int, estimator: str) -> Tensor:
    """(B,) each example's log q(z_i) - sum_d log q(z_i,d)."""
    log_q = pairwise_log_density(z, mu, logvar)  # (B, B, D)
    log_w = log_weights(len(z), dataset_size, estimator, z)  # (B, B)
    joint = torch.logsumexp(log_w + log_q.sum(-1), dim=1)  # (B,)
    marginals = torch.logsumexp(log_w[..., None] + log_q, dim=1).sum(-1)  # (B,)
    return joint - marginals


def dip_penalty(mu: Tensor, logvar: Tensor, kind: str, lambda_od: float, lambda_d: float) -> Tensor:
    """() the DIP-VAE-I (`i`) or -II (`ii`) regulariser of the batch."""
    centred = mu - mu.mean(0)
    cov = centred.T @ centred / len(mu)  # Cov[mu] (biased, as the paper's estimate)
    if kind == "ii":
        cov = cov + torch.diag(logvar.exp().mean(0))
    elif kind != "i":
        raise ValueError(f"objective.dip={kind}: choose none, i or ii")
    diag = torch.diagonal(cov)
    off = cov - torch.diag(diag)
    return lambda_od * off.square().sum() + lambda_d * (diag - 1).square().sum()


def mmd(a: Tensor, b: Tensor) -> Tensor:
    """() unbiased MMD^2 between samples a (B, D) and b (B', D), Gaussian kernel of bandwidth sqrt(D)."""
    scale = 2.0 * a.shape[-1]

    def mean_kernel(x: Tensor, y: Tensor, same: bool) -> Tensor:
        k = torch.exp(-torch.cdist(x, y).square() / scale)
        if not same:
            return k.mean()
        n = len(x)
        return (k.sum() - k.diagonal().sum()) / (n * (n - 1))

    return mean_kernel(a, a, True) + mean_kernel(b, b, True) - 2 * mean_kernel(a, b, False)


def cyclical_weight(beta: float, start: float, cycle_epochs: float, ratio: float, epoch: float) -> float:
    """The KL weight after `epoch` (fractional) epochs under the cyclical schedule."""
    into = (epoch % cycle_epochs) / cycle_epochs  # fraction of the current cycle done
    return start + (beta - start) * min(1.0, into / ratio)
