"""MICE with Bayesian linear-regression imputation, R mice's `norm` method (van Buuren, *Flexible Imputation of
Missing Data*, 2nd ed., Algorithm 3.1): each incomplete column in turn is regressed on all the others (their current
imputations included), and its missing entries are drawn from the posterior predictive distribution, one draw of
the coefficients and of the noise variance per imputation and iteration. Unlike scikit-learn's IterativeImputer
with `sample_posterior=True` (each missing value drawn independently from BayesianRidge's predictive distribution
given point estimates), the draws of one imputation share their parameters' uncertainty, which is what makes the
imputations proper: FIMD's Table 3.2 (n = 50, 50 % of x MCAR, M = 5) reports 95 % coverage 0.955 for `norm`.

Each of the M imputations is its own chain: the missing entries start as random draws from the column's observed
values (mice's default), then `iterations` rounds (mice's maxit = 5) over the incomplete columns."""

from __future__ import annotations

import numpy as np

RIDGE = 1e-5  # mice's `ridge`: the cross-product matrix's diagonal inflated by this fraction, for collinear columns


def mice_norm(
    hidden: np.ndarray, seed: int, draws: int, fit: np.ndarray | None = None, iterations: int = 5
) -> np.ndarray:
    """(draws, N, F) imputations of `hidden` (N, F; NaN: missing). `fit`: rows (NaN: missing) whose observed
    entries alone estimate the regressions (their missing entries imputed alongside); None: `hidden`'s own rows."""
    table = hidden if fit is None else np.vstack([fit, hidden])
    learn = np.arange(len(table)) < (len(table) if fit is None else len(fit))
    missing = np.isnan(table)
    return np.stack([chain(table, missing, learn, np.random.default_rng([seed, m]), iterations) for m in range(draws)])[
        :, len(table) - len(hidden) :
    ]


def chain(table: np.ndarray, missing: np.ndarray, learn: np.ndarray, rng, iterations: int) -> np.ndarray:
    """One imputation: random starting values from each column's observed entries, then `iterations` rounds."""
    filled = table.copy()
    columns = [j for j in range(table.shape[1]) if missing[:, j].any()]
    for j in columns:
        seen = table[learn & ~missing[:, j], j]
        filled[missing[:, j], j] = rng.choice(seen, missing[:, j].sum()) if len(seen) else 0.0
    for _ in range(iterations):
        for j in columns:
            design = np.column_stack([np.ones(len(table)), np.delete(filled, j, axis=1)])
            train = learn & ~missing[:, j]
            if train.sum() > 1:
                filled[missing[:, j], j] = norm_draw(design[train], table[train, j], design[missing[:, j]], rng)
    return filled


def norm_draw(x_obs: np.ndarray, y_obs: np.ndarray, x_mis: np.ndarray, rng) -> np.ndarray:
    """FIMD Algorithm 3.1: beta-hat by (ridge-stabilised) least squares; sigma^2 = RSS / g with g ~ chi^2(n1 - q);
    beta-dot = beta-hat + sigma z V^(1/2); the missing values x_mis beta-dot + sigma N(0, 1)."""
    cross = x_obs.T @ x_obs
    v = np.linalg.inv(cross + np.diag(np.diag(cross)) * RIDGE)
    beta = v @ x_obs.T @ y_obs
    resid = y_obs - x_obs @ beta
    sigma = np.sqrt(resid @ resid / rng.chisquare(max(len(y_obs) - x_obs.shape[1], 1)))
    beta_dot = beta + sigma * np.linalg.cholesky(v) @ rng.standard_normal(len(beta))
    return x_mis @ beta_dot + sigma * rng.standard_normal(len(x_mis))
