"""likelihood=correlated_gaussian against torch's MultivariateNormal on each row's observed entries, and its
conditionals against the Gaussian conditioning formula."""

import math

import pytest
import torch
import torch.distributions as td

from vae_runner.errors import UserError
from vae_runner.model.correlated_gaussian import CorrelatedGaussian

D = 5


def likelihood(rank=3, seed=0) -> CorrelatedGaussian:
    torch.manual_seed(seed)
    lik = CorrelatedGaussian((D,), init_sigma=0.7, min_sigma=0.001, rank=rank)
    with torch.no_grad():
        lik.factor.normal_()
        lik.raw_sigma.normal_()
    return lik


def rows_with_holes(n=40, seed=1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    loc = torch.randn(n, D, generator=g)
    x = torch.randn(n, D, generator=g)
    x[torch.rand(n, D, generator=g) < 0.4] = float("nan")
    return loc, x


def test_log_prob_is_the_observed_entries_multivariate_normal():
    lik = likelihood()
    loc, x = rows_with_holes()
    got = lik(loc).log_prob(x)
    cov = lik.covariance.detach()
    for i in range(len(x)):
        seen = ~torch.isnan(x[i])
        want = td.MultivariateNormal(loc[i, seen], cov[seen][:, seen]).log_prob(x[i, seen]) if seen.any() else 0.0
        assert got[i].item() == pytest.approx(float(want), abs=1e-4)


def test_no_missing_entries_and_rank_none_give_the_full_density():
    lik = likelihood(rank=None)
    assert lik.factor.shape == (D, D)
    loc, x = rows_with_holes()
    x = torch.nan_to_num(x, nan=0.3)
    want = td.MultivariateNormal(loc, lik.covariance.detach()).log_prob(x)
    torch.testing.assert_close(lik(loc).log_prob(x).detach(), want, atol=1e-4, rtol=1e-5)


def test_log_prob_broadcasts_rows_over_samples():
    lik = likelihood()
    loc, x = rows_with_holes(n=6)
    p = lik(loc.expand(3, 6, D))
    got = p.log_prob(x.expand(3, 6, D))
    assert got.shape == (3, 6)
    torch.testing.assert_close(got[2], lik(loc).log_prob(x))


def test_conditional_mean_is_the_gaussian_regression_of_the_missing_on_the_observed():
    lik = likelihood()
    loc, x = rows_with_holes()
    got = lik(loc).conditional_mean(x).detach()
    cov = lik.covariance.detach()
    for i in range(len(x)):
        o, m = ~torch.isnan(x[i]), torch.isnan(x[i])
        want = loc[i, m] + cov[m][:, o] @ torch.linalg.solve(cov[o][:, o], x[i, o] - loc[i, o])
        torch.testing.assert_close(got[i, m], want, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(got[i, o], x[i, o], atol=1e-4, rtol=1e-4)


def test_conditional_samples_have_the_conditional_mean_and_covariance():
    lik = likelihood()
    loc = torch.zeros(1, D)
    x = torch.tensor([[0.5, float("nan"), -1.0, float("nan"), float("nan")]])
    torch.manual_seed(3)
    n = 200_000
    draws = lik(loc.expand(n, D)).conditional_sample(x.expand(n, D)).detach()
    cov = lik.covariance.detach()
    o, m = ~torch.isnan(x[0]), torch.isnan(x[0])
    gain = cov[m][:, o] @ torch.linalg.inv(cov[o][:, o])
    want_mean = gain @ x[0, o]
    want_cov = cov[m][:, m] - gain @ cov[o][:, m]
    assert torch.equal(draws[:, o], x.expand(n, D)[:, o])
    torch.testing.assert_close(draws[:, m].mean(0), want_mean, atol=0.02, rtol=0)
    torch.testing.assert_close(torch.cov(draws[:, m].T), want_cov, atol=0.03, rtol=0)


def test_binary_columns_stay_bernoulli_and_outside_the_gaussian():
    lik = likelihood()
    lik.model_binary_columns(torch.tensor([False, True, False, False, False]))
    loc, x = rows_with_holes()
    x[:, 1] = torch.where(torch.isnan(x[:, 1]), x[:, 1], (x[:, 1] > 0).float())
    got = lik(loc).log_prob(x)
    cov = lik.covariance.detach()
    real = torch.tensor([True, False, True, True, True])
    for i in range(len(x)):
        seen = ~torch.isnan(x[i]) & real
        want = td.MultivariateNormal(loc[i, seen], cov[seen][:, seen]).log_prob(x[i, seen]) if seen.any() else 0.0
        if not torch.isnan(x[i, 1]):
            want = want + td.Bernoulli(logits=loc[i, 1]).log_prob(x[i, 1])
        assert got[i].item() == pytest.approx(float(want), abs=1e-4)
    drawn = lik(loc).conditional_sample(x)
    assert set(drawn[:, 1].tolist()) <= {0.0, 1.0}


def test_gradients_reach_the_factor_and_sigma():
    lik = CorrelatedGaussian((D,), init_sigma=0.5, min_sigma=0.001, rank=2)
    loc, x = rows_with_holes()
    lik(loc).log_prob(x).sum().backward()
    assert lik.factor.grad.abs().sum() > 0 and lik.raw_sigma.grad.abs().sum() > 0
    assert math.isfinite(float(lik.factor.grad.sum()))


def test_images_are_refused_with_the_fix():
    with pytest.raises(UserError, match="likelihood=gaussian"):
        CorrelatedGaussian((1, 28, 28), init_sigma=0.5, min_sigma=0.001, rank=4)


def test_a_run_with_class_columns_trains_and_imputes_better_than_the_means(tmp_path, no_threads):
    from conftest import make_cfg

    from vae_runner import run

    cfg = make_cfg(
        "dataset=tabular",
        "dataset.table=wine",
        "dataset.label_column=true",  # a one-hot class group beside the real columns
        "likelihood=correlated_gaussian",
        "likelihood.rank=4",
        "missing.kind=mcar",
        "missing.rate=0.3",
        "trainer.epochs=30",
        "evaluation.imputation.baselines=[mean]",
    )
    metrics = run.train(cfg, tmp_path)
    assert metrics["test/impute_rmse"] < metrics["test/impute_rmse_mean"]
    assert 0.5 < metrics["test/impute_coverage"] <= 1.0
