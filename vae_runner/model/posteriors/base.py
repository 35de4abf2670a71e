"""The contract every `posterior=` option implements: the approximate posterior q(z|x) the VAE, the objective and
every evaluation read, and nothing else.

A posterior option is an `nn.Module` built with `latent_dim=` (plus its own settings):

- `outputs`: how many numbers per example it reads from the encoder (the encoder's last layer has this width);
- `forward(params)`: the encoder's output (..., B, outputs) -> q(z|x), a `torch.distributions.Distribution` with
  batch shape (..., B) and event shape (D,) that offers (see `Draws`)
  - `rsample(shape)` (reparameterised: gradients reach the encoder and the posterior's own parameters), `sample`;
  - `log_prob(z)` at any z broadcastable against the batch; `mean`, the point code (probes, reconstructions,
    traversals, active units);
  - `noise_dim` and `from_noise(eps)`: the reparameterised draw from standard normal noise (..., *batch, noise_dim),
    so that evaluation's per-example noise streams (rng.index_noise) work for every posterior;
  - `marginal()`: the per-dimension marginals q(z_d|x) (batch (..., B, D)) where they have a closed form, else None
    (the KL per latent dimension and free bits then use the totals);
  - `aggregate_log_prob(z)`: log (1/B) sum_j q(z | x_j), the batch's aggregate posterior (ELBO surgery), or None
    where a density at other examples' draws has no cheap form;
  - `components()`: a diagonal-Gaussian mixture (means (..., B, C, D), log-variances, log-weights (..., B, C) or
    None for one component) standing for q: the VampPrior's components (exactly q where q is such a mixture);
- `components(params)`: the components of q(z|x) for these encoder outputs (`forward(params).components()`).

A closed-form KL to the prior is the prior's business (`Prior.analytic_kl`): it exists for Gaussian posteriors and
the Gaussian prior; everything else uses log q(z|x) - log p(z) at the sampled z.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class Posterior(nn.Module):
    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = int(latent_dim)

    @property
    def outputs(self) -> int:
        raise NotImplementedError

    def components(self, params: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        return self(params).components()


class Draws:
    """What a posterior distribution adds to torch's: reparameterised draws from given standard normal noise, and a
    subclass's own closed forms where they exist."""

    noise_dim: int

    def from_noise(self, eps: Tensor) -> Tensor:
        raise NotImplementedError

    def rsample(self, sample_shape=()) -> Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape + (self.noise_dim,)
        like = self.reference()
        return self.from_noise(torch.randn(shape, dtype=like.dtype, device=like.device))

    def reference(self) -> Tensor:
        """A tensor of the distribution's dtype and device (its mean, unless that is costly)."""
        return self.mean

    def sample(self, sample_shape=()) -> Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def marginal(self):
        return None

    def components(self) -> tuple[Tensor, Tensor, Tensor | None]:
        raise NotImplementedError

    def aggregate_log_prob(self, z: Tensor) -> Tensor | None:
        """z (N, D) -> (N,) log (1/B) sum_j q(z | x_j) over this (B,)-batch's posteriors, chunked over j."""
        parts = [self.log_prob(c.unsqueeze(-2)) for c in z.split(256)]  # (n, B) each
        return torch.logsumexp(torch.cat(parts), dim=-1) - math.log(self.batch_shape[-1])
