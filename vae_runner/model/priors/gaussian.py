"""The standard Gaussian prior N(0, I), with the closed-form KL to a Gaussian posterior."""

from __future__ import annotations

import math

import torch
import torch.distributions as td
from torch import Tensor

from vae_runner.model.priors.base import Prior


class GaussianPrior(Prior):
    def __init__(self, latent_dim: int):
        super().__init__(latent_dim)
        self.register_buffer("loc", torch.zeros(latent_dim))
        self.register_buffer("scale", torch.ones(latent_dim))

    def distribution(self) -> td.Distribution:
        return td.Independent(td.Normal(self.loc, self.scale, validate_args=False), 1, validate_args=False)

    def log_prob(self, z: Tensor) -> Tensor:
        return self.distribution().log_prob(z)  # (B,)

    def sample(self, n: int) -> Tensor:
        return self.distribution().sample((n,))  # (n, D)

    def marginal_log_prob(self, z: Tensor) -> Tensor:
        return td.Normal(self.loc, self.scale, validate_args=False).log_prob(z)  # (B, D)

    def analytic_kl_per_dim(self, q_base: td.Normal) -> Tensor:
        return td.kl_divergence(q_base, td.Normal(self.loc, self.scale, validate_args=False))  # (B, D)

    def analytic_kl(self, q: td.Distribution) -> Tensor | None:
        """KL(q || N(0, I)) (B,) for Gaussian posteriors: torch's closed form for the diagonal one; for one with a
        covariance, -H(q) - E_q log N(z; 0, I) = 0.5 (tr Sigma + |mu|^2 + D log 2 pi) - H(q); None for the rest."""
        if isinstance(q, td.Independent):
            return td.kl_divergence(q, self.distribution())  # (B,)
        if isinstance(q, td.MultivariateNormal | td.LowRankMultivariateNormal):
            d = q.event_shape[-1]
            return 0.5 * (q.variance.sum(-1) + q.mean.pow(2).sum(-1) + d * math.log(2 * math.pi)) - q.entropy()
        return None
