"""Building blocks shared by encoders, decoders and priors: `mlp` (Linear + ReLU), `conv_plan` (the stride-2 stages
for any image size), the gated dense layer of the VampPrior code and its stack.

GatedDense (Dauphin et al. 2017, as used by Tomczak & Welling 2018): h = (W_h x + b_h) * sigmoid(W_g x + b_g), no
other non-linearity. `he_init_` is that code's weight initialisation: every Linear weight ~ N(0, 2 / fan_in), biases
left at PyTorch's default.
"""

from __future__ import annotations

import math
from itertools import pairwise

import torch
from torch import Tensor, nn

from vae_runner.errors import UserError


class GatedDense(nn.Module):
    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.h = nn.Linear(n_in, n_out)
        self.g = nn.Linear(n_in, n_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.h(x) * torch.sigmoid(self.g(x))  # (B, n_out)


def gated_stack(sizes: list[int]) -> nn.Sequential:
    """GatedDense layers sizes[0] -> sizes[1] -> ... -> sizes[-1]."""
    return nn.Sequential(*[GatedDense(a, b) for a, b in pairwise(sizes)])


def he_init_(module: nn.Module) -> None:
    """Every nn.Linear weight inside `module` ~ N(0, sqrt(2 / fan_in)) (the reference code's `he_init`)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            with torch.no_grad():
                m.weight.normal_(0.0, math.sqrt(2.0 / m.in_features))


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(pairwise(sizes)):
        layers += [nn.Linear(a, b)] + ([nn.ReLU()] if i < len(sizes) - 2 else [])
    return nn.Sequential(*layers)


def conv_plan(shape, base_channels: int, max_channels: int) -> tuple[list[int], tuple[int, int]]:
    """Channels after each stride-2 stage and the final (h, w): halve while both sides are even and > 4.

    8x8 -> 4x4 (1 stage), 28x28 -> 7x7 (2), 32x32 -> 4x4 (3), 64x64 -> 4x4 (4); nothing is hard-coded.
    """
    if len(shape) != 3:
        raise UserError(
            f"architecture=conv needs image data of shape (channels, height, width), but this dataset "
            f"has shape {tuple(shape)}; use architecture=mlp."
        )
    _, h, w = shape
    channels = []
    while h % 2 == 0 and w % 2 == 0 and min(h, w) > 4:
        channels.append(min(base_channels * 2 ** len(channels), max_channels))
        h, w = h // 2, w // 2
    return channels or [base_channels], (h, w)
