"""A synthetic 2-D multimodal dataset (a ring or grid of Gaussians), generated from its own seed.

Real-valued points of shape (2,), labelled by mode: the place to see what a prior does with latent_dim=2.
"""

from __future__ import annotations

import math

import torch

from vae_runner.data import DataSplits, Split


def mode_centres(shape: str, n_modes: int, radius: float) -> torch.Tensor:
    """(K, 2) centres: evenly on a circle of `radius`, or a square grid spanning [-radius, radius]^2."""
    if shape == "ring":
        angle = torch.arange(n_modes, dtype=torch.float64) * (2 * math.pi / n_modes)
        return torch.stack([radius * angle.cos(), radius * angle.sin()], 1).float()
    side = math.ceil(math.sqrt(n_modes))
    ticks = torch.linspace(-radius, radius, side) if side > 1 else torch.zeros(1)
    grid = torch.cartesian_prod(ticks, ticks)  # (side^2, 2)
    return grid[:n_modes].float()


def load_synthetic(
    shape: str,
    n_modes: int,
    radius: float,
    std: float,
    n_train: int,
    n_val: int,
    n_test: int,
    seed: int,
) -> DataSplits:
    g = torch.Generator().manual_seed(seed)
    centres = mode_centres(shape, n_modes, radius)

    def draw(n: int) -> Split:
        y = torch.randint(n_modes, (n,), generator=g)
        return Split(centres[y] + std * torch.randn(n, 2, generator=g), y)  # (n, 2)

    return DataSplits(draw(n_train), draw(n_val), draw(n_test), in_unit_range=False)
