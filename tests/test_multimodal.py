"""The multimodal VAE: an absent modality changes nothing, the modality dropout keeps one modality per example, and
the importance-sampled marginal and conditional log-likelihoods match a linear-Gaussian two-modality model's
closed forms."""

import math

import pytest
import torch
import torch.distributions as td
from torch import nn

from vae_runner.model.decoders import MLPDecoder
from vae_runner.model.encoders import MLPEncoder
from vae_runner.model.likelihoods import MSE, Bernoulli, Categorical
from vae_runner.model.multimodal import MultimodalVAE, drop_modalities


def small(joint: str) -> MultimodalVAE:
    torch.manual_seed(0)
    return MultimodalVAE(
        encoders={"image": MLPEncoder((6,), 3, [8]), "label": MLPEncoder((4,), 3, [8])},
        decoders={"image": MLPDecoder((6,), 3, [8]), "label": MLPDecoder((4,), 3, [8])},
        likelihoods={"image": Bernoulli((6,), None), "label": Categorical((4,))},
        latent_dim=3,
        joint=joint,
    )


def batch(n: int = 10):
    g = torch.Generator().manual_seed(1)
    xs = {
        "image": (torch.rand(n, 6, generator=g) < 0.5).float(),
        "label": nn.functional.one_hot(torch.randint(0, 4, (n,), generator=g), 4).float(),
    }
    present = torch.ones(2, n, dtype=torch.bool)
    present[1, :3] = False  # the first three have no label
    present[0, 3:5] = False  # the next two no image
    return xs, present


@pytest.mark.parametrize("joint", ["poe", "moe", "mopoe"])
def test_an_absent_modality_changes_nothing(joint):
    model = small(joint)
    xs, present = batch()
    other = {k: v.clone() for k, v in xs.items()}
    other["label"][:3] = torch.roll(other["label"][:3], 1, dims=1)  # absent labels altered
    other["image"][3:5] = 1 - other["image"][3:5]  # absent images altered
    torch.manual_seed(2)
    a = model.elbo(xs, present)
    torch.manual_seed(2)
    b = model.elbo(other, present)
    for key in ("elbo", "recon", "kl"):
        assert torch.allclose(a[key], b[key]), key
    a["loss"].mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_modality_dropout_keeps_one_present_modality_per_example():
    torch.manual_seed(0)
    present = torch.rand(3, 500) < 0.7
    present[:, 0] = False  # an example with nothing stays with nothing
    kept = drop_modalities(present, 0.9)
    assert not (kept & ~present).any()  # nothing absent appears
    assert (kept.any(0) == present.any(0)).all()
    assert kept.sum() < 0.5 * present.sum()


class Linear(nn.Module):
    def __init__(self, w, b):
        super().__init__()
        self.w, self.b = nn.Parameter(w), nn.Parameter(b)

    def forward(self, z):
        return z @ self.w.T + self.b


class Wide(nn.Module):
    """An expert N(0, 4^2 I) whatever the input: the product with the prior covers every posterior here."""

    def forward(self, x):
        zeros = x.new_zeros(x.shape[0], 2)
        return zeros, zeros + math.log(16.0)


def test_importance_sampled_marginals_and_conditionals_match_a_linear_gaussian_model():
    torch.manual_seed(0)
    sigma = 1.0  # a broad posterior: 20000 proposals estimate it to a few hundredths of a nat
    wa, ba, wb, bb = torch.randn(3, 2), torch.randn(3), torch.randn(2, 2), torch.randn(2)
    model = MultimodalVAE(
        encoders={"a": Wide(), "b": Wide()},
        decoders={"a": Linear(wa, ba), "b": Linear(wb, bb)},
        likelihoods={"a": MSE((3,), sigma), "b": MSE((2,), sigma)},
        latent_dim=2,
        joint="poe",
    )
    n = 200
    z = torch.randn(n, 2)
    xs = {"a": z @ wa.T + ba + sigma * torch.randn(n, 3), "b": z @ wb.T + bb + sigma * torch.randn(n, 2)}
    present = torch.ones(2, n, dtype=torch.bool)
    w, b = torch.cat([wa, wb]).double(), torch.cat([ba, bb]).double()
    cov = w @ w.T + sigma**2 * torch.eye(5, dtype=torch.float64)
    x = torch.cat([xs["a"], xs["b"]], 1).double()
    exact_joint = td.MultivariateNormal(b, cov).log_prob(x)
    exact_b = td.MultivariateNormal(b[3:], cov[3:, 3:]).log_prob(x[:, 3:])
    torch.manual_seed(1)
    joint = model.log_marginal(xs, present, ["a", "b"], ["a", "b"], k=20000).double()
    only_b = model.log_marginal(xs, present, ["b"], ["b"], k=20000).double()
    assert (joint - exact_joint).abs().mean() < 0.05
    assert (only_b - exact_b).abs().mean() < 0.02
    assert ((joint - only_b) - (exact_joint - exact_b)).abs().mean() < 0.05  # log p(x_a | x_b)
