"""Joint posteriors q(z | the modalities present) of a multimodal VAE, from each modality's Gaussian expert
q_m(z | x_m) = N(mu_m, diag(exp(logvar_m))) and a mask of which modalities each example has:

- `product_of_experts` (MVAE, Wu & Goodman 2018): the prior expert N(0, I) times the present experts, a Gaussian
  with precision 1 + sum_m 1/var_m and mean (sum_m mu_m / var_m) / precision; an example with no modality gets the
  prior;
- `mixture_of_experts` (MMVAE, Shi et al. 2019): the uniform mixture of the present experts;
- `mixture_of_products` (MoPoE, Sutter et al. 2021): the uniform mixture, over every non-empty subset of the present
  modalities, of the subset's product of experts; `subset_prior` says which products include the prior expert:
  `every` subset's (ours, the default), or only the `full` subset's, the one of all the model's modalities (the
  official MoPoE code and MultiVae, which follows it; a row missing a modality then has no product with the prior).

Each returns a `torch.distributions` object with batch shape (B,) and event shape (D,): `rsample` (mixtures: a
component drawn uniformly, then its reparameterised draw; the weights are constants, so no gradient is lost) and
`log_prob`. Expert tensors are (E, B, D) for E modalities, `present` is (E, B) bool.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.distributions as td
from torch import Tensor


def diagonal(mu: Tensor, logvar: Tensor) -> td.Independent:
    return td.Independent(td.Normal(mu, torch.exp(0.5 * logvar), validate_args=False), 1, validate_args=False)


def product_params(mu: Tensor, logvar: Tensor, present: Tensor, prior: bool = True) -> tuple[Tensor, Tensor]:
    """Mean and log-variance (B, D) of the present experts (E, B, D) times the prior expert N(0, I) (`prior`; without
    it, a row with no present expert gets N(0, I) as a stand-in, for a component its mixture weighs 0)."""
    precision = torch.exp(-logvar) * present[..., None]  # (E, B, D); absent experts weigh nothing
    total = precision.sum(0)
    total = total + 1.0 if prior else torch.where(present.any(0)[..., None], total, torch.ones_like(total))
    return (mu * precision).sum(0) / total, -torch.log(total)  # the prior expert: precision 1, mean 0


def product_of_experts(mu: Tensor, logvar: Tensor, present: Tensor) -> td.Independent:
    """The prior expert N(0, I) times the present experts (E, B, D): one diagonal Gaussian (B,) x (D,)."""
    return diagonal(*product_params(mu, logvar, present))


class UniformMixture(td.Distribution):
    """A uniform mixture over each example's allowed components: means and log-variances (C, B, D), `allowed` (C, B)
    bool with at least one True per example."""

    arg_constraints: dict = {}
    has_rsample = True

    def __init__(self, mu: Tensor, logvar: Tensor, allowed: Tensor):
        self.mu = mu
        self.logvar = logvar
        self.allowed = allowed
        super().__init__(mu.shape[1:2], mu.shape[2:], validate_args=False)

    def log_prob(self, z: Tensor) -> Tensor:
        """z (..., B, D) -> (..., B): log (1/|allowed|) sum_c allowed_c N(z; mu_c, var_c)."""
        per = diagonal(self.mu, self.logvar).log_prob(z.unsqueeze(-3))  # (..., C, B)
        per = per.masked_fill(~self.allowed, -math.inf)
        return torch.logsumexp(per, dim=-2) - torch.log(self.allowed.sum(0).to(per.dtype))

    def rsample(self, sample_shape=()) -> Tensor:
        shape = torch.Size(sample_shape)
        weights = self.allowed.T.to(self.mu.dtype)  # (B, C)
        pick = torch.multinomial(weights, max(1, shape.numel()), replacement=True).T.reshape(*shape, -1)  # (..., B)
        rows = torch.arange(self.mu.shape[1], device=self.mu.device)
        mu, logvar = self.mu[pick, rows], self.logvar[pick, rows]  # (..., B, D)
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def sample(self, sample_shape=()) -> Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)


def mixture_of_experts(mu: Tensor, logvar: Tensor, present: Tensor) -> UniformMixture:
    return UniformMixture(mu, logvar, present)


def subsets(n: int) -> list[tuple[int, ...]]:
    """Every non-empty subset of range(n), smallest first."""
    return [s for size in range(1, n + 1) for s in itertools.combinations(range(n), size)]


def mixture_of_products(mu: Tensor, logvar: Tensor, present: Tensor, subset_prior: str = "every") -> UniformMixture:
    """The uniform mixture over the non-empty subsets of each example's present modalities of their products, the
    prior expert in `every` subset's product or in the `full` subset's only."""
    means = []
    logvars = []
    allowed = []
    for subset in subsets(len(mu)):
        chosen = torch.zeros_like(present)
        chosen[list(subset)] = True
        prior = subset_prior == "every" or len(subset) == len(mu)
        mean, log_var = product_params(mu, logvar, present & chosen, prior)
        means.append(mean)
        logvars.append(log_var)
        allowed.append((present | ~chosen).all(0))  # every modality of the subset is present
    return UniformMixture(torch.stack(means), torch.stack(logvars), torch.stack(allowed))


JOINTS = {"poe": product_of_experts, "moe": mixture_of_experts, "mopoe": mixture_of_products}
