"""The posterior axis (model/posteriors/): each option's density against quadrature and its own draws, IAF's
log-determinant against autograd's Jacobian, the mixture's implicit-reparameterisation gradient against closed-form
gradients, the closed-form KLs, and `vae-run posterior=<each> prior=<each>` end to end."""

from __future__ import annotations

import math

import pytest
import torch
import torch.distributions as td
from conftest import PRIORS, make_cfg, options

from vae_runner import run
from vae_runner.build import build_model
from vae_runner.config.compose import build_option
from vae_runner.evaluation import diagnostics as dx
from vae_runner.evaluation.metrics import log_likelihood
from vae_runner.model.posteriors.gaussian import diagonal_normal
from vae_runner.model.posteriors.mixture import GaussianMixture, MixturePosterior
from vae_runner.model.priors.gaussian import GaussianPrior

POSTERIORS = options("posterior")


def posterior(name: str, d: int = 2, seed: int = 0):
    """A posterior module and random encoder outputs for 3 examples; IAF's MADE weights scaled up so that the flow
    bends the Gaussian visibly (and its MADEs narrow, to keep the quadrature quick)."""
    torch.manual_seed(seed)
    module = build_option("posterior", name, latent_dim=d, **({"hidden": 16} if name == "iaf" else {}))
    params = 0.6 * torch.randn(3, module.outputs, dtype=torch.float64)
    module = module.double()
    with torch.no_grad():
        for p in module.parameters():
            p.mul_(3.0)
    return module, params


def grid(lim: float = 9.0, n: int = 451):
    axis = torch.linspace(-lim, lim, n, dtype=torch.float64)
    zz = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)  # (n*n, 2)
    return zz, (axis[1] - axis[0]) ** 2


@pytest.mark.parametrize("name", POSTERIORS)
def test_density_integrates_to_one_and_matches_its_draws(name):
    module, params = posterior(name)
    q = module(params)
    zz, cell = grid()
    with torch.no_grad():
        dens = torch.cat([q.log_prob(c[:, None, :]) for c in zz.split(20000)]).exp()  # (G, 3)
        mass = dens.sum(0) * cell
        assert torch.allclose(mass, torch.ones(3, dtype=torch.float64), atol=2e-3), mass
        draws = q.sample((40000,))  # (S, 3, 2)

    def tests(z):
        return torch.stack([z[..., 0], z[..., 1], z[..., 0] ** 2, z[..., 0] * z[..., 1], torch.cos(z[..., 1])])

    exact = (tests(zz)[:, :, None] * dens[None]).sum(1) * cell  # (5, 3) by quadrature
    f = tests(draws)  # (5, S, 3)
    mc, se = f.mean(1), f.std(1) / math.sqrt(f.shape[1])
    assert ((mc - exact).abs() <= 5 * se + 1e-3).all(), (mc, exact, se)


@pytest.mark.parametrize("name", POSTERIORS)
def test_log_prob_of_a_draw_is_the_density_at_that_point(name):
    """The density a posterior reports for its own draw (IAF: from the way it was drawn) equals its density at that
    point computed afresh (IAF: by inverting the flow), and from_noise is deterministic."""
    module, params = posterior(name, d=4)
    q = module(params)
    eps = torch.randn(5, 3, q.noise_dim, dtype=torch.float64)
    z = q.from_noise(eps)
    assert torch.equal(z, module(params).from_noise(eps))
    assert torch.allclose(q.log_prob(z), module(params).log_prob(z.clone()), atol=1e-8)


def test_iaf_log_determinant_equals_autograds_jacobian():
    module, params = posterior("iaf", d=4)
    q = module(params[:1])
    z0 = torch.randn(4, dtype=torch.float64)

    def flow(x):
        return q.flow(x[None])[0][0]

    jac = torch.autograd.functional.jacobian(flow, z0)  # (4, 4)
    log_det = torch.linalg.slogdet(jac)[1]
    z, log_q = q.flow(z0[None])
    assert torch.allclose(q.base.log_prob(z0[None]) - log_q, log_det, atol=1e-10)
    made = module.steps[0]  # output d of a MADE depends on z_<d only: a strictly lower-triangular Jacobian
    for out in (0, 1):
        j = torch.autograd.functional.jacobian(lambda x, out=out: made(x[None], q.h)[out][0], z0)
        assert torch.equal(j.triu(), torch.zeros_like(j))


