"""Building blocks shared by encoders and decoders: the gated dense layer of the VampPrior code and its stack.

GatedDense (Dauphin et al. 2017, as used by Tomczak & Welling 2018): h = (W_h x + b_h) * sigmoid(W_g x + b_g), no
other non-linearity. `he_init_` is that code's weight initialisation: every Linear weight ~ N(0, 2 / fan_in), biases
left at PyTorch's default.
"""

from __future__ import annotations

import math
from itertools import pairwise

import torch
from torch import Tensor, nn


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
