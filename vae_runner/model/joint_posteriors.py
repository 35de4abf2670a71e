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

Each returns a posterior of the contract (model/posteriors/base.py) with batch shape (B,) and event shape (D,): the
product a DiagonalGaussian, the mixtures a GaussianMixture with constant weights (a draw picks a component uniformly
among the allowed ones and is reparameterised within it; no gradient is lost). Expert tensors are (E, B, D) for E
modalities (or (E, ..., B, D)), `present` is (E, B) bool.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor

from vae_runner.model.posteriors.gaussian import DiagonalGaussian
from vae_runner.model.posteriors.mixture import GaussianMixture


def product_params(mu: Tensor, logvar: Tensor, present: Tensor, prior: bool = True) -> tuple[Tensor, Tensor]:
    """Mean and log-variance (B, D) of the present experts (E, B, D) times the prior expert N(0, I) (`prior`; without
    it, a row with no present expert gets N(0, I) as a stand-in, for a component its mixture weighs 0)."""
    precision = torch.exp(-logvar) * present[..., None]  # (E, B, D); absent experts weigh nothing
    total = precision.sum(0)
    total = total + 1.0 if prior else torch.where(present.any(0)[..., None], total, torch.ones_like(total))
    return (mu * precision).sum(0) / total, -torch.log(total)  # the prior expert: precision 1, mean 0


def product_of_experts(mu: Tensor, logvar: Tensor, present: Tensor) -> DiagonalGaussian:
    """The prior expert N(0, I) times the present experts (E, B, D): one diagonal Gaussian (B,) x (D,)."""
    return DiagonalGaussian(*product_params(mu, logvar, present))


def uniform_mixture(means: Tensor, logvars: Tensor, allowed: Tensor) -> GaussianMixture:
    """The uniform mixture over each row's allowed components, means and log-variances (C, ..., B, D), `allowed`
    (C, ..., B) bool; a row with none allowed (a probe's label hidden from a label-only row) gets the prior N(0, I),
    as with the product of experts. Constant weights: a draw picks its component, reparameterised within it."""
    first = (torch.arange(len(allowed), device=allowed.device) == 0).view(-1, *[1] * (allowed.dim() - 1))
    prior = first & ~allowed.any(0)  # (C, ..., B)
    allowed = allowed | prior
    means, logvars = (t.masked_fill(prior[..., None], 0.0).movedim(0, -2) for t in (means, logvars))
    logits = torch.zeros_like(allowed, dtype=means.dtype).masked_fill(~allowed, -math.inf)
    return GaussianMixture(logits.movedim(0, -1), means, logvars, fixed=True)


def mixture_of_experts(mu: Tensor, logvar: Tensor, present: Tensor) -> GaussianMixture:
    """The uniform mixture of the present experts (E, B, D)."""
    return uniform_mixture(mu, logvar, present)


def subsets(n: int) -> list[tuple[int, ...]]:
    """Every non-empty subset of range(n), smallest first."""
    return [s for size in range(1, n + 1) for s in itertools.combinations(range(n), size)]


def mixture_of_products(mu: Tensor, logvar: Tensor, present: Tensor, subset_prior: str = "every") -> GaussianMixture:
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
    return uniform_mixture(torch.stack(means), torch.stack(logvars), torch.stack(allowed))


JOINTS = {"poe": product_of_experts, "moe": mixture_of_experts, "mopoe": mixture_of_products}
