"""The disentanglement objectives' formulas (latent_penalties.py) against torch.distributions and analytic values, and
the objective's options built from real configs: beta-TCVAE, DIP-VAE, InfoVAE/MMD and the cyclical KL schedule."""

import math

import pytest
import torch
import torch.distributions as td
from conftest import make_cfg
from hydra.utils import instantiate

from vae_runner import build
from vae_runner.cli import user_message
from vae_runner.errors import UserError
from vae_runner.latent_penalties import (
    cyclical_weight,
    dip_penalty,
    log_weights,
    mmd,
    pairwise_log_density,
    total_correlation,
)


def test_pairwise_density_is_torch_normal():
    z, mu, logvar = torch.randn(5, 3), torch.randn(5, 3), torch.randn(5, 3)
    expected = td.Normal(mu[None], (0.5 * logvar[None]).exp()).log_prob(z[:, None])
    torch.testing.assert_close(pairwise_log_density(z, mu, logvar), expected)


@pytest.mark.parametrize("estimator", ["mws", "mss"])
def test_estimator_weights_sum_to_one(estimator):
    w = log_weights(8, 1000, estimator, torch.zeros(1)).exp()
    torch.testing.assert_close(w.sum(1), torch.ones(8))
    if estimator == "mss":  # the example itself 1/N, its neighbour (N - M)/(N M), the rest 1/M
        assert w[2, 2] == pytest.approx(1 / 1000) and w[2, 3] == pytest.approx(993 / 7000)
        assert w[7, 0] == pytest.approx(993 / 7000) and w[2, 5] == pytest.approx(1 / 7)


def test_total_correlation_of_a_correlated_gaussian_is_its_analytic_value():
    """Posteriors N(mu_n, s^2 I) with mu_n drawn from N(0, [[1, r], [r, 1]]): q(z) is then (for many n) the Gaussian
    of covariance [[1 + s^2, r], [r, 1 + s^2]], whose total correlation is -0.5 log(1 - rho^2), rho = r / (1 + s^2)."""
    torch.manual_seed(0)
    r, s, n = 0.8, 0.2, 2000
    mu = td.MultivariateNormal(torch.zeros(2), torch.tensor([[1.0, r], [r, 1.0]])).sample((n,)).double()
    logvar = torch.full_like(mu, math.log(s**2))
    z = mu + s * torch.randn_like(mu)
    expected = -0.5 * math.log(1 - (r / (1 + s**2)) ** 2)
    for estimator in ("mws", "mss"):
        assert total_correlation(z, mu, logvar, n, estimator).mean().item() == pytest.approx(expected, abs=0.03)
    independent = torch.randn(n, 2, dtype=torch.float64)
    tc0 = total_correlation(independent + s * torch.randn_like(independent), independent, logvar, n, "mss")
    assert abs(tc0.mean().item()) < 0.03


def test_dip_penalty_is_zero_at_the_identity_and_counts_each_part():
    mu = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]]) * math.sqrt(2)  # Cov[mu] = I
    logvar = torch.full((4, 2), -30.0)
    assert dip_penalty(mu, logvar, "i", 10.0, 100.0).item() == pytest.approx(0.0, abs=1e-6)
    # DIP-II adds E[sigma^2] = 1 on the diagonal: (2 - 1)^2 per dimension
    assert dip_penalty(mu, torch.zeros(4, 2), "ii", 10.0, 100.0).item() == pytest.approx(100.0 * 2)
    skew = mu @ torch.tensor([[1.0, 0.5], [0.0, 1.0]])  # Cov = [[1, .5], [.5, 1.25]]
    assert dip_penalty(skew, logvar, "i", 10.0, 0.0).item() == pytest.approx(10.0 * 2 * 0.25)


def test_mmd_separates_distributions_and_not_samples_of_one():
    torch.manual_seed(0)
    same = mmd(torch.randn(500, 4), torch.randn(500, 4))
    apart = mmd(torch.randn(500, 4), torch.randn(500, 4) + 2.0)
    assert abs(same.item()) < 0.01 and apart.item() > 0.3


def test_cyclical_weight_rises_then_holds_in_every_cycle():
    weights = [cyclical_weight(4.0, 0.0, 10, 0.5, e) for e in (0, 2.5, 5, 9, 10, 12.5)]
    assert weights == [0.0, 2.0, 4.0, 4.0, 0.0, 2.0]


def objective_terms(*overrides):
    """The objective of a real config on a real batch: its terms in training and in evaluation."""
    cfg = make_cfg("dataset=digits", *overrides)
    device = build.setup(cfg)
    data = build.load_data(cfg, device)
    model = build.build_model(cfg, data, device)
    objective = instantiate(cfg.objective)
    objective.dataset_size = len(data.train)
    x = data.train.floats(slice(0, 64))
    return objective, model, objective(model, x, progress=(0.0, 0)), objective(model, x)


