"""The reference implementations' objectives as options: `objective.gradient=dreg` (the doubly reparameterised
gradient, Tucker et al. 2019) is the bound's value with the stated gradient, unbiased and of lower variance;
`objective.stratified` (MMVAE) weighs each mixture component's bound by its weight, ignores a weight-0 component,
and approaches log p(x) of a linear-Gaussian model from below; MoPoE's `modalities.subset_prior=full` (MultiVae)
puts the prior expert in the full subset's product only; `objective=mmvae` trains the mixture joints in vae-run."""

import math

import numpy as np
import pytest
import torch
import torch.distributions as td
from conftest import make_cfg, tiny_data
from test_objective_options import tiny_model

from vae_runner import run
from vae_runner.config.checks import validate
from vae_runner.config.compose import build_option
from vae_runner.errors import UserError
from vae_runner.model.joint_posteriors import mixture_of_products
from vae_runner.model.posteriors.mixture import GaussianMixture

TRAINING = (1.0, 0)  # progress (epoch, step): the reweighted options act in training only


def objective(**settings):
    return build_option("objective", "elbo", **settings)


def batch(n=6):
    return torch.bernoulli(tiny_data(n).train.x)


def test_dreg_is_the_bound_with_fixed_q_parameters_and_squared_weights_on_the_encoder():
    """The value is the IWAE bound at the same draws; the decoder's gradient is sum_j w_j grad log w_j, the
    encoder's sum_j w_j^2 (d log w_j / dz_j)(dz_j / dphi) with q's parameters held fixed in log q."""
    model, x, k = tiny_model(), batch(), 5
    torch.manual_seed(3)
    plain = objective(k=k)(model, x, progress=TRAINING)
    torch.manual_seed(3)
    dreg = objective(k=k, gradient="dreg")(model, x, progress=TRAINING)
    torch.testing.assert_close(dreg["loss"], plain["loss"])
    encoder, decoder = list(model.encoder.parameters()), list(model.decoder.parameters())
    auto = torch.autograd.grad(dreg["loss"].sum(), encoder + decoder)
    torch.manual_seed(3)  # the same draws, by hand
    params = model.encode(x)
    z = model.variational(params).rsample((k,))
    fixed = model.variational(params.detach())
    log_w = (
        model.decode(z.flatten(0, 1)).log_prob(x.repeat(k, 1, 1, 1)).view(k, -1)
        + model.prior.log_prob(z.flatten(0, 1)).view(k, -1)
        - fixed.log_prob(z)
    )
    w = torch.softmax(log_w, 0).detach()
    by_hand = torch.autograd.grad(-(w**2 * log_w).sum(), encoder, retain_graph=True)
    by_hand += torch.autograd.grad(-(w * log_w).sum(), decoder)
    for a, b in zip(auto, by_hand):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def gradients(model, settings, x, repeats):
    """(repeats, P) flattened encoder gradients of the summed loss, one row per fresh draw."""
    loss_of = objective(**settings)
    rows = []
    for _ in range(repeats):
        loss = loss_of(model, x, progress=TRAINING)["loss"].sum()
        rows.append(torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(model.encoder.parameters()))]))
    return torch.stack(rows)


def test_dreg_gradient_is_unbiased_and_less_noisy_than_the_pathwise_one():
    model, x = tiny_model(d=2), batch(4)
    torch.manual_seed(0)
    pathwise = gradients(model, {"k": 20}, x, 300)
    dreg = gradients(model, {"k": 20, "gradient": "dreg"}, x, 300)
    se = ((pathwise.var(0) + dreg.var(0)) / 300).sqrt()
    z = (pathwise.mean(0) - dreg.mean(0)).abs() / se.clamp_min(1e-12)
    assert (z < 5).all() and (z < 2.5).float().mean() > 0.9  # the same expectation
    assert dreg.var(0).sum() < 0.5 * pathwise.var(0).sum()  # at k = 20 DReG's variance is far lower


