"""Rubin's rules: one estimate, standard error and confidence interval from an analysis repeated on each of M
multiple imputations (`mode=impute`'s imputations.csv, or `Run.impute(x).draws`).

With Q_m and U_m the m-th imputation's estimates and their squared standard errors:
    Q = mean_m Q_m,  W = mean_m U_m (within),  B = var_m Q_m (between, ddof 1),  T = W + (1 + 1/M) B,
    r = (1 + 1/M) B / W (relative increase in variance),  lambda = (1 + 1/M) B / T (`missing_information`; R mice's
    `lambda`), gamma = (r + 2 / (nu + 3)) / (r + 1) (`fmi`, R mice's fraction of missing information),
    nu_old = (M - 1) / lambda^2 (Rubin 1987), and with the complete-data degrees of freedom nu_com given, Barnard &
    Rubin's (1999) small-sample nu = 1 / (1 / nu_old + 1 / nu_obs), nu_obs = (nu_com + 1) / (nu_com + 3) nu_com (1 -
    lambda); the interval is Q +- t_{nu, 1 - alpha / 2} sqrt(T). With B = 0 (no missing information), nu = nu_obs
    (infinite without nu_com) and T = W. The quantities and names are those of van Buuren, *Flexible Imputation of
    Missing Data* (2018), section 2.3, and R mice's `pool()`.

    import numpy as np, vae_runner
    fits = [np.polyfit(d[:, 0], d[:, 1], 1, cov=True) for d in draws]          # one analysis per imputation
    pooled = vae_runner.pool([f[0] for f in fits], [np.diag(f[1]) for f in fits], df_complete=len(draws[0]) - 2)
    pooled.estimate, pooled.std_error, pooled.interval(0.95)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Pooled:
    estimate: np.ndarray  # Q, per parameter
    within: np.ndarray  # W
    between: np.ndarray  # B
    total: np.ndarray  # T: the pooled variance
    df: np.ndarray  # nu
    m: int

    @property
    def std_error(self) -> np.ndarray:
        return np.sqrt(self.total)

    @property
    def relative_increase(self) -> np.ndarray:  # r
        with np.errstate(divide="ignore", invalid="ignore"):
            return (1 + 1 / self.m) * self.between / self.within

    @property
    def missing_information(self) -> np.ndarray:
        """lambda = (1 + 1/M) B / T, the proportion of the variance due to the missing data (van Buuren eq. 2.23)."""
        return (1 + 1 / self.m) * self.between / self.total

    @property
    def fmi(self) -> np.ndarray:
        """gamma = (r + 2 / (nu + 3)) / (r + 1), the fraction of missing information as R mice's `pool()` reports it
        (`fmi`; van Buuren eq. 2.24): lambda adjusted for the finite number of imputations."""
        r = self.relative_increase
        return (r + 2 / (self.df + 3)) / (r + 1)

    def interval(self, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        from scipy import stats  # where it is used: start-up (tests/test_startup.py)

        half = stats.t.ppf(0.5 + level / 2, self.df) * self.std_error
        return self.estimate - half, self.estimate + half


def pool(estimates, variances, df_complete: float | None = None) -> Pooled:
    """estimates, variances: (M, ...) (or M scalars): each imputation's estimates and squared standard errors."""
    q, u = np.asarray(estimates, dtype=float), np.asarray(variances, dtype=float)
    if q.shape != u.shape or q.ndim == 0 or len(q) < 2:
        raise ValueError(f"pool needs M >= 2 estimates and as many variances of one shape; got {q.shape}, {u.shape}")
    m = len(q)
    estimate = q.mean(0)
    within = u.mean(0)
    between = q.var(0, ddof=1)
    total = within + (1 + 1 / m) * between
    lam = (1 + 1 / m) * between / total
    with np.errstate(divide="ignore"):
        df = (m - 1) / lam**2  # inf where B = 0
        if df_complete is not None:
            observed = (df_complete + 1) / (df_complete + 3) * df_complete * (1 - lam)
            df = 1 / (1 / df + 1 / observed)
    return Pooled(estimate, within, between, total, np.asarray(df, dtype=float), m)
