"""What the VampPrior and the GTM-VampPrior share: a mixture whose components are the model's own posteriors
q(z | u_k) of K pseudo-inputs u_k in data space. A subclass says where the u_k come from: its `pseudo_inputs()`, a
method or a sub-module, returns them as (K, *data shape). The encoder and the posterior family are the VAE's, held
without registering them so that they are not saved twice."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vae_runner.model.encoders import encoder_output
from vae_runner.model.priors.mixture import MixturePrior


def squash(raw: Tensor, unit_range: bool) -> Tensor:
    """Unconstrained parameters -> points in the data's range: sigmoid for [0, 1] data, as they are otherwise."""
    return torch.sigmoid(raw) if unit_range else raw


class PseudoInputPrior(MixturePrior):
    def __init__(self, latent_dim: int, encoder: nn.Module, posterior: nn.Module | None = None):
        super().__init__(latent_dim)
        # not registered sub-modules: the VAE saves them once
        object.__setattr__(self, "encoder", encoder)
        object.__setattr__(self, "posterior", posterior)  # None: the encoder's outputs are a Gaussian's (mu, logvar)

    def mixture_params(self):
        """The pseudo-inputs' posteriors as one diagonal-Gaussian mixture: K components for posterior=gaussian (the
        VampPrior), K x C for a mixture posterior, each q's diagonal stand-in for the others (posteriors/base.py)."""
        params = encoder_output(self.encoder(self.pseudo_inputs()))
        if self.posterior is None:
            return *params.chunk(2, dim=-1), None
        means, logvars, log_w = self.posterior.components(params)  # (K, C, D), (K, C, D), (K, C) or None
        return means.flatten(-3, -2), logvars.flatten(-3, -2), None if log_w is None else log_w.flatten(-2)
