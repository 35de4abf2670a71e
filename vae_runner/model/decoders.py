"""Decoders z -> the likelihood's parameters, one value per data element (B, *data_shape); the MLPs keep any leading
dimensions of z (a batched sweep's member axis, stacking/model.py)."""

from __future__ import annotations

import math

from torch import Tensor, nn

from vae_runner.model.layers import conv_plan, gated_stack, he_init_, mlp


class MLPDecoder(nn.Module):
    def __init__(self, output_shape, latent_dim: int, hidden: list[int]):
        super().__init__()
        self.output_shape = tuple(output_shape)
        self.net = mlp([latent_dim, *reversed(hidden), math.prod(output_shape)])

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).view(*z.shape[:-1], *self.output_shape)  # (..., B, *shape)


class GatedMLPDecoder(nn.Module):
    """GatedDense layers mirroring the encoder's `hidden`, then a linear map to one value per data element."""

    def __init__(self, output_shape, latent_dim: int, hidden: list[int], init: str):
        super().__init__()
        self.output_shape = tuple(output_shape)
        widths = list(reversed(hidden))
        self.net = nn.Sequential(gated_stack([latent_dim, *widths]), nn.Linear(widths[-1], math.prod(output_shape)))
        if init == "he":
            he_init_(self)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).view(*z.shape[:-1], *self.output_shape)  # (..., B, *shape)


class ConvDecoder(nn.Module):
    """Mirror of `ConvEncoder`: a linear map to (c, h, w), then stride-2 transposed convolutions back to the image."""

    def __init__(self, output_shape, latent_dim: int, base_channels: int, max_channels: int, fc_hidden: int):
        super().__init__()
        channels, (h, w) = conv_plan(output_shape, base_channels, max_channels)
        upsample = (h, w) != tuple(output_shape[1:])
        self.start = (channels[-1], h, w)
        self.fc = nn.Sequential(mlp([latent_dim, fc_hidden, channels[-1] * h * w]), nn.ReLU())
        layers = []
        for c_in, c_out in zip(reversed(channels), list(reversed(channels))[1:] + [channels[0]]):
            layers += [
                nn.ConvTranspose2d(c_in, c_out, 4, 2, 1) if upsample else nn.Conv2d(c_in, c_out, 3, 1, 1),
                nn.ReLU(),
            ]  # (B, c_in, h, w) -> (B, c_out, 2h, 2w)
        layers.append(nn.Conv2d(channels[0], output_shape[0], 3, 1, 1))
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.deconv(self.fc(z).view(-1, *self.start))  # (B, C, H, W)
