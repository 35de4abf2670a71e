"""Oracle tests for every prior: mixture log-densities against torch.distributions.MixtureSameFamily and a hand
computation, densities that integrate to 1 on 1-D and 2-D grids, samples consistent with log_prob, the flow's
log-determinant against autograd, and gradients reaching every prior parameter."""

import math

import pytest
import torch
import torch.distributions as td
from conftest import PRIORS, SHAPE, make_cfg, make_prior, tiny_data

from vae_runner import run
from vae_runner.config.compose import build_option
from vae_runner.model.priors.mixture import MixturePrior
from vae_runner.model.vae import VAE


def reference_mixture_log_prob(z, means, logvars, logits):
    """log sum_k w_k prod_d N(z_d; mu_kd, var_kd), written out: per-component sums over d, then log-sum-exp."""
    log_w = torch.log_softmax(logits, 0) if logits is not None else torch.full((means.shape[0],), -math.log(len(means)))
    per_dim = -0.5 * (math.log(2 * math.pi) + logvars + (z[:, None, :] - means) ** 2 / logvars.exp())  # (B, K, D)
    return torch.logsumexp(log_w + per_dim.sum(-1), dim=1)


@pytest.mark.parametrize("name", ["mog", "vamp", "gtm", "gtm_vamp"])
@pytest.mark.parametrize("d", [1, 3])
def test_mixture_log_prob_matches_torch_distributions_and_hand_computation(name, d):
    prior, _ = make_prior(name, d)
    assert isinstance(prior, MixturePrior)
    means, logvars, logits = prior.mixture_params()
    reference = td.MixtureSameFamily(
        td.Categorical(logits=logits if logits is not None else torch.zeros(len(means))),
        td.Independent(td.Normal(means, torch.exp(0.5 * logvars)), 1),
    )
    z = 2 * torch.randn(50, d)
    lp = prior.log_prob(z)
    assert lp.shape == (50,)
    torch.testing.assert_close(lp, reference.log_prob(z))
    torch.testing.assert_close(lp, reference_mixture_log_prob(z, means, logvars, logits))
    if d > 1:  # the per-dimension log-sum-exp (a product of 1-D mixtures) is a different, wrong density
        log_w = torch.log_softmax(logits, 0) if logits is not None else -math.log(len(means))
        per_dim = td.Normal(means, torch.exp(0.5 * logvars)).log_prob(z[:, None, :])  # (B, K, D)
        wrong = torch.logsumexp(per_dim + (log_w[:, None] if logits is not None else log_w), dim=1).sum(-1)
        assert not torch.allclose(lp, wrong, atol=1e-3)


def grid_1d(prior, n=20001):
    with torch.no_grad():
        s = prior.sample(4000)
    half = s.abs().max().item() * 1.5 + 2.0
    return torch.linspace(-half, half, n)[:, None]


@pytest.mark.parametrize("name", PRIORS)
def test_density_integrates_to_one_in_1d_and_2d(name):
    prior, _ = make_prior(name, 1)
    z = grid_1d(prior)
    with torch.no_grad():
        mass = torch.trapezoid(prior.log_prob(z).exp(), z[:, 0])
    assert mass.item() == pytest.approx(1.0, abs=1e-3)
    prior, _ = make_prior(name, 2)
    with torch.no_grad():
        half = prior.sample(20000).abs().quantile(0.999).item() * 1.5 + 2.0  # 99.9% of the mass, and margin
        ticks = torch.linspace(-half, half, 801)
        gx, gy = torch.meshgrid(ticks, ticks, indexing="ij")
        dens = prior.log_prob(torch.stack([gx.flatten(), gy.flatten()], 1)).exp().view(801, 801)
        mass = torch.trapezoid(torch.trapezoid(dens, ticks, dim=1), ticks)
    assert mass.item() == pytest.approx(1.0, abs=1e-2)