def test_mixture_gradient_estimator_is_unbiased():
    """E_q[z_1 z_2] = sum_c w_c mu_c1 mu_c2 and E_q|z|^2 = sum_c w_c (|mu_c|^2 + sum_d s_cd^2): their exact gradients
    in the logits, means and log-variances against the mean of the implicit-reparameterisation gradients (draws in
    20 batches: the tolerance is 5 standard errors of the batch means)."""
    torch.manual_seed(1)
    module = MixturePosterior(latent_dim=3, n_components=4).double()
    params = torch.randn(2, module.outputs, dtype=torch.float64, requires_grad=True)
    logits, means, logvars = module.split(params)
    w = torch.softmax(logits, -1)
    exact_fns = {
        "cross": (w * means[..., 0] * means[..., 1]).sum(),
        "square": (w * (means.pow(2) + logvars.exp()).sum(-1)).sum(),
    }
    for name, exact in exact_fns.items():
        (g_exact,) = torch.autograd.grad(exact, params, retain_graph=True)
        batches = []
        for _ in range(20):
            z = module(params).rsample((20000,))  # (S, 2, 3)
            f = z[..., 0] * z[..., 1] if name == "cross" else z.pow(2).sum(-1)
            batches.append(torch.autograd.grad(f.mean(0).sum(), params)[0])
        g = torch.stack(batches)
        se = g.std(0) / math.sqrt(len(g))
        assert ((g.mean(0) - g_exact).abs() <= 5 * se + 1e-6).all(), (name, g.mean(0), g_exact)


def test_a_fixed_weight_mixtures_picked_draws_give_unbiased_gradients():
    """The multimodal joints' mixtures (GaussianMixture(fixed=True): constant weights) draw a component, then
    reparameterise within it: the gradients of E_q[z_1 z_2] and E_q|z|^2 in the means and log-variances against
    their exact values (5 standard errors of 20 batch means)."""
    torch.manual_seed(2)
    logits = torch.tensor([[0.0, 0.0, -math.inf], [0.0, 0.0, 0.0]], dtype=torch.float64)  # one weight-0 component
    means = torch.randn(2, 3, 3, dtype=torch.float64, requires_grad=True)
    logvars = (0.3 * torch.randn(2, 3, 3, dtype=torch.float64)).requires_grad_()
    w = torch.softmax(logits, -1)[..., None]
    exact_fns = {
        "cross": (w[..., 0] * means[..., 0] * means[..., 1]).sum(),
        "square": (w[..., 0] * (means.pow(2) + logvars.exp()).sum(-1)).sum(),
    }
    q = GaussianMixture(logits, means, logvars, fixed=True)
    for name, exact in exact_fns.items():
        grads = torch.autograd.grad(exact, [means, logvars], retain_graph=True, allow_unused=True)
        g_exact = torch.cat(
            [(torch.zeros_like(p) if g is None else g).flatten() for g, p in zip(grads, [means, logvars])]
        )
        batches = []
        for _ in range(20):
            z = q.rsample((20000,))
            f = z[..., 0] * z[..., 1] if name == "cross" else z.pow(2).sum(-1)
            grads = torch.autograd.grad(f.mean(0).sum(), [means, logvars], retain_graph=True, allow_unused=True)
            batches.append(
                torch.cat(
                    [(torch.zeros_like(p) if g is None else g).flatten() for g, p in zip(grads, [means, logvars])]
                )
            )
        g = torch.stack(batches)
        se = g.std(0) / math.sqrt(len(g))
        assert ((g.mean(0) - g_exact).abs() <= 5 * se + 1e-6).all(), (name, g.mean(0), g_exact)


@pytest.mark.parametrize("name", ["full", "lowrank"])
def test_gaussian_prior_kl_in_closed_form_for_covariance_posteriors(name):
    module, params = posterior(name, d=4)
    q = module(params)
    reference = td.MultivariateNormal(q.mean, covariance_matrix=q.covariance_matrix)
    standard = td.MultivariateNormal(torch.zeros(4, dtype=torch.float64), torch.eye(4, dtype=torch.float64))
    prior = GaussianPrior(4).double()
    assert torch.allclose(prior.analytic_kl(q), td.kl_divergence(reference, standard), atol=1e-10)
    assert torch.allclose(q.marginal().scale ** 2, torch.diagonal(q.covariance_matrix, dim1=-2, dim2=-1))


