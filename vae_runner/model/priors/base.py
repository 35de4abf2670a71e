"""The prior contract every `prior=` option implements; the VAE and the objective see nothing else.

- `log_prob(z)`: (B, D) -> (B,) log p(z) in nats, summed over latent dimensions.
- `sample(n)`: (n, D) draws from the prior (on the prior's device).
- `analytic_kl(q)`: KL(q(z|x) || p(z)) per example (B,) in closed form, or None when there is none; the objective
  then uses the Monte-Carlo estimate log q(z|x) - log p(z) at the sampled z.
"""
from __future__ import annotations

import torch.distributions as td
from torch import Tensor, nn


class Prior(nn.Module):
    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim

    def log_prob(self, z: Tensor) -> Tensor:
        raise NotImplementedError

    def sample(self, n: int) -> Tensor:
        raise NotImplementedError

    def analytic_kl(self, q: td.Distribution) -> Tensor | None:
        return None
