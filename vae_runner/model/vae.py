"""`VAE(encoder, decoder, prior, likelihood)`: composition only; the objective lives in objectives.py."""
from __future__ import annotations

import torch
import torch.distributions as td
from torch import Tensor, nn


class VAE(nn.Module):
    def __init__(self, encoder: nn.Module, decoder: nn.Module, prior: nn.Module, likelihood: nn.Module):
        super().__init__()
        self.encoder, self.decoder, self.prior, self.likelihood = encoder, decoder, prior, likelihood

    def posterior(self, x: Tensor) -> td.Independent:
        """q(z|x) = N(mu(x), diag(exp(logvar(x)))), with batch shape (B,) and event shape (D,)."""
        mu, logvar = self.encoder(x)
        return td.Independent(td.Normal(mu, torch.exp(0.5 * logvar)), 1)

    def decode(self, z: Tensor) -> td.Distribution:
        """p(x|z), batch shape (B,), event shape the data shape."""
        return self.likelihood(self.decoder(z))

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        """Means of p(x|z) for n draws z ~ p(z) from the model's own prior."""
        return self.decode(self.prior.sample(n)).mean

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        return self.decode(self.posterior(x).mean).mean