def test_gaussian_posterior_keeps_the_formulas_it_had():
    """posterior=gaussian: the ELBO terms, the importance-sampled log-likelihood and the codes equal, bit for bit,
    what the code before the posterior axis computed from the encoder's (mu, logvar) directly."""
    from conftest import tiny_data

    from vae_runner.rng import STREAM_ELBO, STREAM_LOG_LIKELIHOOD, index_noise

    data = tiny_data()
    model = build_model(make_cfg("latent_dim=3"), data, torch.device("cpu")).eval()
    x, index, k = data.test.x[:8], torch.arange(8), 4
    with torch.no_grad():
        mu, logvar = model.encoder(x).chunk(2, dim=-1)
        old = diagonal_normal(mu, logvar)
        # the log-likelihood as metrics.py computed it
        z = mu + old.scale * index_noise(0, STREAM_LOG_LIKELIHOOD, index, range(k), 3)  # (k, 8, 3)
        log_px = model.likelihood(model.decode_params(z.flatten(0, 1)).view(k, 8, *x.shape[1:])).log_prob(x)
        log_w = log_px + model.prior.log_prob(z.flatten(0, 1)).view(k, 8) - old.log_prob(z).sum(-1)
        expected = torch.logsumexp(log_w, dim=0) - math.log(k)
        assert torch.equal(log_likelihood(model, data.test, k=k, limit=8), expected)
        # the objective's terms with evaluation's noise
        z = mu + old.scale * index_noise(0, STREAM_ELBO, index, range(1), 3)[0]
        recon = model.decode(z).log_prob(x)
        kl = td.kl_divergence(td.Independent(old, 1), model.prior.distribution())
        terms = build_option("objective", "elbo")(
            model, x, noise=lambda k, d: index_noise(0, STREAM_ELBO, index, range(k), d)
        )
        assert torch.equal(terms["recon"], recon) and torch.equal(terms["kl"], kl)
        assert torch.equal(dx.encode_split(model, data.test).mean, model.encoder(data.test.x).chunk(2, dim=-1)[0])


@pytest.mark.parametrize("name", POSTERIORS)
@pytest.mark.parametrize("prior", PRIORS)
def test_every_posterior_with_every_prior_trains_and_evaluates(name, prior, tmp_path, no_threads):
    cfg = make_cfg(f"posterior={name}", f"prior={prior}", "latent_dim=3", "trainer.limit_batches=3")
    metrics = run.train(cfg, tmp_path)
    for key in ("test/elbo", "test/log_likelihood", "val/elbo", "test/active_units"):
        assert math.isfinite(metrics[key]), (key, metrics[key])
    assert metrics["test/log_likelihood"] >= metrics["test/elbo"] - 5.0
    assert ("test/mutual_information" in metrics) == (name != "iaf")
    assert (tmp_path / "samples.png").exists() and (tmp_path / "checkpoints" / "last.pt").exists()


def test_a_run_saved_before_the_posterior_axis_loads_with_the_gaussian_posterior(tmp_path, no_threads):
    from vae_runner.api import load

    run.train(make_cfg(), tmp_path)
    path = tmp_path / "checkpoints" / "best.pt"
    state = torch.load(path, weights_only=False)
    for key in ("config", "config_source"):
        state[key].pop("posterior")
    torch.save(state, path)
    loaded = load(tmp_path)
    assert type(loaded.model.variational).__name__ == "GaussianPosterior"
    assert loaded.config.posterior._target_.endswith("GaussianPosterior")


def test_what_needs_the_diagonal_gaussian_is_refused_in_one_message():
    from vae_runner.config.checks import validate
    from vae_runner.errors import UserError

    cfg = make_cfg("posterior=iaf", "objective.tc_weight=2", "objective.dip=i")
    with pytest.raises(UserError) as err:
        validate(cfg)
    assert "objective.tc_weight" in str(err.value) and "objective.dip" in str(err.value)
    validate(make_cfg("posterior=mixture", "objective.mmd_weight=1", "objective.free_bits=0.1"))


def test_an_encoder_of_your_own_without_outputs_fits_the_gaussian_posterior_only():
    from vae_runner.build import outputs_for
    from vae_runner.errors import UserError

    node = make_cfg("architecture.encoder._target_=torch.nn.Identity").architecture.encoder
    assert outputs_for(node, build_option("posterior", "gaussian", latent_dim=3)) == {}
    with pytest.raises(UserError, match="outputs"):
        outputs_for(node, build_option("posterior", "full", latent_dim=3))


@pytest.mark.parametrize("name", POSTERIORS)
def test_aggregate_posterior_is_the_mean_of_the_batchs_densities(name):
    """Each posterior's own aggregate_log_prob (the mixture-density formula where it has one) against the
    definition log (1/B) sum_j q(z | x_j), from log_prob; IAF states it has none."""
    module, params = posterior(name, d=3)
    q = module(params)
    z = torch.randn(7, 3, dtype=torch.float64)
    got = q.aggregate_log_prob(z)
    if name == "iaf":
        assert got is None
        return
    definition = torch.logsumexp(q.log_prob(z[:, None, :]), dim=-1) - math.log(3)
    assert torch.allclose(got, definition, atol=1e-9)
