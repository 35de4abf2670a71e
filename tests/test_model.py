"""Encoders and decoders for every shape the conv architecture must adapt to, and gradients through the VAE."""

import pytest
import torch

from vae_runner.errors import UserError
from vae_runner.model.decoders import ConvDecoder, MLPDecoder
from vae_runner.model.encoders import ConvEncoder, MLPEncoder
from vae_runner.model.layers import conv_plan


@pytest.mark.parametrize(
    "shape,stages",
    [((1, 8, 8), 1), ((1, 28, 28), 2), ((3, 32, 32), 3), ((3, 64, 64), 4), ((1, 7, 7), 0), ((3, 48, 32), 3)],
)
def test_conv_adapts_to_the_image_shape(shape, stages):
    channels, _ = conv_plan(shape, 8, 64)
    assert len(channels) == max(stages, 1)
    enc, dec = (
        ConvEncoder(shape, 5, base_channels=8, fc_hidden=32),
        ConvDecoder(shape, 5, base_channels=8, fc_hidden=32),
    )
    mu, logvar = enc(torch.rand(3, *shape))
    assert mu.shape == logvar.shape == (3, 5)
    assert dec(mu).shape == (3, *shape)


def test_conv_refuses_point_data():
    with pytest.raises(UserError, match="architecture=mlp"):
        ConvEncoder((2,), 2)


def test_mlp_shapes():
    enc, dec = MLPEncoder((1, 8, 8), 4, [16, 8]), MLPDecoder((1, 8, 8), 4, [16, 8])
    mu, logvar = enc(torch.rand(2, 1, 8, 8))
    assert mu.shape == (2, 4) and dec(mu).shape == (2, 1, 8, 8)
    assert [m.out_features for m in dec.net if isinstance(m, torch.nn.Linear)] == [8, 16, 64]
