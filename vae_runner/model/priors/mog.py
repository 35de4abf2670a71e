"""Mixture-of-Gaussians prior: K components with learnable weights, means and log-variances (trained jointly with
the ELBO; Dilokthanakul et al. 2016; Tomczak & Welling 2018, section 2)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vae_runner.model.priors.mixture import MixturePrior


class MoGPrior(MixturePrior):
    def __init__(self, latent_dim: int, n_components: int, init_spread: float, init_logvar: float):
        super().__init__(latent_dim)
        self.logits = nn.Parameter(torch.zeros(n_components))  # (K,)
        self.means = nn.Parameter(init_spread * torch.randn(n_components, latent_dim))  # (K, D)
        self.logvars = nn.Parameter(torch.full((n_components, latent_dim), float(init_logvar)))  # (K, D)

    def mixture_params(self):
        return self.means, self.logvars, self.logits

    def picture_batches(self, decode) -> dict[str, tuple[Tensor, int]]:
        """The decoded component means, heaviest component first: the "characteristic images"."""
        order = torch.argsort(self.logits, descending=True)[:64]
        return {"components": (decode(self.means[order]), 8)}
