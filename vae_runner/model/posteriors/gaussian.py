"""posterior=gaussian (the default): q(z|x) = N(mu(x), diag(exp(logvar(x)))), the encoder's outputs read as
(mu, logvar)."""

from __future__ import annotations

import torch
import torch.distributions as td
from torch import Tensor

from vae_runner.model.posteriors.base import Draws, Posterior
from vae_runner.model.priors.mixture import mixture_log_prob


def diagonal_normal(mu: Tensor, logvar: Tensor) -> td.Normal:
    """N(mu, diag(exp(logvar))) per dimension, the one copy of this parameterisation."""
    return td.Normal(mu, torch.exp(0.5 * logvar), validate_args=False)


class DiagonalGaussian(td.Independent, Draws):
    """td.Independent(Normal) (its own draws) with the contract's additions; `logvar` kept as the encoder gave it."""

    def __init__(self, mu: Tensor, logvar: Tensor):
        super().__init__(diagonal_normal(mu, logvar), 1, validate_args=False)
        self.logvar = logvar
        self.noise_dim = mu.shape[-1]

    def from_noise(self, eps: Tensor) -> Tensor:
        return self.base_dist.loc + self.base_dist.scale * eps

    def marginal(self) -> td.Normal:
        return self.base_dist

    def components(self) -> tuple[Tensor, Tensor, None]:
        return self.base_dist.loc.unsqueeze(-2), self.logvar.unsqueeze(-2), None

    def aggregate_log_prob(self, z: Tensor) -> Tensor:
        return torch.cat([mixture_log_prob(c, self.base_dist.loc, self.logvar) for c in z.split(1024)])


class GaussianPosterior(Posterior):
    @property
    def outputs(self) -> int:
        return 2 * self.latent_dim

    def forward(self, params: Tensor) -> DiagonalGaussian:
        mu, logvar = params.chunk(2, dim=-1)
        return DiagonalGaussian(mu, logvar)
