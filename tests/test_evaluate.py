"""Oracle tests for the final evaluation: the importance-sampled log-likelihood (>= ELBO, non-decreasing in K,
exact on a linear-Gaussian model with analytic log p(x)), ELBO surgery, active units with known dead dimensions,
KL per dimension, probes and triplets."""

import math

import pytest
import torch
import torch.distributions as td
from conftest import LIKELIHOODS, PRIORS, tiny_data, tiny_vae
from torch import nn

from vae_runner.config.compose import build_option
from vae_runner.data import Split, prepare
from vae_runner.evaluation import diagnostics as dx
from vae_runner.evaluation.metrics import evaluate_split, log_likelihood
from vae_runner.model.priors.gaussian import GaussianPrior
from vae_runner.model.vae import VAE


def trained_digits_model(prior=None, steps=300, d=4):
    torch.manual_seed(0)
    data = prepare(build_option("dataset", "digits"), "dynamic", torch.device("cpu"))
    model = VAE(
        build_option("architecture", "mlp", "encoder", input_shape=(1, 8, 8), latent_dim=d, hidden=[64]),
        build_option("architecture", "mlp", "decoder", output_shape=(1, 8, 8), latent_dim=d, hidden=[64]),
        prior or GaussianPrior(d),
        build_option("likelihood", "bernoulli", data_shape=(1, 8, 8)),
    )
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        x = torch.bernoulli(data.train.floats(torch.randint(len(data.train), (128,))))
        opt.zero_grad()
        build_option("objective", "elbo")(model, x)["loss"].mean().backward()
        opt.step()
    return model, data


@pytest.fixture(scope="module")
def digits_model():
    return trained_digits_model()


def test_iwae_is_above_the_elbo_and_grows_with_k(digits_model):
    model, data = digits_model
    elbo = evaluate_split(model, build_option("objective", "elbo"), data.test, 1000)["elbo"]
    ll = {k: log_likelihood(model, data.test, k=k, seed=1).mean().item() for k in (1, 10, 100, 1000)}
    assert ll[1] == pytest.approx(elbo, abs=0.3)  # K = 1 is the (single-sample) ELBO
    assert ll[10] > elbo and ll[10] <= ll[100] + 0.01 <= ll[1000] + 0.02
    assert ll[1000] - elbo < 5  # a sane gap, in nats


def test_log_likelihood_is_deterministic_and_chunking_only_changes_the_draws(digits_model):
    model, data = digits_model
    a = log_likelihood(model, data.test, k=500, chunk_rows=1000, seed=3)
    b = log_likelihood(model, data.test, k=500, chunk_rows=1000, seed=3)
    assert torch.equal(a, b)
    c = log_likelihood(model, data.test, k=500, chunk_rows=300, seed=3)  # samples split across forwards
    assert c.mean().item() == pytest.approx(a.mean().item(), abs=0.05)
    assert log_likelihood(model, data.test, k=20, limit=7).shape == (7,)


def test_the_encoder_runs_once_per_image_and_the_prior_once(digits_model):
    model, data = digits_model
    seen, calls = [], []
    hook = model.encoder.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
    real = model.prior.log_prob_fn
    model.prior.log_prob_fn = lambda: calls.append(1) or real()
    try:
        log_likelihood(model, data.test, k=300, chunk_rows=1000)
    finally:
        hook.remove()
        del model.prior.log_prob_fn
    assert sum(seen) == len(data.test) and len(calls) == 1


class LinearGaussianEncoder(nn.Module):
    """q(z|x) = N(A x + c, diag(exp(logvar))) with fixed parameters."""

    def __init__(self, a, c, logvar):
        super().__init__()
        self.a, self.c, self.logvar = a, c, logvar

    def forward(self, x):
        return x @ self.a.T + self.c, self.logvar.expand(x.shape[0], -1)


def test_log_likelihood_matches_the_analytic_value_of_a_linear_gaussian_model():
    """x = W z + b + sigma e with z ~ N(0, I): p(x) = N(b, W W^T + sigma^2 I). With W's columns orthogonal the exact
    posterior is diagonal: the estimator must give log p(x) exactly (every weight equals p(x)); with a perturbed
    posterior it must converge to it."""
    torch.manual_seed(0)
    p_dim, d, sigma = 6, 3, 0.5
    w = torch.linalg.qr(torch.randn(p_dim, d))[0] * torch.tensor([2.0, 1.0, 0.5])  # orthogonal columns
    b = torch.randn(p_dim)
    decoder = nn.Linear(d, p_dim)
    decoder.weight.data, decoder.bias.data = w, b
    post_var = 1 / (1 + (w**2).sum(0) / sigma**2)  # (D,) diagonal because W^T W is
    a = post_var[:, None] * w.T / sigma**2  # mean = A (x - b)
    x = torch.distributions.MultivariateNormal(b, w @ w.T + sigma**2 * torch.eye(p_dim)).sample((50,))
    exact = torch.distributions.MultivariateNormal(b, w @ w.T + sigma**2 * torch.eye(p_dim)).log_prob(x)
    split = Split(x)
    model = VAE(
        LinearGaussianEncoder(a, -(a @ b), post_var.log()),
        decoder,
        GaussianPrior(d),
        build_option("likelihood", "mse", data_shape=(p_dim,), sigma=sigma),
    )
    torch.testing.assert_close(log_likelihood(model, split, k=4), exact, atol=1e-4, rtol=1e-5)
    off = VAE(
        LinearGaussianEncoder(0.8 * a, -(0.8 * a @ b), (1.5 * post_var).log()),
        decoder,
        GaussianPrior(d),
        build_option("likelihood", "mse", data_shape=(p_dim,), sigma=sigma),
    )
    est = log_likelihood(off, split, k=5000)
    assert (est - exact).abs().mean().item() < 0.02
    elbo = evaluate_split(off, build_option("objective", "elbo"), split, 100)["elbo"]
    assert elbo < est.mean().item() - 0.01