def mixture_model(logits, means, logvars, w, b, sigma):
    """A stand-in for the VAE the objective reads: q(z|x) the given Gaussian mixture, p(x|z) = N(Wz + b, sigma^2),
    p(z) = N(0, I)."""

    class Model:
        prior = build_option("prior", "gaussian", latent_dim=means.shape[-1])

        def encode(self, x):
            return torch.zeros(len(x), 1) + 0 * x[:, :1]

        def variational(self, params):
            n = len(params)
            return GaussianMixture(logits.expand(n, -1), means.expand(n, -1, -1), logvars.expand(n, -1, -1))

        def posterior(self, x):
            return self.variational(self.encode(x))

        def decode(self, z):
            return td.Independent(td.Normal(z @ w.T + b, sigma), 1)

    return Model()


def linear_gaussian(seed=0):
    g = torch.Generator().manual_seed(seed)
    w, b, sigma = torch.randn(3, 2, generator=g), torch.randn(3, generator=g), 0.7
    x = torch.randn(1, 2, generator=g) @ w.T + b + sigma * torch.randn(1, 3, generator=g)
    w64, b64, x64 = w.double(), b.double(), x.double()
    exact = td.MultivariateNormal(b64, w64 @ w64.T + sigma**2 * torch.eye(3, dtype=torch.float64)).log_prob(x64)
    post_cov = torch.linalg.inv(torch.eye(2, dtype=torch.float64) + w64.T @ w64 / sigma**2)
    post_mean = post_cov @ w64.T @ (x64[0] - b64) / sigma**2
    return w, b, sigma, x, exact, post_mean.float(), post_cov.diagonal().float()


def test_stratified_bound_weighs_each_components_bound_and_reaches_log_px_of_a_linear_gaussian_model():
    w, b, sigma, x, exact, mean, var = linear_gaussian()
    means = torch.stack([mean, mean + 0.3])[None]  # (1, C=2, D): one component near the posterior, one off it
    logvars = torch.stack([var.log(), var.log() + 0.7])[None]  # broader: a fair proposal at k = 2000
    logits = torch.tensor([[0.3, -0.3]])
    model = mixture_model(logits, means, logvars, w, b, sigma)
    torch.manual_seed(0)
    bounds = {k: -objective(k=k, stratified=True)(model, x, progress=TRAINING)["loss"].item() for k in (1, 2000)}
    elbo1 = [-objective(k=1, stratified=True)(model, x, progress=TRAINING)["loss"].item() for _ in range(400)]
    assert np.mean(elbo1) < exact.item() - 0.05  # k = 1: the ELBO of a mixture q that is not the posterior
    assert abs(bounds[2000] - exact.item()) < 0.03  # every component's IWAE bound tends to log p(x)
    off = mixture_model(torch.tensor([[0.0, -math.inf]]), means, logvars, w, b, sigma)
    moved = mixture_model(torch.tensor([[0.0, -math.inf]]), means + torch.tensor([[0.0], [9.0]]), logvars, w, b, sigma)
    torch.manual_seed(1)  # a component of weight 0 is ignored: moving it changes nothing
    a = objective(k=4, stratified=True)(off, x, progress=TRAINING)["loss"]
    torch.manual_seed(1)
    c = objective(k=4, stratified=True)(moved, x, progress=TRAINING)["loss"]
    torch.testing.assert_close(a, c)


def test_stratified_elbo_gradient_of_a_mixture_posterior_matches_the_implicit_reparameterisation():
    """k = 1: both estimate the gradient of the same ELBO (the stratified one sums over the components exactly)."""
    w, b, sigma, x, _, mean, var = linear_gaussian(1)
    base = torch.stack([mean - 0.5, mean + 0.5])[None]
    params = [p.clone().requires_grad_() for p in (torch.tensor([[0.2, -0.2]]), base, var.log().expand(1, 2, 2))]
    model = mixture_model(*params, w, b, sigma)
    rows = {True: [], False: []}
    many = x.expand(500, -1)  # 500 independent draws per call, 20 calls: their sums' spread gives the s.e.
    torch.manual_seed(0)
    for stratified in (True, False):
        for _ in range(20):
            loss = objective(k=1, stratified=stratified)(model, many, progress=TRAINING)["loss"].sum()
            rows[stratified].append(torch.cat([g.flatten() for g in torch.autograd.grad(loss, params)]))
    s, p = torch.stack(rows[True]), torch.stack(rows[False])
    z = (s.mean(0) - p.mean(0)).abs() / ((s.var(0) + p.var(0)) / 20).sqrt().clamp_min(1e-12)
    assert (z < 5).all()


