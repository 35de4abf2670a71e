"""How good imputations of missing table entries are (the imputers compared: imputation/).

Everything is scored on the missing entries only (`mask` True), in the units of the table given (standardised
columns, so RMSEs of different columns are comparable):
- `rmse` of a single imputation (the mean of multiple imputations, for a multiple imputer);
- `interval_coverage`: how often the truth lies in the central `level` interval of M imputations (the empirical
  quantiles of the M draws); a calibrated multiple imputer covers `level` of the entries;
- `crps`: the continuous ranked probability score of the M draws as an ensemble, mean |X - y| - mean |X - X'| / 2
  over all pairs (lower is better; equal to the absolute error for a single imputation);
- `dependence_kept`: how much of the columns' pairwise correlations M imputations keep where they fill cells (1:
  kept, below 1: attenuated, so that a regression fitted on the imputations shrinks its coefficients toward 0).
"""

from __future__ import annotations

import numpy as np


def rmse(truth: np.ndarray, imputed: np.ndarray, mask: np.ndarray) -> float:
    return float(np.sqrt(np.mean((imputed[mask] - truth[mask]) ** 2)))


def interval_coverage(draws: np.ndarray, truth: np.ndarray, mask: np.ndarray, level: float = 0.9) -> float:
    """draws (M, N, F): the share of missing entries whose truth lies within the draws' central `level` interval."""
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return float(np.mean((truth[mask] >= lo[mask]) & (truth[mask] <= hi[mask])))


def crps(draws: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """Mean ensemble CRPS over the missing entries, draws (M, N, F)."""
    x, y = draws[:, mask], truth[mask]  # (M, K), (K,)
    spread = np.abs(x[:, None] - x[None]).mean(axis=(0, 1))  # E|X - X'| per entry
    return float(np.mean(np.abs(x - y).mean(0) - 0.5 * spread))


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
