"""likelihood=correlated_gaussian against torch's MultivariateNormal on each row's observed entries, and its
conditionals against the Gaussian conditioning formula."""

import math

import pytest
import torch
import torch.distributions as td

from vae_runner.errors import UserError
from vae_runner.model.correlated_gaussian import SHARED_ROWS, CorrelatedGaussian, pattern_factors, per_row

D = 5


def likelihood(rank=3, seed=0) -> CorrelatedGaussian:
    torch.manual_seed(seed)
    lik = CorrelatedGaussian((D,), init_sigma=0.7, min_sigma=0.001, rank=rank, start_correlation=None)
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
    lik = CorrelatedGaussian((D,), init_sigma=0.5, min_sigma=0.001, rank=2, start_correlation=None)
    loc, x = rows_with_holes()
    lik(loc).log_prob(x).sum().backward()
    assert lik.factor.grad.abs().sum() > 0 and lik.raw_sigma.grad.abs().sum() > 0
    assert math.isfinite(float(lik.factor.grad.sum()))


def test_images_are_refused_with_the_fix():
    with pytest.raises(UserError, match="likelihood=gaussian"):
        CorrelatedGaussian((1, 28, 28), init_sigma=0.5, min_sigma=0.001, rank=4, start_correlation=None)


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


def test_pairwise_covariance_is_each_pairs_covariance_over_the_rows_observing_both():
    from vae_runner.model.correlated_gaussian import pairwise_covariance

    _, x = rows_with_holes(n=60, seed=3)
    x = x.double()
    want = torch.empty(D, D, dtype=torch.float64)
    for j in range(D):
        for k in range(D):
            both = ~x[:, j].isnan() & ~x[:, k].isnan()
            want[j, k] = torch.cov(x[both][:, [j, k]].T)[0, 1]  # numpy's / pandas' pairwise-complete estimate
    torch.testing.assert_close(pairwise_covariance(x), want)


@pytest.mark.parametrize("rank", [None, 2])
def test_start_data_puts_sigma_at_the_training_rows_maximum_likelihood_covariance(rank):
    from vae_runner.model.correlated_gaussian import gaussian_mle

    g = torch.Generator().manual_seed(4)
    mix = torch.randn(D, D, generator=g)
    x = torch.randn(500, D, generator=g) @ mix.T
    x[torch.rand(500, D, generator=g) < 0.3] = float("nan")
    lik = CorrelatedGaussian((D,), init_sigma=0.5, min_sigma=0.001, rank=rank, start_correlation=1.0)
    lik.start_from(x)
    got, want = lik.covariance.detach().double(), gaussian_mle(x.double())[1]
    if rank is None:  # the whole covariance (its eigenvalues are well above the floor here)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
        assert torch.allclose(lik.sigma, lik.sigma[0]) and lik.sigma[0] <= 0.5
    else:  # factor analysis' start: the top two directions in V, every column's variance kept
        torch.testing.assert_close(got.diagonal(), want.diagonal(), rtol=1e-4, atol=1e-4)
        top = torch.linalg.eigh(want).eigenvectors[:, -2:]
        torch.testing.assert_close(top @ top.T @ lik.factor.detach().double(), lik.factor.detach().double())
    small = CorrelatedGaussian((D,), init_sigma=0.5, min_sigma=0.001, rank=rank, start_correlation=None)
    before = small.covariance.detach().clone()
    small.start_from(x)
    torch.testing.assert_close(small.covariance.detach(), before)  # start_correlation=null: the data play no part
    half = CorrelatedGaussian((D,), init_sigma=0.5, min_sigma=0.001, rank=None, start_correlation=0.5)
    half.start_from(x)
    variances = torch.diag(want.diagonal())
    torch.testing.assert_close(
        half.covariance.detach().double(), variances + 0.5 * (want - variances), rtol=1e-4, atol=1e-4
    )


def test_start_data_leaves_binary_columns_alone_and_survives_collinear_columns():
    x = torch.randn(200, D)
    x[:, 1] = x[:, 0]  # collinear: the covariance is singular
    x[:, 4] = (x[:, 4] > 0).float()
    lik = CorrelatedGaussian((D,), init_sigma=0.5, min_sigma=0.001, rank=None, start_correlation=1.0)
    lik.model_binary_columns(torch.tensor([False, False, False, False, True]))
    lik.start_from(x)
    assert torch.all(lik.factor[4] == 0) and torch.isclose(lik.sigma[4], torch.tensor(0.5))
    real = lik.covariance.detach()[:4, :4]
    assert torch.linalg.eigvalsh(real).min() > 0.004  # floored: its Cholesky factor exists in float32
    torch.linalg.cholesky(real)


