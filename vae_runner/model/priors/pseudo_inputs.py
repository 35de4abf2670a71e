"""What the VampPrior and the GTM-VampPrior share: a mixture whose components are the model's own posteriors
q(z | u_k) of K pseudo-inputs u_k in data space. A subclass says where the u_k come from: its `pseudo_inputs()`, a
method or a sub-module, returns them as (K, *data shape). The encoder is the VAE's, held without registering it so
that it is not saved twice."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vae_runner.model.priors.mixture import MixturePrior


def squash(raw: Tensor, unit_range: bool) -> Tensor:
    """Unconstrained parameters -> points in the data's range: sigmoid for [0, 1] data, as they are otherwise."""
    return torch.sigmoid(raw) if unit_range else raw


class PseudoInputPrior(MixturePrior):
    def __init__(self, latent_dim: int, encoder: nn.Module):
        super().__init__(latent_dim)
        object.__setattr__(self, "encoder", encoder)  # not a registered sub-module: the VAE saves it once

    def mixture_params(self):
        means, logvars = self.encoder(self.pseudo_inputs())  # (K, D) each
        return means, logvars, None
