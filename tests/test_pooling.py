"""Rubin's rules (vae_runner.pool): hand-computed values, the no-missing-information limit, and the coverage that
makes multiple imputation worth it, by simulation: proper imputations pooled by the rules cover the true mean at the
nominal rate, where the same data singly imputed do not."""

import numpy as np
import pytest
from scipy import stats

import vae_runner


def test_pool_matches_hand_computed_values():
    pooled = vae_runner.pool([1.0, 2.0, 3.0], [0.5, 0.5, 0.5], df_complete=10)
    assert pooled.estimate == 2.0 and pooled.within == 0.5 and pooled.between == 1.0
    assert pooled.total == pytest.approx(0.5 + 4 / 3)  # W + (1 + 1/M) B
    lam = (4 / 3) / (0.5 + 4 / 3)
    assert pooled.missing_information == pytest.approx(lam) and pooled.relative_increase == pytest.approx(8 / 3)
    nu_old, nu_obs = 2 / lam**2, 11 / 13 * 10 * (1 - lam)
    assert pooled.df == pytest.approx(1 / (1 / nu_old + 1 / nu_obs))
    low, high = pooled.interval(0.9)
    half = stats.t.ppf(0.95, pooled.df) * np.sqrt(pooled.total)
    assert (low, high) == pytest.approx((2 - half, 2 + half))
    assert vae_runner.pool([1.0, 2.0, 3.0], [0.5] * 3).df == pytest.approx(nu_old)  # Rubin's 1987 df


def test_identical_imputations_pool_to_the_complete_data_analysis():
    pooled = vae_runner.pool(np.ones((4, 2)), np.full((4, 2), 0.25))
    assert np.all(pooled.total == 0.25) and np.all(pooled.missing_information == 0) and np.all(np.isinf(pooled.df))
    low, _ = pooled.interval(0.95)
    assert low == pytest.approx(1 - 1.959964 * 0.5, abs=1e-5)  # the normal interval
    assert vae_runner.pool(np.ones(4), np.full(4, 0.25), df_complete=20).df == pytest.approx(21 / 23 * 20)
    with pytest.raises(ValueError, match="M >= 2"):
        vae_runner.pool([1.0], [0.1])


def test_proper_multiple_imputations_cover_at_the_nominal_rate_and_single_imputation_does_not():
    rng, reps, n, m, mu = np.random.default_rng(0), 4000, 40, 20, 1.0
    y = rng.normal(mu, 1.0, (reps, n))
    seen = rng.random((reps, n)) > 0.4  # 40 % MCAR
    n_obs = seen.sum(1, keepdims=True)
    mean_obs = np.where(seen, y, 0).sum(1, keepdims=True) / n_obs
    var_obs = np.where(seen, (y - mean_obs) ** 2, 0).sum(1, keepdims=True) / (n_obs - 1)
    # proper imputations (Bayesian bootstrap of the parameters, then the data): sigma^2, mu from their posterior
    sigma2 = (n_obs - 1) * var_obs / rng.chisquare(n_obs - 1, (reps, m))  # (reps, M)
    mu_draw = rng.normal(mean_obs, np.sqrt(sigma2 / n_obs))
    filled = np.where(
        seen[:, None], y[:, None], rng.normal(mu_draw[..., None], np.sqrt(sigma2)[..., None], (reps, m, n))
    )
    estimates, variances = filled.mean(2), filled.var(2, ddof=1) / n  # (reps, M)
    pooled = vae_runner.pool(estimates.T, variances.T, df_complete=n - 1)
    low, high = pooled.interval(0.95)
    coverage = np.mean((low < mu) & (mu < high))
    assert abs(coverage - 0.95) < 0.015, coverage  # 4000 replications: a binomial s.e. of 0.0034
    single = filled[:, 0]  # one imputation analysed as if complete
    half = stats.t.ppf(0.975, n - 1) * single.std(1, ddof=1) / np.sqrt(n)
    single_coverage = np.mean(np.abs(single.mean(1) - mu) < half)
    assert single_coverage < 0.90, single_coverage  # too narrow: the imputation uncertainty is ignored


def test_fmi_is_r_mices_gamma_and_missing_information_its_lambda():
    """Q = 1, 2, 3 with U = 1 each (M = 3): B = 1, W = 1, T = 7/3, r = 4/3, lambda = 4/7, nu = (M - 1) / lambda^2 =
    49/8, gamma = (r + 2 / (nu + 3)) / (r + 1) = (4/3 + 16/73) / (7/3)."""
    pooled = vae_runner.pool([1.0, 2.0, 3.0], [1.0, 1.0, 1.0])
    assert pooled.missing_information == pytest.approx(4 / 7)
    assert pooled.df == pytest.approx(49 / 8)
    assert pooled.fmi == pytest.approx((4 / 3 + 16 / 73) / (7 / 3))