def test_gaussian_mle_is_andersons_closed_form_for_a_monotone_pattern():
    # x complete, y missing in some rows: the MLE factors (Anderson 1957; Little & Rubin 2002, section 7.2): x's
    # moments from every row, y's regression on x from the complete pairs, both by maximum likelihood (divide by n).
    from vae_runner.model.correlated_gaussian import gaussian_mle

    g = torch.Generator().manual_seed(5)
    x = torch.randn(300, generator=g, dtype=torch.float64)
    y = 1 + 0.6 * x + 0.8 * torch.randn(300, generator=g, dtype=torch.float64)
    y[torch.rand(300, generator=g) < 0.4 * (1 + x.clamp(-1, 1)) / 2] = float("nan")  # MAR: on x
    mean, cov = gaussian_mle(torch.stack([x, y], 1), iterations=2000, tol=1e-12)
    pair = ~y.isnan()
    mx, sxx = x.mean(), x.var(correction=0)
    xc, yc = x[pair], y[pair]
    b1 = ((xc - xc.mean()) * (yc - yc.mean())).sum() / ((xc - xc.mean()) ** 2).sum()
    b0 = yc.mean() - b1 * xc.mean()
    s_res = ((yc - b0 - b1 * xc) ** 2).mean()
    want_mean = torch.stack([mx, b0 + b1 * mx])
    want_cov = torch.tensor([[sxx, b1 * sxx], [b1 * sxx, s_res + b1**2 * sxx]], dtype=torch.float64)
    torch.testing.assert_close(mean, want_mean, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(cov, want_cov, rtol=1e-6, atol=1e-6)


def test_gaussian_mle_beats_nearby_estimates_on_the_observed_data_likelihood():
    from vae_runner.model.correlated_gaussian import gaussian_mle, pairwise_covariance

    _, x = rows_with_holes(n=200, seed=6)
    x = (x.double() @ torch.randn(D, D, generator=torch.Generator().manual_seed(7), dtype=torch.float64)).nan_to_num(
        float("nan")
    )
    mean, cov = gaussian_mle(x)

    def loglik(mu, sigma):
        total = 0.0
        for row in x:
            seen = ~row.isnan()
            if seen.any():
                total += td.MultivariateNormal(mu[seen], sigma[seen][:, seen]).log_prob(row[seen])
        return float(total)

    best = loglik(mean, cov)
    seen = ~x.isnan()
    observed_means = x.nan_to_num().sum(0) / seen.sum(0)
    assert best > loglik(observed_means, pairwise_covariance(x) + 0.05 * torch.eye(D, dtype=torch.float64))
    g = torch.Generator().manual_seed(8)
    for _ in range(5):  # a small step in any direction lowers it: a maximum
        bump = 0.02 * torch.randn(D, D, generator=g, dtype=torch.float64)
        assert best > loglik(mean + 0.02 * torch.randn(D, generator=g, dtype=torch.float64), cov + bump @ bump.T)
        assert best > loglik(mean, cov * 1.03) and best > loglik(mean, cov * 0.97)


def test_the_start_is_the_configs_and_a_loaded_run_keeps_its_checkpoints_covariance(tmp_path, monkeypatch):
    # The real config: the preset starts at the ML covariance, start_correlation=null at 0.01 I; a checkpoint's
    # weights replace the start, so loading a run does not redo the EM.
    from vae_runner import api
    from vae_runner.build import build_model, load_data
    from vae_runner.config.compose import compose_config
    from vae_runner.model import correlated_gaussian

    common = ["experiment=impute_tabular", "dataset.table=wine", "trainer.epochs=2", "trainer.num_threads=1"]
    shrink = ["evaluation.iw_samples=8", "evaluation.imputation.samples=16", "evaluation.imputation.baselines=[]"]
    models = {}
    for start in ("1.0", "null"):
        cfg = compose_config([*common, f"likelihood.start_correlation={start}"])
        data = load_data(cfg, torch.device("cpu"))
        models[start] = build_model(cfg, data, torch.device("cpu")).likelihood
    want = correlated_gaussian.gaussian_mle(data.train.x.double())[1]
    torch.testing.assert_close(models["1.0"].covariance.detach().double(), want, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(models["null"].factor.detach(), 0.01 * torch.eye(want.shape[0]))
    run = api.train([*common, *shrink, "logger.progress_bar=false"], run_dir=tmp_path / "run")
    trained = run.model.likelihood.covariance.detach().clone()

    def refuse(*args, **kwargs):
        raise AssertionError("the EM start ran for a model whose weights a checkpoint replaces")

    monkeypatch.setattr(correlated_gaussian, "gaussian_mle", refuse)
    torch.testing.assert_close(api.load(tmp_path / "run").model.likelihood.covariance.detach(), trained)


@pytest.mark.parametrize("columns", [5, 62, 63, 130])
def test_pattern_factors_find_each_rows_pattern_however_wide(columns):
    covered = torch.rand(300, columns, generator=torch.Generator().manual_seed(columns)) < 0.7
    covered[150:] = covered[:150]  # every pattern twice
    patterns, chol, inverse = pattern_factors(torch.eye(columns), covered)
    assert torch.equal(patterns[inverse], covered) and len(patterns) == len(torch.unique(covered, dim=0))
    assert chol.shape == (len(patterns), columns, columns)


def test_one_solve_per_shared_factor_equals_the_factors_gathered_per_row():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, 6, generator=g, dtype=torch.float64)
    cov = a @ a.T + torch.eye(6, dtype=torch.float64)
    covered = (torch.rand(5, 6, generator=g) < 0.6).repeat(40, 1)  # 5 patterns, 40 rows each: the shared path
    _, chol, inverse = pattern_factors(cov, covered)
    resid = torch.randn(200, 6, generator=g, dtype=torch.float64) * covered
    solve = lambda c, r: torch.cholesky_solve(r, c)  # noqa: E731
    shared = per_row(chol, inverse, resid, solve)
    gathered = torch.cat([per_row(chol, inverse[i : i + 1], resid[i : i + 1], solve) for i in range(200)])
    assert len(resid) >= SHARED_ROWS * len(chol) and torch.allclose(shared, gathered, atol=1e-12)
    exact = torch.stack([torch.cholesky_solve(r[:, None], chol[u])[:, 0] for r, u in zip(resid, inverse)])
    assert torch.allclose(shared, exact, atol=1e-12)