def test_mopoe_subset_prior_full_puts_the_prior_expert_in_the_full_subsets_product_only():
    torch.manual_seed(0)
    mu, logvar = torch.randn(2, 4, 3), torch.randn(2, 4, 3)
    present = torch.ones(2, 4, dtype=torch.bool)
    every, full = (mixture_of_products(mu, logvar, present, s) for s in ("every", "full"))
    for m in range(2):  # subsets (0,), (1,), (0, 1): a singleton is the expert itself under full
        torch.testing.assert_close(full.means[:, m], mu[m])  # components (B, C, D)
        torch.testing.assert_close(full.logvars[:, m], logvar[m])
        torch.testing.assert_close(every.logvars[:, m], -torch.log(1 + torch.exp(-logvar[m])))
    torch.testing.assert_close(full.means[:, 2], every.means[:, 2])  # the full subset: the prior in both products
    present[1, :2] = False  # rows without modality 1: only the singleton {0} is allowed, and its values are finite
    q = mixture_of_products(mu, logvar, present, "full")
    assert torch.isfinite(q.means).all() and torch.isfinite(q.log_prob(torch.randn(4, 3))).all()
    allowed = torch.isfinite(q.log_w)  # (B, C): weight 0 on the subsets a row cannot have
    assert allowed[:2].tolist() == [[True, False, False], [True, False, False]]


def test_what_the_reweighted_options_need_is_refused_in_one_message():
    with pytest.raises(UserError) as err:
        validate(make_cfg("objective.stratified=true", "objective.free_bits=0.5"))
    assert "a mixture posterior" in str(err.value) and "free_bits" in str(err.value)
    with pytest.raises(UserError, match="posterior=iaf"):
        validate(make_cfg("posterior=iaf", "objective.gradient=dreg"))
    with pytest.raises(UserError, match="modalities.joint=poe is none"):
        validate(make_cfg("modalities.use=[image,label]", "dataset.binarize=static", "objective=mmvae"))
    validate(make_cfg("posterior=mixture", "objective=mmvae"))
    with pytest.raises(UserError, match="trainer.monitor=iwae"):
        validate(make_cfg("trainer.monitor=iwae"))


def test_monitor_iwae_picks_best_pt_by_the_validation_bound(tmp_path, no_threads):
    """objective=mmvae's validation ELBO peaked during the warm-up on digits (README, Multimodal):
    trainer.monitor=iwae selects by the bound it trains instead."""
    from vae_runner.training.trainer import MONITORED

    assert MONITORED["iwae"] == "iwae"
    cfg = make_cfg("objective=iwae", "objective.k=2", "trainer.monitor=iwae", "trainer.epochs=3")
    metrics = run.train(cfg, tmp_path)
    assert np.isfinite(metrics["val/iwae"]) and metrics["val/iwae"] >= metrics["val/elbo"] - 1.0


@pytest.mark.parametrize(
    "settings",
    [
        ("modalities.use=[image,label]", "modalities.joint=moe", "objective=mmvae", "objective.k=3"),
        ("modalities.use=[image,label]", "modalities.joint=mopoe", "modalities.subset_prior=full"),
        ("posterior=mixture", "objective.stratified=true", "objective.k=2", "objective.gradient=dreg"),
    ],
)
def test_the_reference_options_train_and_evaluate_in_vae_run(settings, tmp_path, no_threads):
    cfg = make_cfg("dataset.binarize=static", *settings, "trainer.limit_batches=3")
    metrics = run.train(cfg, tmp_path)
    assert all(np.isfinite(metrics[k]) for k in ("test/elbo", "test/log_likelihood", "val/elbo"))
