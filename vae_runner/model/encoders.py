"""Encoders x -> the `outputs` numbers per example that parameterise q(z|x) (model/posteriors/: 2 * latent_dim for
the diagonal Gaussian's mean and log-variance, more for richer posteriors): an MLP, a gated MLP (the VampPrior code's)
and a shape-adaptive conv net. The MLPs take any leading dimensions, (..., B, *shape): with batched layers
(stacking/model.py) the leading one is a batched sweep's member axis."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from vae_runner.model.layers import conv_plan, gated_stack, he_init_, mlp


def encoder_output(out: Tensor | tuple[Tensor, Tensor]) -> Tensor:
    """An encoder's output as one tensor (..., B, outputs): a user encoder's pair (mu, logvar) side by side."""
    return torch.cat(out, dim=-1) if isinstance(out, tuple) else out


class MLPEncoder(nn.Module):
    def __init__(self, input_shape, latent_dim: int, hidden: list[int], outputs: int | None = None):
        super().__init__()
        self.net = mlp([math.prod(input_shape), *hidden, outputs or 2 * latent_dim])
        self.data_dims = len(input_shape)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(-self.data_dims))  # (..., B, outputs)


class GatedMLPEncoder(nn.Module):
    """GatedDense layers, then a linear mean head and a linear log-variance head, the latter optionally clamped to
    [lo, hi] by a hard tanh (the reference code's Hardtanh(-6, 2): no gradient outside the range), and a linear head
    for the rest of a richer posterior's outputs."""

    def __init__(
        self,
        input_shape,
        latent_dim: int,
        hidden: list[int],
        logvar_clamp: list[float] | None,
        init: str,
        outputs: int | None = None,
    ):
        super().__init__()
        self.body = gated_stack([math.prod(input_shape), *hidden])
        self.data_dims = len(input_shape)
        self.mean = nn.Linear(hidden[-1], latent_dim)
        self.logvar = nn.Linear(hidden[-1], latent_dim)
        extra = (outputs or 2 * latent_dim) - 2 * latent_dim
        self.rest = nn.Linear(hidden[-1], extra) if extra > 0 else None
        self.logvar_clamp = None if logvar_clamp is None else (float(logvar_clamp[0]), float(logvar_clamp[1]))
        if init == "he":
            he_init_(self)

    def forward(self, x: Tensor) -> Tensor:
        h = self.body(x.flatten(-self.data_dims))  # (..., B, H)
        logvar = self.logvar(h)  # (..., B, D)
        if self.logvar_clamp is not None:
            logvar = nn.functional.hardtanh(logvar, *self.logvar_clamp)
        heads = [self.mean(h), logvar] + ([] if self.rest is None else [self.rest(h)])
        return torch.cat(heads, dim=-1)  # (..., B, outputs)


class ConvEncoder(nn.Module):
    def __init__(
        self,
        input_shape,
        latent_dim: int,
        base_channels: int,
        max_channels: int,
        fc_hidden: int,
        outputs: int | None = None,
    ):
        super().__init__()
        channels, (h, w) = conv_plan(input_shape, base_channels, max_channels)
        stride = 2 if (h, w) != tuple(input_shape[1:]) else 1
        layers, c_in = [], input_shape[0]
        for c in channels:  # (B, c_in, H, W) -> (B, c, H/2, W/2); one stride-1 stage when the image is too small
            layers += [nn.Conv2d(c_in, c, 4 if stride == 2 else 3, stride, 1), nn.ReLU()]
            c_in = c
        self.conv = nn.Sequential(*layers)
        self.fc = mlp([c_in * h * w, fc_hidden, outputs or 2 * latent_dim])

    def forward(self, x: Tensor) -> Tensor:
        x = x.contiguous(memory_format=torch.channels_last)  # the layout of the weights (run.build_model)
        return self.fc(torch.relu(self.conv(x).flatten(1)))  # (B, outputs)
