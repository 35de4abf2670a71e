"""A RealNVP flow prior (Dinh et al. 2017): z = f(e), e ~ N(0, I), f a stack of affine coupling layers with
alternating masks. log p(z) = log N(f^{-1}(z); 0, I) + sum over layers of log|det d f_l^{-1}|, each layer's
log-determinant counted once."""

from __future__ import annotations

import torch
import torch.distributions as td
from torch import Tensor, nn

from vae_runner.model.layers import mlp
from vae_runner.model.priors.base import Prior


class AffineCoupling(nn.Module):
    """y = m * x + (1 - m) * (x * exp(s(m * x)) + t(m * x)); s is tanh-bounded for stability."""

    def __init__(self, dim: int, hidden: int, parity: int):
        super().__init__()
        self.register_buffer("mask", (torch.arange(dim) % 2 == parity).float())  # (D,) 1 = passed through
        self.net = mlp([dim, hidden, hidden, 2 * dim])
        nn.init.zeros_(self.net[-1].weight)  # start as the identity
        nn.init.zeros_(self.net[-1].bias)

    def _shift_scale(self, x_kept: Tensor) -> tuple[Tensor, Tensor]:
        s, t = self.net(x_kept).chunk(2, dim=-1)
        return torch.tanh(s) * (1 - self.mask), t * (1 - self.mask)  # (B, D) each, zero on kept dims

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x -> (y, log|det dy/dx|) per example."""
        s, t = self._shift_scale(x * self.mask)
        return x * torch.exp(s) + t, s.sum(-1)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """y -> (x, log|det dx/dy|) per example."""
        s, t = self._shift_scale(y * self.mask)  # kept dims of y equal those of x
        return (y - t) * torch.exp(-s), -s.sum(-1)


class FlowPrior(Prior):
    def __init__(self, latent_dim: int, depth: int, width: int):
        super().__init__(latent_dim)
        self.layers = nn.ModuleList(AffineCoupling(latent_dim, width, i % 2) for i in range(depth))
        self.register_buffer("loc", torch.zeros(latent_dim))
        self.register_buffer("scale", torch.ones(latent_dim))

    def base(self) -> td.Distribution:
        return td.Independent(td.Normal(self.loc, self.scale, validate_args=False), 1, validate_args=False)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """z -> (e = f^{-1}(z), log|det d e / d z|)."""
        logdet = torch.zeros(z.shape[:-1], device=z.device, dtype=z.dtype)  # (..., B): a stack's (M, B) too
        for layer in reversed(self.layers):
            z, ld = layer.inverse(z)
            logdet = logdet + ld
        return z, logdet

    def log_prob(self, z: Tensor) -> Tensor:
        e, logdet = self.inverse(z)
        return self.base().log_prob(e) + logdet  # (B,)

    def sample(self, n: int) -> Tensor:
        x = self.base().sample((n,))
        for layer in self.layers:
            x, _ = layer(x)
        return x  # (n, D)
