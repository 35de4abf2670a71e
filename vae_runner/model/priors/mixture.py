"""The one mixture of diagonal Gaussians every mixture prior (MoG, VampPrior, GTM, GTM-VampPrior) is built on.

log p(z) = logsumexp_k [ log w_k + log N(z; mu_k, diag(exp(logvar_k))) ], where each component's log-density is
summed over the latent dimensions *before* the log-sum-exp over components (a mixture of diagonal Gaussians, not a
product of 1-D mixtures). It is `torch.distributions.MixtureSameFamily` over `Independent(Normal, 1)` (used for
sampling, and as the oracle in the tests); `mixture_log_prob` computes the same density without the (B, K, D)
intermediate, so K = 1000 components cost three small matrix products.
"""

from __future__ import annotations

import math

import torch
import torch.distributions as td
from torch import Tensor

from vae_runner.model.priors.base import Prior


def diagonal_mixture(means: Tensor, logvars: Tensor, logits: Tensor | None = None) -> td.MixtureSameFamily:
    """means, logvars: (K, D); logits: (K,) unnormalised log-weights, uniform when None."""
    if logits is None:
        logits = torch.zeros(means.shape[0], device=means.device, dtype=means.dtype)
    components = td.Independent(td.Normal(means, torch.exp(0.5 * logvars), validate_args=False), 1, validate_args=False)
    return td.MixtureSameFamily(td.Categorical(logits=logits, validate_args=False), components, validate_args=False)


def mixture_log_prob(z: Tensor, means: Tensor, logvars: Tensor, logits: Tensor | None = None) -> Tensor:
    """log p(z) (B,) for z (B, D), means and logvars (K, D), logits (K,) (uniform when None); with leading dims
    (a batched sweep's member axis: z (M, B, D), means (M, K, D), logits (M, K)) one mixture per leading index.

    The Mahalanobis term sum_d (z_d - mu_kd)^2 / var_kd is expanded into z^2 @ prec^T - 2 z @ (mu prec)^T +
    sum_d mu^2 prec: (B, K) matrix products instead of a (B, K, D) tensor. It is computed in float64, where the
    expansion loses nothing that matters (float32 would cancel badly for small variances far from the origin).
    """
    z64 = z.double()
    mu = means.double()
    lv = logvars.double()
    prec = torch.exp(-lv)  # (K, D)
    quad = (z64 * z64) @ prec.mT - 2.0 * z64 @ (mu * prec).mT + (mu * mu * prec).sum(-1)[..., None, :]  # (B, K)
    log_norm = -0.5 * (lv.sum(-1) + z.shape[-1] * math.log(2 * math.pi))[..., None, :]  # (1, K)
    log_w = torch.log_softmax(logits.double(), -1)[..., None, :] if logits is not None else -math.log(means.shape[-2])
    return torch.logsumexp(log_w + log_norm - 0.5 * quad, dim=-1).to(z.dtype)  # (B,)


class MixturePrior(Prior):
    """A prior whose density is a diagonal Gaussian mixture; subclasses say how its parameters are made."""

    def mixture_params(self) -> tuple[Tensor, Tensor, Tensor | None]:
        """(means (K, D), logvars (K, D), logits (K,) or None for uniform weights)."""
        raise NotImplementedError

    def distribution(self) -> td.MixtureSameFamily:
        return diagonal_mixture(*self.mixture_params())

    def log_prob(self, z: Tensor) -> Tensor:
        return mixture_log_prob(z, *self.mixture_params())  # (B,)

    def log_prob_fn(self):
        params = self.mixture_params()  # e.g. the VampPrior's K encoder passes, done once
        return lambda z: mixture_log_prob(z, *params)

    def marginal_log_prob(self, z: Tensor) -> Tensor:
        """Dimension d's marginal is the 1-D mixture with the same weights: log-sum-exp over components per
        dimension (right for a marginal; summing these over d would *not* give log p(z))."""
        means, logvars, logits = self.mixture_params()
        k = means.shape[-2]
        log_w = (
            torch.log_softmax(logits, -1)
            if logits is not None
            else torch.full((k,), -math.log(k), device=z.device, dtype=z.dtype)
        )
        normal = td.Normal(means[..., None, :, :], torch.exp(0.5 * logvars[..., None, :, :]), validate_args=False)
        comp = normal.log_prob(z[..., :, None, :])  # (B, K, D); leading dims (a member axis) kept
        return torch.logsumexp(comp + log_w[..., None, :, None], dim=-2)  # (B, D)

    def sample(self, n: int) -> Tensor:
        return self.distribution().sample((n,))  # (n, D)