def test_elbo_surgery_identity(digits_model):
    model, data = digits_model
    q = dx.encode_split(model, data.test)
    mu, logvar = q.mean, q.logvar
    s = dx.elbo_surgery(model.prior, q, samples=64)
    assert s["avg_kl"] == pytest.approx(s["mutual_information"] + s["marginal_kl"], abs=1e-4)
    closed = model.prior.analytic_kl(td.Independent(td.Normal(mu, torch.exp(0.5 * logvar)), 1)).mean().item()
    assert s["avg_kl"] == pytest.approx(closed, rel=0.02, abs=0.02)  # the MC average KL is the analytic one
    assert 0 <= s["mutual_information"] <= math.log(len(mu)) + 1e-6
    assert s["marginal_kl"] > -0.05


def test_active_units_finds_the_dead_dimensions():
    torch.manual_seed(0)
    x = torch.randn(500, 5)
    mu = torch.zeros(500, 6)
    mu[:, 1], mu[:, 4] = x[:, 0], 0.3 * x[:, 1]  # only dimensions 1 and 4 depend on x
    mu[:, 2] = 0.001 * x[:, 2]  # varies, but below the 0.01 threshold
    activity, active = dx.active_units(mu)
    assert active == [1, 4]
    assert activity[0] == 0 and activity[2] < 0.01


def test_kl_per_dim_sums_to_the_kl_for_a_factorised_prior(digits_model):
    model, data = digits_model
    q = dx.encode_split(model, data.test)
    mu, logvar = q.mean, q.logvar
    per_dim = dx.mean_kl_per_dim(model.prior, q, samples=256)
    closed = td.kl_divergence(td.Normal(mu, torch.exp(0.5 * logvar)), td.Normal(0.0, 1.0)).mean(0)
    torch.testing.assert_close(per_dim, closed, atol=0.02, rtol=0.05)
    mog = build_option("prior", "mog", latent_dim=4, n_components=3)
    assert dx.mean_kl_per_dim(mog, q).shape == (4,)


def test_mixture_marginals_are_one_dimensional_mixtures():
    prior = build_option("prior", "mog", latent_dim=2, n_components=3)
    means, logvars, logits = prior.mixture_params()
    z = torch.randn(7, 2)
    for d in range(2):
        ref = td.MixtureSameFamily(
            td.Categorical(logits=logits), td.Normal(means[:, d], torch.exp(0.5 * logvars[:, d]))
        )
        torch.testing.assert_close(prior.marginal_log_prob(z)[:, d], ref.log_prob(z[:, d]))


def test_triplets_and_probe_on_known_geometry():
    torch.manual_seed(0)
    y = torch.arange(10).repeat(30)  # (300,)
    separated = torch.nn.functional.one_hot(y, 10).float() * 10 + 0.1 * torch.randn(300, 10)
    triplets = dx.fixed_triplets(y, 500)
    assert torch.equal(triplets, dx.fixed_triplets(y, 500))  # fixed
    a, p, n = triplets.T
    assert (y[a] == y[p]).all() and (y[a] != y[n]).all() and (a != p).all()
    assert dx.triplet_accuracy(separated, triplets) == 1.0
    assert 0.3 < dx.triplet_accuracy(torch.randn(300, 10), triplets) < 0.7
    assert dx.linear_probe_accuracy(separated, y, separated, y) == 1.0


@pytest.mark.parametrize("prior_name", PRIORS)
@pytest.mark.parametrize("likelihood", LIKELIHOODS)
def test_log_likelihood_for_every_prior_and_likelihood(prior_name, likelihood):
    model = tiny_vae(prior_name, likelihood)
    split = tiny_data().test
    ll = log_likelihood(model, split, k=50)
    elbo = evaluate_split(model, build_option("objective", "elbo"), split, 100)["elbo"]
    assert torch.isfinite(ll).all() and ll.mean().item() > elbo


def test_bf16_decoding_changes_the_log_likelihood_by_little(digits_model):
    model, data = digits_model
    fp32 = log_likelihood(model, data.test, k=200, seed=5)
    bf16 = log_likelihood(model, data.test, k=200, seed=5, precision="bf16")
    assert abs(fp32.mean().item() - bf16.mean().item()) < 0.02
    assert (fp32 - bf16).abs().max().item() < 0.2