@pytest.mark.parametrize(
    "override, term",
    [
        ("objective.tc_weight=5", "tc"),
        ("objective.dip=ii", "dip"),
        ("objective.mmd_weight=100", "mmd"),
    ],
)
def test_each_penalty_adds_its_term_to_the_training_loss_only(override, term, no_threads):
    torch.manual_seed(0)
    _, _, plain, _ = objective_terms()
    torch.manual_seed(0)
    objective, _, trained, evaluated = objective_terms(override)
    assert term in trained and term not in evaluated  # evaluation reports the ELBO terms alone
    torch.testing.assert_close(trained["elbo"], plain["elbo"])
    weight = {"tc": 5.0, "dip": 1.0, "mmd": 100.0}[term]
    torch.testing.assert_close(trained["loss"], plain["loss"] + weight * trained[term])


def test_what_does_not_compose_says_so(no_threads):
    with pytest.raises(UserError, match="prior=gaussian"):
        objective_terms("objective.dip=i", "prior=mog")
    with pytest.raises(Exception, match="cycle_epochs") as caught:  # raised inside instantiate, which wraps it
        objective_terms("objective.cycle_epochs=4", "objective.warmup_epochs=2")
    assert "set one of them to 0" in user_message(caught.value)  # what vae-run prints: the paragraph alone


def test_the_factor_vae_critic_learns_to_see_correlation_and_gives_each_part_its_own_gradient():
    from vae_runner.model.critic import FactorCritic, permute_dims

    torch.manual_seed(0)
    z = torch.randn(256, 1).repeat(1, 2) + 0.1 * torch.randn(256, 2)  # two almost equal dimensions: TC >> 0
    shuffled = permute_dims(z)
    assert sorted(shuffled[:, 0].tolist()) == sorted(z[:, 0].tolist())  # each dimension keeps its values
    critic = FactorCritic(2, [32, 32])
    adam = torch.optim.Adam(critic.parameters(), lr=1e-2)
    for _ in range(200):
        adam.zero_grad()
        critic.loss(z).mean().backward()
        adam.step()
    # E_q[log q(z) / prod q(z_d)] is the TC: -0.5 log(1 - rho^2) for this Gaussian, rho = 1 / 1.01
    assert critic.total_correlation(z).mean().item() == pytest.approx(-0.5 * math.log(1 - (1 / 1.01) ** 2), abs=0.5)
    assert critic.total_correlation(permute_dims(z)).mean() < 0  # under prod q(z_d): minus a KL
    # the TC term reaches z and not the critic; the critic's loss reaches the critic and not z
    z_leaf = z.clone().requires_grad_()
    critic.zero_grad()
    critic.total_correlation(z_leaf).sum().backward()
    assert z_leaf.grad is not None and all(p.grad is None for p in critic.parameters())
    z_leaf.grad = None
    critic.loss(z_leaf).sum().backward()
    assert z_leaf.grad is None and all(p.grad is not None for p in critic.parameters())


def test_a_factor_vae_run_trains_its_critic_and_resumes_it(tmp_path, no_threads):
    from vae_runner import run
    from vae_runner.runs.checkpoint import load_checkpoint
    from vae_runner.runs.directory import checkpoint_path

    args = ("objective.factor_vae_weight=10", "objective.critic_hidden=[16]", "trainer.epochs=2")
    metrics = run.train(make_cfg(*args), tmp_path)
    assert torch.isfinite(torch.tensor(metrics["test/elbo"]))
    state = load_checkpoint(checkpoint_path(tmp_path))
    assert any(k.startswith("critic.") for k in state["model"])  # the critic is saved with the model
    groups = state["optimizer"]["param_groups"]
    assert len(groups) == 2 and groups[1]["lr"] == 1e-4 and tuple(groups[1]["betas"]) == (0.5, 0.9)
    again = [f"resume={tmp_path}", "trainer.epochs=3"]  # the run's own settings come from its checkpoint
    more = run.train(make_cfg(*again), tmp_path / "x", again)
    assert more["epochs"] == 3


@pytest.mark.parametrize("prior", ["gaussian", "mog", "vamp", "gtm", "gtm_vamp", "flow"])
def test_the_penalties_that_need_no_prior_shape_compose_with_every_prior(prior, no_threads):
    penalties = ("objective.tc_weight=2", "objective.mmd_weight=10", "objective.factor_vae_weight=5")
    objective, model, trained, evaluated = objective_terms(f"prior={prior}", *penalties, "objective.critic_hidden=[16]")
    for term in ("tc", "mmd", "factor_tc", "critic", "loss"):
        assert torch.isfinite(trained[term]).all(), term
    trained["loss"].mean().backward()  # gradients reach the prior's own parameters too
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
