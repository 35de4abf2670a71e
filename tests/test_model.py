"""Encoders and decoders for every shape the conv architecture must adapt to, and gradients through the VAE."""

import pytest
import torch
import torch.distributions as td
from conftest import PRIORS, tiny_data, tiny_vae

from vae_runner.config.compose import build_option
from vae_runner.errors import UserError
from vae_runner.evaluation.metrics import log_likelihood
from vae_runner.model.layers import conv_plan


@pytest.mark.parametrize(
    "shape,stages",
    [((1, 8, 8), 1), ((1, 28, 28), 2), ((3, 32, 32), 3), ((3, 64, 64), 4), ((1, 7, 7), 0), ((3, 48, 32), 3)],
)
def test_conv_adapts_to_the_image_shape(shape, stages):
    channels, _ = conv_plan(shape, 8, 64)
    assert len(channels) == max(stages, 1)
    enc, dec = (
        build_option("architecture", "conv", "encoder", input_shape=shape, latent_dim=5, base_channels=8, fc_hidden=32),
        build_option(
            "architecture", "conv", "decoder", output_shape=shape, latent_dim=5, base_channels=8, fc_hidden=32
        ),
    )
    mu, logvar = enc(torch.rand(3, *shape)).chunk(2, dim=-1)
    assert mu.shape == logvar.shape == (3, 5)
    assert dec(mu).shape == (3, *shape)


def test_conv_refuses_point_data():
    with pytest.raises(UserError, match="architecture=mlp"):
        build_option("architecture", "conv", "encoder", input_shape=(2,), latent_dim=2)


def test_mlp_shapes():
    enc, dec = (
        build_option("architecture", "mlp", "encoder", input_shape=(1, 8, 8), latent_dim=4, hidden=[16, 8]),
        build_option("architecture", "mlp", "decoder", output_shape=(1, 8, 8), latent_dim=4, hidden=[16, 8]),
    )
    mu, logvar = enc(torch.rand(2, 1, 8, 8)).chunk(2, dim=-1)
    assert mu.shape == (2, 4) and dec(mu).shape == (2, 1, 8, 8)
    assert [m.out_features for m in dec.net if isinstance(m, torch.nn.Linear)] == [8, 16, 64]


@pytest.mark.parametrize("prior", PRIORS)
def test_model_distributions_skip_validation_without_touching_the_process_default(prior, monkeypatch):
    """Importing the model leaves torch.distributions' process-wide default alone, and every distribution the model
    builds (posterior, prior, likelihood, in training and in the importance-sampled estimate) opts out itself."""
    assert td.Distribution._validate_args is True  # torch's default (python without -O), after importing vae_runner
    asked = []
    original = td.Distribution.__init__

    def record(self, *args, validate_args=None, **kwargs):
        asked.append((type(self).__name__, validate_args))
        original(self, *args, validate_args=validate_args, **kwargs)

    monkeypatch.setattr(td.Distribution, "__init__", record)
    model, data = tiny_vae(prior, "bernoulli"), tiny_data(16)
    build_option("objective", "iwae")(model, data.train.floats(slice(0, 8)))
    log_likelihood(model, data.test, k=4)
    assert asked and all(v is False for _, v in asked), [a for a in asked if a[1] is not False]
