"""imputation/mice_norm.py (R mice's `norm`, FIMD Algorithm 3.1) against the posterior predictive's exact moments."""

import numpy as np

from vae_runner.imputation.baselines import baseline_imputations
from vae_runner.imputation.mice_norm import mice_norm


def one_incomplete_column(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    y = 1 + x @ [0.5, -1.0] + rng.normal(size=n)
    table = np.column_stack([y, x])
    table[: n // 4, 0] = np.nan  # y missing in the first quarter, x complete
    return table


def test_draws_have_the_normal_linear_models_posterior_predictive_mean_and_variance():
    # y missing, x complete: every draw is x_mis beta-dot + sigma-dot N(0, 1) with beta-dot ~ beta-hat + sigma-dot
    # N(0, V) and sigma-dot^2 = RSS / chi^2(n1 - q): mean x beta-hat, variance RSS / (n1 - q - 2) (1 + x V x^T).
    table = one_incomplete_column()
    holes = np.isnan(table[:, 0])
    draws = mice_norm(table, seed=0, draws=10_000, iterations=1)[:, holes, 0]
    design = np.column_stack([np.ones(len(table)), table[:, 1:]])
    obs, mis = design[~holes], design[holes]
    v = np.linalg.inv(obs.T @ obs)
    beta = v @ obs.T @ table[~holes, 0]
    rss = np.sum((table[~holes, 0] - obs @ beta) ** 2)
    variance = rss / (len(obs) - 3 - 2) * (1 + np.einsum("ij,jk,ik->i", mis, v, mis))
    se_mean = np.sqrt(variance / len(draws))
    assert np.all(np.abs(draws.mean(0) - mis @ beta) < 4 * se_mean)
    ratio = draws.var(0) / variance
    assert abs(ratio.mean() - 1) < 0.03 and np.all(np.abs(ratio - 1) < 0.08)  # RSS / (n1 - q) instead: 8 % low


def test_observed_entries_stay_draws_differ_and_reproduce_from_the_seed():
    table = one_incomplete_column()
    table[30:, 1] = np.nan  # a second incomplete column: chained
    a = mice_norm(table, seed=3, draws=2)
    seen = ~np.isnan(table)
    assert np.array_equal(a[0][seen], table[seen]) and not np.isnan(a).any()
    assert not np.allclose(a[0], a[1])
    assert np.array_equal(a, mice_norm(table, seed=3, draws=2))


def test_fit_rows_alone_estimate_the_regressions():
    train = one_incomplete_column(n=200, seed=1)
    test = one_incomplete_column(n=40, seed=2)
    test[~np.isnan(test[:, 0]), 0] += 100.0  # observed test values far off: they must not move the fit
    draws = mice_norm(test, seed=0, draws=200, fit=train)
    holes = np.isnan(test[:, 0])
    assert draws.shape == (200, 40, 3)
    assert np.abs(draws[:, holes, 0].mean()) < 3  # from train's regression (y near 1), not test's (y near 100)


def test_mice_norm_is_a_baseline_with_multiple_draws():
    table = one_incomplete_column()
    full = np.nan_to_num(table, nan=0.0)
    out = baseline_imputations(full, np.isnan(table), seed=0, draws=5, names=("mice_norm",))
    assert out["mice_norm"].shape == (5, *table.shape)
