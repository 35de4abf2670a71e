"""The objective's options: IWAE (k = 1 is the ELBO exactly; the bound is above the ELBO; its gradient is the
self-normalised weighted gradient), the KL warm-up schedule, free bits and the triplet loss; every option composes
with every prior and likelihood."""

import pytest
import torch
from conftest import LIKELIHOODS, PRIORS, SHAPE, MCOnlyPrior, make_cfg, tiny_data, tiny_vae

from vae_runner import run
from vae_runner.config.compose import build_option
from vae_runner.errors import UserError
from vae_runner.model.priors.gaussian import GaussianPrior
from vae_runner.model.vae import VAE
from vae_runner.objectives import triplet_loss, warmup_weight


def tiny_model(prior=None, d=3, seed=0):
    torch.manual_seed(seed)
    return VAE(
        build_option("architecture", "mlp", "encoder", input_shape=SHAPE, latent_dim=d, hidden=[16]),
        build_option("architecture", "mlp", "decoder", output_shape=SHAPE, latent_dim=d, hidden=[16]),
        prior or GaussianPrior(d),
        build_option("likelihood", "bernoulli", data_shape=SHAPE),
    )


def batch(n=32):
    return torch.bernoulli(tiny_data(n).train.x)


@pytest.mark.parametrize("prior", [GaussianPrior(3), MCOnlyPrior(3)])
def test_iwae_with_one_sample_is_the_elbo_exactly(prior):
    model, x = tiny_model(prior), batch()
    torch.manual_seed(1)
    elbo = build_option("objective", "elbo", beta=2.0)(model, x)
    torch.manual_seed(1)
    iwae = build_option("objective", "elbo", beta=2.0, k=1)(model, x)
    for key in ("elbo", "recon", "kl", "loss"):
        assert torch.equal(elbo[key], iwae[key]), key
    if isinstance(prior, GaussianPrior):
        assert torch.equal(elbo["loss"], -(elbo["recon"] - 2.0 * elbo["kl"]))


def test_iwae_bound_is_above_the_elbo_and_grows_with_k():
    model, x = tiny_model(), batch(64)
    torch.manual_seed(0)
    means = {}
    for k in (1, 5, 50):
        vals = [(-build_option("objective", "elbo", k=k)(model, x)["loss"]).mean().item() for _ in range(20)]
        means[k] = sum(vals) / len(vals)
    assert means[1] < means[5] < means[50]
    terms = build_option("objective", "elbo", k=5)(model, x)
    assert torch.allclose(terms["iwae"], -terms["loss"])  # beta = 1: the loss is minus the IWAE bound
    assert set(terms) >= {"elbo", "recon", "kl", "iwae", "loss"}


def test_iwae_gradient_is_the_self_normalised_weighted_gradient():
    """grad log (1/k) sum_j w_j = sum_j (w_j / sum_i w_i) grad log w_j, with the same reparameterised draws."""
    model, x = tiny_model(MCOnlyPrior(3)), batch(4)
    params = [p for p in model.parameters() if p.requires_grad]
    torch.manual_seed(7)
    loss = build_option("objective", "elbo", k=6)(model, x)["loss"].sum()
    auto = torch.autograd.grad(loss, params)
    torch.manual_seed(7)  # the same draws, computed by hand
    q = model.posterior(x)
    z = q.rsample((6,))  # (k, B, D)
    log_w = (
        model.decode(z.flatten(0, 1)).log_prob(x.repeat(6, 1, 1, 1)).view(6, -1)
        + model.prior.log_prob(z.flatten(0, 1)).view(6, -1)
        - q.log_prob(z)
    )
    weights = torch.softmax(log_w, 0).detach()  # (k, B) self-normalised, no gradient through them
    by_hand = torch.autograd.grad(-(weights * log_w).sum(), params)
    for a, b in zip(auto, by_hand):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_warmup_schedule_values():
    assert [warmup_weight(4.0, 0.0, 10, 0, e, 0) for e in (0, 2.5, 5, 10, 20)] == [0.0, 1.0, 2.0, 4.0, 4.0]
    assert [warmup_weight(1.0, 0.5, 0, 100, 0, s) for s in (0, 50, 100, 1000)] == [0.5, 0.75, 1.0, 1.0]
    assert warmup_weight(3.0, 0.0, 0, 0, 1, 1) == 3.0
    obj = build_option("objective", "elbo", beta=2.0, warmup_epochs=4)
    assert obj.kl_weight((1.0, 10)) == 0.5 and obj.kl_weight(None) == 2.0  # evaluation uses beta
    model, x = tiny_model(), batch()
    torch.manual_seed(0)
    early = obj(model, x, progress=(0.0, 0))
    assert torch.equal(early["loss"], -early["recon"])  # the KL has weight 0 at the start
    assert torch.equal(early["elbo"], early["recon"] - early["kl"])  # the reported ELBO is untouched


