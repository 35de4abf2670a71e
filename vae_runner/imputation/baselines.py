"""The standard imputers the model's imputations are compared with: `baseline_imputations` runs scikit-learn's
SimpleImputer (column mean), KNNImputer and IterativeImputer (MICE; with `draws` > 1, sampling from its posterior
with one seed per draw) and missForest (Stekhoven & Buehlmann 2012: chained random forests, 100 trees, 10 rounds;
as its usual Python stand-in, IterativeImputer with a RandomForestRegressor; a single imputation) on a masked table,
and R mice's `norm` (`mice_norm`: chained Bayesian linear regressions, parameters drawn per imputation; mice_norm.py).
"""

from __future__ import annotations

import numpy as np

from vae_runner.imputation.mice_norm import mice_norm


def baseline_imputations(
    table: np.ndarray,
    mask: np.ndarray,
    seed: int,
    draws: int = 1,
    fit: np.ndarray | None = None,
    names=("mean", "knn", "mice"),
) -> dict[str, np.ndarray]:
    """name -> imputations (M, N, F) of `table` with the `mask` entries hidden (M = 1 but for MICE and mice_norm),
    for the imputers in `names`. `fit`: a table with NaN for missing entries (the training rows) to fit the imputers
    on, which then impute `table`'s rows (kNN's neighbours come from `fit`); None: fit on the hidden `table` itself
    (transductive)."""
    from sklearn.ensemble import RandomForestRegressor  # scikit-learn where it is used (tests/test_startup.py)
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401 - makes IterativeImputer importable
    from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer

    hidden = np.where(mask, np.nan, table)

    def impute(imputer) -> np.ndarray:
        return imputer.fit_transform(hidden) if fit is None else imputer.fit(fit).transform(hidden)

    out = {}
    if "mean" in names:
        out["mean"] = impute(SimpleImputer(strategy="mean", keep_empty_features=True))[None]
    if "knn" in names:
        out["knn"] = impute(KNNImputer(n_neighbors=5, keep_empty_features=True))[None]
    if "missforest" in names:
        forest = RandomForestRegressor(n_estimators=100, random_state=seed, n_jobs=1)
        out["missforest"] = impute(
            IterativeImputer(estimator=forest, max_iter=10, random_state=seed, keep_empty_features=True)
        )[None]
    if "mice_norm" in names:
        out["mice_norm"] = mice_norm(hidden, seed, draws, fit)
    if "mice" not in names:
        return out
    posterior = draws > 1
    out["mice"] = np.stack(
        [
            impute(
                IterativeImputer(
                    max_iter=10,
                    sample_posterior=posterior,
                    random_state=seed * 1000 + m if posterior else seed,
                    keep_empty_features=True,
                )
            )
            for m in range(draws)
        ]
    )
    return out
