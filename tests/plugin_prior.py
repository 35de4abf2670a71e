"""A user's own prior, outside vae_runner, plugged in with `prior._target_=plugin_prior.WidePrior`."""

import torch
import torch.distributions as td

from vae_runner.model.priors.base import Prior


class WidePrior(Prior):
    """N(0, 4 I) with no closed-form KL declared: the objective must use the Monte-Carlo KL."""

    def __init__(self, latent_dim: int):
        super().__init__(latent_dim)
        self.register_buffer("scale", torch.full((latent_dim,), 2.0))

    def log_prob(self, z):
        return td.Independent(td.Normal(torch.zeros_like(self.scale), self.scale), 1).log_prob(z)

    def sample(self, n):
        return torch.randn(n, self.latent_dim, device=self.scale.device) * self.scale
