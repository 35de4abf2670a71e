"""`MultimodalVAE`: one encoder, decoder and likelihood per modality, a N(0, I) prior and a joint posterior
(model/joint_posteriors.py: poe | moe | mopoe) over the modalities each example has.

Modalities are a dict name -> (B, *shape) tensor and `present` an (E, B) bool mask in the modalities' order (an
absent modality's tensor holds any finite values; its expert and its likelihood term are masked out). The objective
is the ELBO of the present modalities with the joint posterior as q, log p(x_present | z) - beta (log q(z | x) -
log p(z)) at a reparameterised draw (Monte-Carlo KL: the mixtures have no closed form); with `modality_dropout`,
training hides further modalities from the encoder (each example keeps one), the likelihood still scoring all it
has, as MVAE's sub-sampled ELBO terms train the unimodal posteriors that cross-modal generation needs.

`log_marginal(xs, scored, given)`: log p(x_scored) by importance sampling with q(z | x_given) as the proposal; the
conditional log p(x_a | x_b) = log p(x_a, x_b) - log p(x_b), each by importance sampling (consistent as K grows).
"""

from __future__ import annotations

import math

import torch
import torch.distributions as td
from torch import Tensor, nn

from vae_runner.model.joint_posteriors import JOINTS


class MultimodalVAE(nn.Module):
    def __init__(self, encoders: dict, decoders: dict, likelihoods: dict, latent_dim: int, joint: str):
        super().__init__()
        self.names = list(encoders)
        self.encoders = nn.ModuleDict(encoders)
        self.decoders = nn.ModuleDict(decoders)
        self.likelihoods = nn.ModuleDict(likelihoods)
        self.latent_dim = latent_dim
        self.joint = JOINTS[joint]

    def mask(self, present: Tensor, names) -> Tensor:
        """`present` restricted to the modalities `names`."""
        keep = torch.tensor([n in names for n in self.names], device=present.device)
        return present & keep[:, None]

    def posterior(self, xs: dict[str, Tensor], present: Tensor) -> td.Distribution:
        outs = (self.encoders[n](xs[n]) for n in self.names)  # (mu, logvar) or the two side by side
        mu, logvar = zip(*(out if isinstance(out, tuple) else out.chunk(2, dim=-1) for out in outs))
        return self.joint(torch.stack(mu), torch.stack(logvar), present)

    def log_likelihoods(self, xs: dict[str, Tensor], z: Tensor, present: Tensor) -> Tensor:
        """sum over present modalities of log p(x_m | z), z (..., B, D) -> (..., B)."""
        total = torch.zeros(z.shape[:-1], device=z.device)
        for e, n in enumerate(self.names):
            lp = self.likelihoods[n](self.decoders[n](z)).log_prob(xs[n].expand(*z.shape[:-1], *xs[n].shape[1:]))
            total = total + torch.where(present[e], lp, torch.zeros_like(lp))
        return total

    def elbo(self, xs: dict[str, Tensor], present: Tensor, beta: float = 1.0, dropout: float = 0.0) -> dict:
        seen = present if dropout == 0 else drop_modalities(present, dropout)
        q = self.posterior(xs, seen)
        z = q.rsample()
        recon = self.log_likelihoods(xs, z, present)
        kl = q.log_prob(z) - self.prior_log_prob(z)
        return {"elbo": recon - kl, "recon": recon, "kl": kl, "loss": -(recon - beta * kl)}

    def prior_log_prob(self, z: Tensor) -> Tensor:
        """log N(z; 0, I), z (..., D) -> (...)."""
        return td.Normal(torch.zeros_like(z), torch.ones_like(z)).log_prob(z).sum(-1)

    @torch.no_grad()
    def log_marginal(self, xs: dict[str, Tensor], present: Tensor, scored, given, k: int = 1000) -> Tensor:
        """(B,) log p(x_scored) = log (1/k) sum_j p(x_scored | z_j) p(z_j) / q(z_j | x_given), z_j ~ q(z | x_given)."""
        q = self.posterior(xs, self.mask(present, given))
        z = q.sample((k,))  # (k, B, D)
        log_w = self.log_likelihoods(xs, z, self.mask(present, scored)) + self.prior_log_prob(z) - q.log_prob(z)
        return torch.logsumexp(log_w, dim=0) - math.log(k)

    @torch.no_grad()
    def generate(self, xs: dict[str, Tensor], present: Tensor, given, target: str) -> Tensor:
        """The mean of p(x_target | z) at one draw z ~ q(z | x_given)."""
        z = self.posterior(xs, self.mask(present, given)).sample()
        return self.likelihoods[target](self.decoders[target](z)).mean


def drop_modalities(present: Tensor, rate: float) -> Tensor:
    """`present` with each modality further hidden with probability `rate`, every example keeping one it has."""
    kept = present & (torch.rand(present.shape, device=present.device) >= rate)
    lost = ~kept.any(0) & present.any(0)  # examples left with none: keep one of theirs at random
    if lost.any():
        choice = torch.multinomial(present[:, lost].T.float(), 1).squeeze(1)
        kept[choice, lost.nonzero(as_tuple=True)[0]] = True
    return kept
