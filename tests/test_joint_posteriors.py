"""The multimodal joint posteriors against closed forms and torch.distributions: the product of experts with a prior
expert is the normalised product of the Gaussian densities; the mixtures' densities are MixtureSameFamily's, their
draws have its moments; absent modalities drop out of every one."""

import pytest
import torch
import torch.distributions as td

from vae_runner.model.joint_posteriors import (
    mixture_of_experts,
    mixture_of_products,
    product_of_experts,
    subsets,
)

E, B, D = 3, 4, 2


def experts(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(E, B, D, generator=g), torch.randn(E, B, D, generator=g) * 0.5


def present_mask():
    return torch.tensor([[1, 1, 0, 1], [1, 0, 0, 0], [1, 1, 0, 0]], dtype=torch.bool)  # example 2 has none


def test_product_of_experts_is_the_normalised_product_of_the_prior_and_the_present_experts():
    mu, logvar = experts()
    present = present_mask()
    q = product_of_experts(mu, logvar, present)
    z = torch.randn(50, B, D)
    unnormalised = td.Normal(0.0, 1.0).log_prob(z).sum(-1)
    for e in range(E):
        part = td.Normal(mu[e], torch.exp(0.5 * logvar[e])).log_prob(z).sum(-1)
        unnormalised = unnormalised + torch.where(present[e], part, torch.zeros_like(part))
    gap = q.log_prob(z) - unnormalised  # log of the normaliser: the same for every z
    assert torch.allclose(gap, gap[:1].expand_as(gap), atol=1e-4)
    # closed form of two 1-D Gaussians and the prior: precision 1 + 1/v1 + 1/v2, mean (m1/v1 + m2/v2) / precision
    v = torch.exp(logvar[:, 0])  # example 0 has experts 0, 1, 2
    precision = 1 + (1 / v).sum(0)
    assert torch.allclose(q.base_dist.loc[0], (mu[:, 0] / v).sum(0) / precision, atol=1e-6)
    assert torch.allclose(q.base_dist.scale[0] ** 2, 1 / precision, atol=1e-6)
    assert torch.allclose(q.base_dist.loc[2], torch.zeros(D)) and torch.allclose(q.base_dist.scale[2], torch.ones(D))


def mixture_oracle(mu, logvar, weights_row):
    components = td.Independent(td.Normal(mu, torch.exp(0.5 * logvar)), 1)
    return td.MixtureSameFamily(td.Categorical(probs=weights_row), components)


def test_mixture_of_experts_matches_mixture_same_family_and_its_moments():
    mu, logvar = experts(1)
    present = present_mask()
    present[:, 2] = True  # a mixture needs one component per example
    q = mixture_of_experts(mu, logvar, present)
    z = torch.randn(30, B, D)
    for b in range(B):
        oracle = mixture_oracle(mu[:, b], logvar[:, b], present[:, b].float() / present[:, b].sum())
        assert torch.allclose(q.log_prob(z)[:, b], oracle.log_prob(z[:, b]), atol=1e-5)
    torch.manual_seed(0)
    draws = q.rsample((40000,))  # (N, B, D)
    for b in range(B):
        oracle = mixture_oracle(mu[:, b], logvar[:, b], present[:, b].float() / present[:, b].sum())
        assert torch.allclose(draws[:, b].mean(0), oracle.mean, atol=0.03)
        assert torch.allclose(draws[:, b].var(0), oracle.variance, rtol=0.05, atol=0.02)


def test_mixture_of_products_is_the_mixture_over_present_subsets_of_their_products():
    mu, logvar = experts(2)
    present = present_mask()
    present[:, 2] = True
    q = mixture_of_products(mu, logvar, present)
    z = torch.randn(30, B, D)
    torch.manual_seed(0)
    draws = q.rsample((40000,))
    for b in range(B):
        means, variances = [], []
        for subset in subsets(E):
            if all(present[e, b] for e in subset):
                chosen = torch.zeros(E, 1, dtype=torch.bool)
                chosen[list(subset)] = True
                poe = product_of_experts(mu[:, b : b + 1], logvar[:, b : b + 1], chosen)
                means.append(poe.base_dist.loc[0])
                variances.append(poe.base_dist.scale[0] ** 2)
        oracle = mixture_oracle(torch.stack(means), torch.stack(variances).log(), torch.ones(len(means)) / len(means))
        assert len(means) == 2 ** int(present[:, b].sum()) - 1
        assert torch.allclose(q.log_prob(z)[:, b], oracle.log_prob(z[:, b]), atol=1e-5)
        assert torch.allclose(draws[:, b].mean(0), oracle.mean, atol=0.03)
        assert torch.allclose(draws[:, b].var(0), oracle.variance, rtol=0.05, atol=0.02)


@pytest.mark.parametrize("joint", [product_of_experts, mixture_of_experts, mixture_of_products])
def test_draws_carry_gradients_to_the_experts(joint):
    mu, logvar = experts(3)
    mu.requires_grad_(True)
    logvar.requires_grad_(True)
    z = joint(mu, logvar, torch.ones(E, B, dtype=torch.bool)).rsample((5,))
    z.sum().backward()
    assert mu.grad.abs().sum() > 0 and logvar.grad.abs().sum() > 0


@pytest.mark.parametrize("joint", [product_of_experts, mixture_of_experts, mixture_of_products])
def test_a_row_with_no_modality_gets_the_prior(joint):
    mu, logvar = experts(4)
    q = joint(mu, logvar, present_mask())  # example 2 has no modality
    z = torch.randn(20, B, D)
    assert torch.allclose(q.log_prob(z)[:, 2], td.Normal(0.0, 1.0).log_prob(z[:, 2]).sum(-1), atol=1e-5)
