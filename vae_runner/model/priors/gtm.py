"""Generative-topographic-mapping priors (Bishop et al. 1998, as a VAE prior in Tomczak's "Deep Generative
Modeling", ch. 4): a fixed grid of K = grid_size^grid_dim points in [-1, 1]^grid_dim mapped by a small network.

- `GTMPrior`: the network gives the component means in latent space; learnable per-component log-variances;
  uniform weights.
- `GTMVampPrior`: the network gives pseudo-inputs in data space, encoded by the model's encoder (a VampPrior whose
  pseudo-inputs lie on a low-dimensional manifold).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from vae_runner.model.layers import mlp
from vae_runner.model.priors.mixture import MixturePrior
from vae_runner.model.priors.pseudo_inputs import PseudoInputPrior, squash


def grid(grid_dim: int, grid_size: int) -> Tensor:
    """(grid_size^grid_dim, grid_dim) points, row-major, evenly spaced in [-1, 1]."""
    ticks = torch.linspace(-1, 1, grid_size)
    return torch.cartesian_prod(*[ticks] * grid_dim).reshape(-1, grid_dim)


class GTMPrior(MixturePrior):
    grid_network = "net"  # fed the fixed grid (a batched launcher's stack shares it among members: stacking/model.py)

    def __init__(
        self,
        latent_dim: int,
        grid_dim: int,
        grid_size: int,
        hidden: list[int],
        init_logvar: float,
    ):
        super().__init__(latent_dim)
        self.grid_size = grid_size
        self.register_buffer("grid", grid(grid_dim, grid_size))  # (K, grid_dim), fixed
        self.net = mlp([grid_dim, *hidden, latent_dim])
        self.logvars = nn.Parameter(torch.full((grid_size**grid_dim, latent_dim), float(init_logvar)))

    def mixture_params(self):
        return self.net(self.grid), self.logvars, None  # means (K, D)

    def picture_batches(self, decode) -> dict[str, tuple[Tensor, int]]:
        """The decoded grid in grid order: the learnt manifold (a row per grid line for a 2-D grid)."""
        means = self.net(self.grid)
        if means.shape[0] > 400:  # keep the picture readable: an evenly spaced subset
            means = means[torch.linspace(0, means.shape[0] - 1, 400).long()]
        return {
            "manifold": (
                decode(means),
                self.grid_size if self.grid.shape[1] == 2 else int(math.sqrt(means.shape[0])) or 1,
            )
        }


class GTMVampPrior(PseudoInputPrior):
    grid_network = "net"

    def __init__(
        self,
        latent_dim: int,
        encoder: nn.Module,
        data,
        grid_dim: int,
        grid_size: int,
        hidden: list[int],
        posterior: nn.Module | None = None,
    ):
        super().__init__(latent_dim, encoder, posterior)
        self.grid_size = grid_size
        self.shape = data.shape
        self.squash = data.in_unit_range
        self.register_buffer("grid", grid(grid_dim, grid_size))  # (K, grid_dim)
        self.net = mlp([grid_dim, *hidden, math.prod(data.shape)])

    def pseudo_inputs(self) -> Tensor:
        raw = self.net(self.grid)  # (K, prod(shape)); (M, K, prod(shape)) in a stack (stacking/model.py)
        return squash(raw.view(*raw.shape[:-1], *self.shape), self.squash)  # (K, *shape)

    def picture_batches(self, decode) -> dict[str, tuple[Tensor, int]]:
        u = self.pseudo_inputs()
        if u.shape[0] > 400:
            u = u[torch.linspace(0, u.shape[0] - 1, 400).long()]
        return {"pseudo_inputs": (u, self.grid_size if self.grid.shape[1] == 2 else int(math.sqrt(len(u))) or 1)}
