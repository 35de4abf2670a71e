"""The one mixture of diagonal Gaussians every mixture prior (MoG, VampPrior, GTM, GTM-VampPrior) is built on.

log p(z) = logsumexp_k [ log w_k + log N(z; mu_k, diag(exp(logvar_k))) ], where each component's log-density is
summed over the latent dimensions *before* the log-sum-exp over components (a mixture of diagonal Gaussians, not a
product of 1-D mixtures). It is `torch.distributions.MixtureSameFamily` over `Independent(Normal, 1)`.
"""
from __future__ import annotations

import torch
import torch.distributions as td
from torch import Tensor

from vae_runner.model.priors.base import Prior


def diagonal_mixture(means: Tensor, logvars: Tensor, logits: Tensor | None = None) -> td.MixtureSameFamily:
    """means, logvars: (K, D); logits: (K,) unnormalised log-weights, uniform when None."""
    if logits is None:
        logits = torch.zeros(means.shape[0], device=means.device, dtype=means.dtype)
    components = td.Independent(td.Normal(means, torch.exp(0.5 * logvars), validate_args=False), 1)
    return td.MixtureSameFamily(td.Categorical(logits=logits, validate_args=False), components,
                                validate_args=False)


class MixturePrior(Prior):
    """A prior whose density is a diagonal Gaussian mixture; subclasses say how its parameters are made."""

    def mixture_params(self) -> tuple[Tensor, Tensor, Tensor | None]:
        """(means (K, D), logvars (K, D), logits (K,) or None for uniform weights)."""
        raise NotImplementedError

    def distribution(self) -> td.MixtureSameFamily:
        return diagonal_mixture(*self.mixture_params())

    def log_prob(self, z: Tensor) -> Tensor:
        return self.distribution().log_prob(z)  # (B,)

    def sample(self, n: int) -> Tensor:
        return self.distribution().sample((n,))  # (n, D)
