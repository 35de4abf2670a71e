"""posterior=mixture: q(z|x) = sum_c w_c(x) N(z; mu_c(x), diag(exp(logvar_c(x)))), C components per example.

How it is trained. A draw picks a component, a discrete choice with no reparameterisation of its own; the gradient of
E_q[f(z)] still exists, and we use the implicit reparameterisation of mixtures (Graves 2016, "Stochastic
backpropagation through mixture density distributions"; Figurnov et al. 2018): the draw z solves F(z; theta) = u for
the distributional transform F_d(z) = q(z_d <= . | z_<d), whose conditional weights are the components' posterior
weights given z_<d. Differentiating F(z(theta); theta) = u gives, dimension by dimension,

    dz_d/dtheta = -(dF_d/dtheta) / q(z_d | z_<d),

with dF_d/dtheta the total derivative (through z_<d too). `implicit_draw` builds a surrogate whose value is z and
whose gradient is exactly this, D small steps per draw. The estimator is unbiased (tests/test_posteriors.py checks it
against closed-form gradients of E_q[z_1 z_2] and E_q[|z|^2]); the KL has no closed form (Monte Carlo).
"""

from __future__ import annotations

import math

import torch
import torch.distributions as td
from torch import Tensor

from vae_runner.model.posteriors.base import Draws, Posterior
from vae_runner.model.priors.mixture import mixture_log_prob


def normal_cdf(t: Tensor) -> Tensor:
    return 0.5 * (1 + torch.erf(t / math.sqrt(2)))


def implicit_draw(z: Tensor, log_w: Tensor, means: Tensor, scales: Tensor) -> Tensor:
    """z (..., B, D) drawn from the mixture (its value only is used) -> the same values carrying the implicit
    reparameterisation gradient to log_w (..., B, C), means and scales (..., B, C, D)."""
    z = z.detach()
    log_post = log_w.expand(*z.shape[:-1], log_w.shape[-1])  # log weights of the components given z_<d
    out = []
    for d in range(z.shape[-1]):
        mu, sd, value = means[..., d], scales[..., d], z[..., d : d + 1]  # (..., C), (..., C), (..., 1)
        pi = torch.softmax(log_post, dim=-1)
        cdf = (pi * normal_cdf((value - mu) / sd)).sum(-1)
        density = (pi * torch.exp(td.Normal(mu, sd, validate_args=False).log_prob(value))).sum(-1)
        drawn = value[..., 0] - (cdf - cdf.detach()) / density.detach().clamp_min(1e-30)
        out.append(drawn)
        log_post = log_post + td.Normal(mu, sd, validate_args=False).log_prob(drawn[..., None])
    return torch.stack(out, dim=-1)


class GaussianMixture(Draws, td.Distribution):
    """`fixed`: the weights are constants (the multimodal joints' uniform weights over the allowed components), so a
    draw picks its component and is reparameterised within it, an unbiased gradient without the implicit one's D
    steps (whose variance cost moe and mopoe ~3 nats on Fashion-MNIST + label: docs/multimodal.md)."""

    arg_constraints: dict = {}
    has_rsample = True

    def __init__(self, logits: Tensor, means: Tensor, logvars: Tensor, fixed: bool = False):
        self.fixed = fixed
        self.log_w = torch.log_softmax(logits, dim=-1)  # (..., B, C)
        self.means, self.logvars = means, logvars  # (..., B, C, D)
        self.scales = torch.exp(0.5 * logvars)
        self.noise_dim = means.shape[-1] + 1  # D for the Gaussian part, one for the component
        super().__init__(logits.shape[:-1], means.shape[-1:], validate_args=False)

    @property
    def mean(self) -> Tensor:
        return (self.log_w.exp()[..., None] * self.means).sum(-2)

    def from_noise(self, eps: Tensor) -> Tensor:
        """eps (S..., *batch, D + 1): the last entry picks the component (through its normal CDF), the rest scale it."""
        cum = self.log_w.exp().cumsum(-1)  # (*batch, C)
        u = normal_cdf(eps[..., -1:]) * cum[..., -1:]
        pick = (u > cum).sum(-1, keepdim=True).clamp_max(cum.shape[-1] - 1)  # (S..., *batch, 1)
        lead, (c, d) = pick.shape[:-1], self.means.shape[-2:]
        index = pick[..., None].expand(*lead, 1, d)

        def chosen(t: Tensor) -> Tensor:  # (..., B, C, D) -> the picked component's (S..., *batch, D)
            return t.expand(*lead, c, d).gather(-2, index).squeeze(-2)

        z = chosen(self.means) + chosen(self.scales) * eps[..., :-1]
        return z if self.fixed else implicit_draw(z, self.log_w, self.means, self.scales)

    def log_prob(self, z: Tensor) -> Tensor:
        per = td.Normal(self.means, self.scales, validate_args=False).log_prob(z.unsqueeze(-2)).sum(-1)  # (..., C)
        return torch.logsumexp(self.log_w + per, dim=-1)

    def components(self) -> tuple[Tensor, Tensor, Tensor]:
        return self.means, self.logvars, self.log_w

    def marginal(self) -> td.MixtureSameFamily:
        """q(z_d|x): a 1-D mixture per dimension, batch (..., B, D)."""
        logits = self.log_w.unsqueeze(-2).expand(*self.means.shape[:-2], self.means.shape[-1], self.log_w.shape[-1])
        parts = td.Normal(self.means.mT, self.scales.mT, validate_args=False)  # (..., B, D, C)
        return td.MixtureSameFamily(td.Categorical(logits=logits, validate_args=False), parts, validate_args=False)

    def aggregate_log_prob(self, z: Tensor) -> Tensor:
        b = self.log_w.shape[-2]
        weights = (self.log_w - math.log(b)).flatten(-2)  # (B * C,)
        means, logvars = self.means.flatten(-3, -2), self.logvars.flatten(-3, -2)
        return torch.cat([mixture_log_prob(c, means, logvars, weights) for c in z.split(1024)])


class MixturePosterior(Posterior):
    def __init__(self, latent_dim: int, n_components: int):
        super().__init__(latent_dim)
        self.n_components = int(n_components)

    @property
    def outputs(self) -> int:
        return self.n_components * (2 * self.latent_dim + 1)

    def split(self, params: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(logits (..., C), means (..., C, D), logvars (..., C, D)) from the encoder's outputs."""
        c, d = self.n_components, self.latent_dim
        means, logvars = params[..., : 2 * c * d].unflatten(-1, (2, c, d)).unbind(-3)
        return params[..., 2 * c * d :], means, logvars

    def forward(self, params: Tensor) -> GaussianMixture:
        return GaussianMixture(*self.split(params))