@pytest.mark.parametrize("name", PRIORS)
def test_samples_follow_the_density(name):
    """Kolmogorov-Smirnov distance between 20k samples and the CDF integrated from exp(log_prob), in 1-D; in 2-D the
    total-variation distance between sample histograms and the integrated density on 8x8 bins."""
    prior, _ = make_prior(name, 1)
    torch.manual_seed(1)
    with torch.no_grad():
        z = grid_1d(prior)
        cdf = torch.cumulative_trapezoid(prior.log_prob(z).exp(), z[:, 0])
        cdf = torch.cat([torch.zeros(1), cdf / cdf[-1]])
        s = prior.sample(20000)[:, 0].sort().values
    model_cdf = torch.from_numpy(__import__("numpy").interp(s.numpy(), z[:, 0].numpy(), cdf.numpy()))
    empirical = torch.arange(1, len(s) + 1, dtype=torch.float64) / len(s)
    assert (model_cdf - empirical).abs().max().item() < 0.02  # KS critical value at 20k samples ~0.012 (alpha=1%)

    prior, _ = make_prior(name, 2)
    with torch.no_grad():
        s = prior.sample(40000)
        lo, hi = s.min(0).values - 1, s.max(0).values + 1
        n = 240
        tx, ty = (torch.linspace(lo[i].item(), hi[i].item(), n + 1) for i in range(2))
        cx, cy = (tx[:-1] + tx[1:]) / 2, (ty[:-1] + ty[1:]) / 2
        gx, gy = torch.meshgrid(cx, cy, indexing="ij")
        cell = (tx[1] - tx[0]) * (ty[1] - ty[0])
        p = prior.log_prob(torch.stack([gx.flatten(), gy.flatten()], 1)).exp().view(n, n) * cell
        p = p.view(8, n // 8, 8, n // 8).sum((1, 3)).flatten()  # (64,) bin masses by the midpoint rule
        edges_x, edges_y = tx[:: n // 8], ty[:: n // 8]
        ix = torch.bucketize(s[:, 0].contiguous(), edges_x[1:-1].contiguous())
        iy = torch.bucketize(s[:, 1].contiguous(), edges_y[1:-1].contiguous())
        counts = torch.bincount(ix * 8 + iy, minlength=64).float() / len(s)
    assert 0.5 * (counts - p / p.sum()).abs().sum().item() < 0.03


def test_flow_log_determinant_matches_autograd_jacobian():
    prior, _ = make_prior("flow", 3)
    for z in torch.randn(5, 3):
        e, logdet = prior.inverse(z[None])
        jac = torch.autograd.functional.jacobian(lambda v: prior.inverse(v[None])[0][0], z)  # (3, 3)
        torch.testing.assert_close(logdet[0], torch.linalg.slogdet(jac).logabsdet, atol=1e-5, rtol=1e-5)
    x = torch.randn(4, 3)  # and sample() is the inverse of inverse()
    for layer in prior.layers:
        y, ld = layer(x)
        back, ld_inv = layer.inverse(y)
        torch.testing.assert_close(back, x, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ld, -ld_inv)


@pytest.mark.parametrize("name", PRIORS[1:])
def test_gradients_reach_every_prior_parameter(name):
    prior, encoder = make_prior(name, 2)
    model = VAE(
        encoder,
        build_option("architecture", "mlp", "decoder", output_shape=SHAPE, latent_dim=2, hidden=[8]),
        prior,
        build_option("likelihood", "bernoulli", data_shape=SHAPE),
    )
    x = torch.bernoulli(tiny_data().train.x[:16])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(2):  # the second step: the flow's zero-initialised output layers have moved by then
        opt.zero_grad()
        build_option("objective", "elbo")(model, x)["loss"].mean().backward()
        opt.step()
    for pname, p in prior.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname
    state_keys = model.state_dict().keys()
    assert not any(k.startswith("prior.encoder.") for k in state_keys)  # the encoder is not saved twice


@pytest.mark.parametrize("name", PRIORS)
def test_samples_come_from_the_models_own_prior(name):
    prior, encoder = make_prior(name, 2)
    model = VAE(
        encoder,
        build_option("architecture", "mlp", "decoder", output_shape=SHAPE, latent_dim=2, hidden=[8]),
        prior,
        build_option("likelihood", "bernoulli", data_shape=SHAPE),
    )
    torch.manual_seed(3)
    expected = model.decode(prior.sample(10)).mean
    torch.manual_seed(3)
    torch.testing.assert_close(model.sample(10), expected)


def test_mog_with_1000_components_trains(tmp_path, no_threads):
    metrics = run.train(make_cfg("prior=mog", "prior.n_components=1000"), tmp_path)
    assert math.isfinite(metrics["test/elbo"]) and (tmp_path / "components.png").is_file()


@pytest.mark.parametrize(
    "name,pictures",
    [
        ("mog", ["components"]),
        ("vamp", ["pseudo_inputs"]),
        ("gtm", ["manifold"]),
        ("gtm_vamp", ["pseudo_inputs"]),
        ("flow", []),
        ("gaussian", []),
    ],
)
def test_prior_pictures_and_the_latent_density_map(name, pictures, tmp_path, no_threads):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run.train(make_cfg(f"prior={name}", "latent_dim=2"), tmp_path)
    for picture in pictures + ["latent_density"]:
        assert (tmp_path / f"{picture}.png").stat().st_size > 1000, picture
    ea = EventAccumulator(str(tmp_path))
    ea.Reload()
    assert {f"prior/{p}" for p in pictures + ["latent_density"]} <= set(ea.Tags()["images"])


def test_fast_mixture_log_prob_is_exact_where_float32_expansion_is_not():
    """Small variances far from the origin: the expanded quadratic form must still match the direct formula."""
    from vae_runner.model.priors.mixture import mixture_log_prob

    torch.manual_seed(0)
    means = 20 + torch.randn(7, 4)
    logvars = torch.full((7, 4), -9.0)  # std ~ 0.011
    z = means[torch.randint(7, (30,))] + 0.01 * torch.randn(30, 4)
    direct = reference_mixture_log_prob(z.double(), means.double(), logvars.double(), None).float()
    torch.testing.assert_close(mixture_log_prob(z, means, logvars), direct, atol=1e-4, rtol=1e-5)
