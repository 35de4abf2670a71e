"""Oracle tests for every formula: KL (closed form vs Monte Carlo vs torch.distributions), the likelihoods'
log-densities against hand-written formulas, and the ELBO's terms against a hand computation on a tiny model."""

import math

import torch
import torch.distributions as td
from conftest import MCOnlyPrior
from torch import nn

from vae_runner.config.compose import build_option
from vae_runner.model.priors.gaussian import GaussianPrior
from vae_runner.model.vae import VAE


def diag_gaussian(mu, logvar):
    return td.Independent(td.Normal(mu, torch.exp(0.5 * logvar)), 1)


def test_gaussian_prior_closed_form_kl_matches_formula_and_monte_carlo():
    torch.manual_seed(0)
    mu, logvar = torch.randn(5, 3), torch.randn(5, 3)
    prior = GaussianPrior(3)
    kl = prior.analytic_kl(diag_gaussian(mu, logvar))
    by_hand = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(-1)  # Kingma & Welling (2014), appendix B
    torch.testing.assert_close(kl, by_hand)
    q = diag_gaussian(mu, logvar)
    z = q.sample((200_000,))  # (S, 5, 3)
    mc = (q.log_prob(z) - prior.log_prob(z)).mean(0)
    torch.testing.assert_close(mc, kl, atol=0.03, rtol=0.01)


def test_gaussian_prior_log_prob_and_sample():
    prior = GaussianPrior(4)
    z = torch.randn(7, 4)
    torch.testing.assert_close(prior.log_prob(z), -0.5 * (z**2).sum(-1) - 2 * math.log(2 * math.pi))
    s = prior.sample(50_000)
    assert s.shape == (50_000, 4)
    torch.testing.assert_close(s.mean(0), torch.zeros(4), atol=0.03, rtol=0)
    torch.testing.assert_close(s.std(0), torch.ones(4), atol=0.03, rtol=0)


def test_bernoulli_log_prob_is_summed_negative_bce():
    logits, x = torch.randn(3, 1, 4, 4), torch.randint(0, 2, (3, 1, 4, 4)).float()
    lp = build_option("likelihood", "bernoulli", data_shape=(1, 4, 4))(logits).log_prob(x)
    p = torch.sigmoid(logits)
    by_hand = (x * p.log() + (1 - x) * (1 - p).log()).sum((1, 2, 3))
    torch.testing.assert_close(lp, by_hand, atol=1e-4, rtol=1e-5)
    xc = torch.rand(3, 1, 4, 4)  # grey levels: the cross-entropy, still summed
    by_hand = (xc * p.log() + (1 - xc) * (1 - p).log()).sum((1, 2, 3))
    torch.testing.assert_close(
        build_option("likelihood", "bernoulli", data_shape=(1, 4, 4))(logits).log_prob(xc),
        by_hand,
        atol=1e-4,
        rtol=1e-5,
    )


def test_mse_is_normalised_gaussian_with_fixed_sigma():
    mean, x, sigma = torch.randn(2, 6), torch.randn(2, 6), 0.3
    lp = build_option("likelihood", "mse", data_shape=(6,), sigma=sigma)(mean).log_prob(x)
    by_hand = (-((x - mean) ** 2) / (2 * sigma**2) - math.log(sigma) - 0.5 * math.log(2 * math.pi)).sum(-1)
    torch.testing.assert_close(lp, by_hand)


def test_gaussian_likelihood_learns_per_pixel_sigma():
    lik = build_option("likelihood", "gaussian", data_shape=(1, 2, 2), init_sigma=0.5, min_sigma=0.01)
    torch.testing.assert_close(lik.sigma, torch.full((1, 2, 2), 0.5))
    mean, x = torch.zeros(3, 1, 2, 2), torch.randn(3, 1, 2, 2)
    by_hand = td.Normal(0.0, 0.5).log_prob(x).sum((1, 2, 3))
    torch.testing.assert_close(lik(mean).log_prob(x), by_hand)
    lik(mean).log_prob(x).sum().backward()
    assert lik.raw_sigma.grad is not None and lik.raw_sigma.grad.abs().sum() > 0


class FixedEncoder(nn.Module):
    def __init__(self, mu, logvar):
        super().__init__()
        self.mu, self.logvar = mu, logvar

    def forward(self, x):
        return self.mu, self.logvar


def test_elbo_terms_by_hand_on_a_tiny_model():
    torch.manual_seed(0)
    x = torch.tensor([[1.0, 0.0, 1.0]])
    mu, logvar = torch.tensor([[0.5, -0.2]]), torch.tensor([[-0.4, 0.3]])
    w = torch.tensor([[1.0, -1.0], [0.5, 0.5], [-2.0, 1.0]])
    decoder = nn.Linear(2, 3, bias=False)
    decoder.weight.data = w
    for prior, closed in ((GaussianPrior(2), True), (MCOnlyPrior(2), False)):
        model = VAE(FixedEncoder(mu, logvar), decoder, prior, build_option("likelihood", "bernoulli", data_shape=(3,)))
        torch.manual_seed(1)
        terms = build_option("objective", "elbo", beta=4.0)(model, x)
        torch.manual_seed(1)
        z = mu + torch.exp(0.5 * logvar) * torch.randn(1, 2)  # the same reparameterised draw
        p = torch.sigmoid(z @ w.T)
        recon = (x * p.log() + (1 - x) * (1 - p).log()).sum(-1)
        if closed:
            kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(-1)
        else:
            log_q = td.Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1)
            kl = log_q - td.Normal(0.0, 1.0).log_prob(z).sum(-1)
        torch.testing.assert_close(terms["recon"], recon)
        torch.testing.assert_close(terms["kl"], kl)
        torch.testing.assert_close(terms["elbo"], recon - kl)
        torch.testing.assert_close(terms["loss"], -(recon - 4.0 * kl))


def test_monte_carlo_kl_is_unbiased_for_the_closed_form():
    torch.manual_seed(0)
    mu, logvar = torch.randn(1, 3).expand(20_000, 3), torch.randn(1, 3).expand(20_000, 3)
    x = torch.zeros(20_000, 3)
    decoder = nn.Linear(3, 3)
    closed = build_option("objective", "elbo")(
        VAE(
            FixedEncoder(mu, logvar),
            decoder,
            GaussianPrior(3),
            build_option("likelihood", "bernoulli", data_shape=(3,)),
        ),
        x,
    )["kl"]
    mc = build_option("objective", "elbo")(
        VAE(
            FixedEncoder(mu, logvar), decoder, MCOnlyPrior(3), build_option("likelihood", "bernoulli", data_shape=(3,))
        ),
        x,
    )["kl"]
    assert abs(mc.mean() - closed.mean()) < 4 * mc.std() / math.sqrt(len(mc))
