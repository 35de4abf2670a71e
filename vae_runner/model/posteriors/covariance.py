"""posterior=full and posterior=lowrank: a Gaussian q(z|x) = N(mu(x), Sigma(x)) with a learned covariance.

- full: Sigma = L L^T, L lower triangular with diagonal exp(logvar / 2) and D(D-1)/2 free entries below it
  (Cholesky factor straight from the encoder; any positive-definite covariance);
- lowrank: Sigma = W W^T + diag(exp(logvar)), W of shape (D, rank) (factor analysis; D(rank + 2) outputs).

Both are torch's own distributions (MultivariateNormal, LowRankMultivariateNormal) with the contract's additions;
their marginals q(z_d|x) = N(mu_d, Sigma_dd) are exact, and the Gaussian prior's KL is in closed form
(priors/gaussian.py).
"""

from __future__ import annotations

import torch
import torch.distributions as td
from torch import Tensor

from vae_runner.model.posteriors.base import Draws, Posterior


class CovarianceDraws(Draws):
    @property
    def noise_dim(self) -> int:
        return self.event_shape[-1]

    def marginal(self) -> td.Normal:
        return td.Normal(self.mean, self.variance.sqrt(), validate_args=False)

    def components(self) -> tuple[Tensor, Tensor, None]:
        """The diagonal Gaussian with q's exact marginals (the correlations left out)."""
        return self.mean.unsqueeze(-2), self.variance.log().unsqueeze(-2), None


class FullGaussian(CovarianceDraws, td.MultivariateNormal):
    def from_noise(self, eps: Tensor) -> Tensor:
        return self.loc + (self.scale_tril @ eps.unsqueeze(-1)).squeeze(-1)


class LowRankGaussian(CovarianceDraws, td.LowRankMultivariateNormal):
    """z = mu + W e_rank + sqrt(diag) e_D: noise of width D + rank (the first D entries for the diagonal part)."""

    @property
    def noise_dim(self) -> int:
        return self.event_shape[-1] + self.cov_factor.shape[-1]

    def from_noise(self, eps: Tensor) -> Tensor:
        d = self.event_shape[-1]
        wide = (self.cov_factor @ eps[..., d:].unsqueeze(-1)).squeeze(-1)
        return self.loc + wide + self.cov_diag.sqrt() * eps[..., :d]


class FullPosterior(Posterior):
    @property
    def outputs(self) -> int:
        d = self.latent_dim
        return 2 * d + d * (d - 1) // 2

    def forward(self, params: Tensor) -> FullGaussian:
        d = self.latent_dim
        mu, logvar, below = params[..., :d], params[..., d : 2 * d], params[..., 2 * d :]
        rows, cols = torch.tril_indices(d, d, -1, device=params.device)
        tril = torch.diag_embed(torch.exp(0.5 * logvar))
        tril[..., rows, cols] = below
        return FullGaussian(mu, scale_tril=tril, validate_args=False)


class LowRankPosterior(Posterior):
    def __init__(self, latent_dim: int, rank: int):
        super().__init__(latent_dim)
        self.rank = int(rank)

    @property
    def outputs(self) -> int:
        return self.latent_dim * (2 + self.rank)

    def forward(self, params: Tensor) -> LowRankGaussian:
        d = self.latent_dim
        mu, logvar, factor = params[..., :d], params[..., d : 2 * d], params[..., 2 * d :]
        factor = factor.unflatten(-1, (d, self.rank))
        return LowRankGaussian(mu, factor, torch.exp(logvar), validate_args=False)