def test_warmup_is_logged_as_train_beta(tmp_path, no_threads):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run.train(make_cfg("trainer.epochs=4", "trainer.log_every=1", "objective.warmup_epochs=2", "beta=2"), tmp_path)
    ea = EventAccumulator(str(tmp_path))
    ea.Reload()
    betas = [e.value for e in ea.Scalars("train/beta")]
    assert betas[0] < 1.0 and betas[-1] == 2.0 and betas == sorted(betas)


def test_free_bits_changes_only_dimensions_below_the_floor():
    model, x = tiny_model(), batch()
    torch.manual_seed(0)
    plain = build_option("objective", "elbo")(model, x)
    torch.manual_seed(0)
    floored = build_option("objective", "elbo", free_bits=1e-6)(model, x)  # every dimension is above a tiny floor
    assert torch.equal(plain["loss"], floored["loss"])
    with torch.no_grad():  # collapse dimension 0: its KL goes to ~0
        model.encoder.net[-1].weight[[0, 3]] = 0.0
        model.encoder.net[-1].bias[[0, 3]] = 0.0
    torch.manual_seed(0)
    plain = build_option("objective", "elbo")(model, x)
    torch.manual_seed(0)
    floored = build_option("objective", "elbo", free_bits=0.5)(model, x)
    q = model.posterior(x)
    per_dim = torch.distributions.kl_divergence(q.base_dist, torch.distributions.Normal(0.0, 1.0)).mean(0)
    expected = torch.clamp(0.5 - per_dim, min=0).sum()
    assert per_dim[0] < 1e-6 and expected > 0.49
    torch.testing.assert_close(floored["loss"] - plain["loss"], expected.expand(len(x)))
    assert torch.equal(floored["elbo"], plain["elbo"])  # only the optimised loss changes


def test_triplet_loss_is_zero_when_margins_are_met_and_its_gradient_moves_the_right_means():
    y = torch.tensor([0, 0, 1, 1])
    far = torch.tensor([[0.0, 0.0], [0.1, 0.0], [10.0, 0.0], [10.1, 0.0]])
    assert triplet_loss(far, y, margin=1.0).sum() == 0
    mu = torch.tensor([[0.0, 0.0], [2.0, 0.0], [1.0, 0.0], [5.0, 0.0]], requires_grad=True)
    y = torch.tensor([0, 0, 1, 2])  # anchor 0: positive 1, negative 2 or 3
    torch.manual_seed(0)
    loss = triplet_loss(mu, y, margin=1.0)
    assert loss[2] == 0 and loss[3] == 0  # no positive for classes 1 and 2
    assert loss[0] > 0  # d(a, p) = 2 > d(a, n) - 1 for either negative
    neg = 2 if loss[0].item() == pytest.approx(2.0) else 3
    loss[0].backward()
    with torch.no_grad():
        stepped = mu - 0.1 * mu.grad  # one gradient-descent step
    d = lambda m, i, j: (m[i] - m[j]).norm().item()  # noqa: E731
    assert d(stepped, 0, 1) < d(mu, 0, 1)  # anchor and positive move together
    assert d(stepped, 0, neg) > d(mu, 0, neg)  # anchor and negative move apart
    assert mu.grad[[2, 3]].abs().sum() > 0 and mu.grad[5 - neg].abs().sum() == 0  # only the drawn negative moves


def test_triplet_loss_needs_labels():
    with pytest.raises(UserError, match="labelled"):
        build_option("objective", "elbo", triplet_weight=1.0)(tiny_model(), batch(), None)


@pytest.mark.parametrize("prior_name", PRIORS)
@pytest.mark.parametrize("likelihood", LIKELIHOODS)
def test_every_option_composes_with_every_prior_and_likelihood(prior_name, likelihood):
    model = tiny_vae(prior_name, likelihood)
    data = tiny_data(32).train
    obj = build_option("objective", "elbo", beta=2.0, k=3, warmup_epochs=2, free_bits=0.1, triplet_weight=0.5)
    terms = obj(model, torch.bernoulli(data.x), data.y, progress=(1.0, 5))
    assert set(terms) == {"elbo", "recon", "kl", "iwae", "triplet", "loss"}
    assert all(torch.isfinite(t).all() for t in terms.values())
    terms["loss"].mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_objective_overrides_validate():
    with pytest.raises(UserError, match="objective.k=0"):
        run.run(make_cfg("objective.k=0"), None)
    with pytest.raises(UserError, match="warmup_steps are both set"):
        run.run(make_cfg("objective.warmup_epochs=2", "objective.warmup_steps=10"), None)
