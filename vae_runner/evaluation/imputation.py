"""How good imputations of missing table entries are (the imputers compared: imputation/).

Everything is scored on the missing entries only (`mask` True), in the units of the table given (standardised
columns, so RMSEs of different columns are comparable):
- `rmse` of a single imputation (the mean of multiple imputations, for a multiple imputer);
- `interval_coverage`: how often the truth lies in the central `level` interval of the imputer's predictive
  distribution, from the truth's rank among the M draws: a calibrated multiple imputer covers `level` at any M;
- `crps`: the continuous ranked probability score of the predictive distribution, by the fair estimator from M
  draws (unbiased at any M; lower is better; equal to the absolute error for a single imputation);
- `dependence_kept`: how much of the columns' pairwise correlations M imputations keep where they fill cells (1:
  kept, below 1: attenuated, so that a regression fitted on the imputations shrinks its coefficients toward 0).
Coverage and CRPS are exact for any number of draws, so imputers with different M (the VAE's 100, MICE's 10)
compare fairly.
"""

from __future__ import annotations

import numpy as np


def rmse(truth: np.ndarray, imputed: np.ndarray, mask: np.ndarray) -> float:
    return float(np.sqrt(np.mean((imputed[mask] - truth[mask]) ** 2)))


def interval_coverage(draws: np.ndarray, truth: np.ndarray, mask: np.ndarray, level: float = 0.9) -> float:
    """draws (M, N, F): how often the truth of a missing entry lies in the central `level` interval of the imputer's
    predictive distribution, estimated from its M draws by the truth's rank among them (its randomised PIT: uniform
    on [below, below + ties + 1] / (M + 1), the chance of it falling in [(1 - level) / 2, (1 + level) / 2] averaged):
    exact for any M, so a calibrated imputer scores `level` with 5 draws as with 500. (The empirical 5-95 % interval
    of M draws covers only about level (M - 1) / (M + 1) of a calibrated imputer's truths: 0.74 at M = 10.)"""
    x, y = draws[:, mask], truth[mask]  # (M, K), (K,)
    m = len(x)
    below, ties = (x < y).sum(0), (x == y).sum(0)
    start, stop = below / (m + 1), (below + ties + 1) / (m + 1)
    lo, hi = (1 - level) / 2, (1 + level) / 2
    inside = np.clip(np.minimum(stop, hi) - np.maximum(start, lo), 0.0, None) / (stop - start)
    return float(np.mean(inside))


def crps(draws: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """Mean CRPS over the missing entries of the M draws (M, N, F) as a sample of the imputer's predictive
    distribution: the fair estimator mean |X - y| - sum over pairs i != j of |X_i - X_j| / (2 M (M - 1)), unbiased for
    that distribution's CRPS at any M (the all-pairs ensemble CRPS adds E|X - X'| / (2M)); one draw: the absolute
    error."""
    x, y = draws[:, mask], truth[mask]  # (M, K), (K,)
    m = len(x)
    error = np.abs(x - y).mean(0)
    if m < 2:
        return float(np.mean(error))
    ranks = 2 * np.arange(1, m + 1) - m - 1  # sum_ij |x_i - x_j| = 2 sum_k (2k - M - 1) x_(k), x sorted
    pairs = 2 * (ranks[:, None] * np.sort(x, axis=0)).sum(0)
    return float(np.mean(error - pairs / (2 * m * (m - 1))))


def dependence_kept(draws: np.ndarray, truth: np.ndarray, mask: np.ndarray, min_rows: int = 10) -> float:
    """draws (M, N, F) with the observed entries as they are: for each pair of columns with missing entries, the
    correlation of the two over the rows that miss either, in each draw, against the same correlation on the
    truth; the least-squares slope through 0 of the draws' mean correlation on the true one, over the pairs with at
    least `min_rows` such rows (NaN where none has). Marginal draws (each column's own distribution) give ~0 where
    one of a pair is missing; draws from the true conditional distribution give 1 up to sampling noise."""
    columns = np.flatnonzero(mask.any(axis=0))
    ours, true = [], []
    for a, i in enumerate(columns):
        for j in columns[a + 1 :]:
            rows = (mask[:, i] | mask[:, j]) & ~np.isnan(truth[:, [i, j]]).any(axis=1)  # truth known in both
            if rows.sum() < min_rows:
                continue
            t = truth[rows][:, [i, j]]
            if (t.std(axis=0) == 0).any():
                continue
            x = draws[:, rows][:, :, [i, j]]  # (M, R, 2)
            x = (x - x.mean(axis=1, keepdims=True)) / np.maximum(x.std(axis=1, keepdims=True), 1e-12)
            ours.append(float((x[..., 0] * x[..., 1]).mean(axis=1).mean()))
            true.append(float(np.corrcoef(t.T)[0, 1]))
    ours, true = np.array(ours), np.array(true)
    return float(ours @ true / (true @ true)) if len(true) and (true @ true) > 0 else float("nan")
