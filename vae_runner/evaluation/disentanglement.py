"""Disentanglement metrics of a representation against known generative factors (numpy in, floats out).

`codes` are (N, D) latent codes (the posterior means), `factors` (N, F) integer factor indices. Scores that need
new observations with chosen factors (BetaVAE, FactorVAE) take `codes_of(factor_indices) -> codes` (render, then
encode) and the factors' sizes. Each score is in [0, 1]: 1 for codes that are the factors up to permutation and
scaling, ~0 for codes that ignore them.

- MIG (Chen et al. 2018): per factor, the gap between the two largest mutual informations I(z_d; v_k) (codes
  discretised into `bins` equal-width bins) divided by H(v_k) (`factor_gaps`); averaged over factors.
- SAP (Kumar et al. 2018): per factor, the gap between the two best test accuracies of a classifier on one code
  dimension; averaged over factors. The classifier is a one-dimensional decision tree (the paper's thresholds, as many
  as a factor needs): disentanglement_lib's LinearSVC cannot separate more than two values on a line, so there a
  perfect code scores well below 1 on a factor with many values (0.36 on the grid of the tests).
- DCI (Eastwood & Williams 2018): from the importances R (D x F) of a random forest per factor (the paper's second
  regressor, every dimension considered at each split; disentanglement_lib uses gradient boosting):
  disentanglement = sum_d rho_d (1 - H_F(R_d / sum R_d)) with rho_d = sum R_d / sum R; completeness =
  sum_k rho_k (1 - H_D(R_k / sum R_k)) with rho_k = sum R_k / sum R (disentanglement_lib's weights: a factor that
  no dimension predicts, a constant one, counts 0); informativeness = mean test accuracy.
- BetaVAE score (Higgins et al. 2017): a linear classifier's accuracy at naming the factor held fixed in a batch of
  pairs, from the mean |z1 - z2| of the batch.
- FactorVAE score (Kim & Mnih 2018): codes divided by their standard deviation; in a batch with one factor held
  fixed, the active dimension (standard deviation >= 0.05, disentanglement_lib's pruning) of least variance votes for
  that factor; the majority-vote
  classifier's accuracy (0 when no dimension is active: a collapsed posterior).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

CodesOf = Callable[[np.ndarray], np.ndarray]  # (N, F) factor indices -> (N, D) codes


def discretise(codes: np.ndarray, bins: int) -> np.ndarray:
    """(N, D) integer bin of each code value: `bins` equal-width bins between each dimension's min and max."""
    lo, hi = codes.min(0), codes.max(0)
    width = np.where(hi > lo, (hi - lo) / bins, 1.0)
    return np.clip(((codes - lo) / width).astype(np.int64), 0, bins - 1)


def mutual_information(codes: np.ndarray, factors: np.ndarray, bins: int = 20) -> np.ndarray:
    """(D, F) I(z_d; v_k) in nats, codes discretised."""
    from sklearn.metrics import mutual_info_score  # scikit-learn where a score needs it (start-up: test_startup.py)

    z = discretise(codes, bins)
    return np.array(
        [[mutual_info_score(factors[:, k], z[:, d]) for k in range(factors.shape[1])] for d in range(z.shape[1])]
    )


def factor_entropies(factors: np.ndarray) -> np.ndarray:
    """(F,) H(v_k) in nats, from the factors' empirical frequencies."""
    from sklearn.metrics import mutual_info_score

    return np.array([mutual_info_score(factors[:, k], factors[:, k]) for k in range(factors.shape[1])])


def normalised_mutual_information(codes: np.ndarray, factors: np.ndarray, bins: int = 20) -> np.ndarray:
    """(D, F) I(z_d; v_k) / H(v_k): the share of each factor's entropy that each dimension carries."""
    return mutual_information(codes, factors, bins) / np.maximum(factor_entropies(factors), 1e-12)


def factor_gaps(share: np.ndarray) -> np.ndarray:
    """(F,) MIG's summands from a (D, F) normalised mutual information: per factor, its largest share minus the
    second largest (the largest alone with one dimension)."""
    top = np.sort(np.asarray(share, dtype=float), axis=0)[::-1]
    return top[0] - (top[1] if len(top) > 1 else 0.0)


def mig(codes: np.ndarray, factors: np.ndarray, bins: int = 20) -> float:
    return float(np.mean(factor_gaps(normalised_mutual_information(codes, factors, bins))))


def sap(codes: np.ndarray, factors: np.ndarray, codes_test: np.ndarray, factors_test: np.ndarray) -> float:
    from sklearn.tree import DecisionTreeClassifier

    d_count, f_count = codes.shape[1], factors.shape[1]
    accuracy = np.zeros((d_count, f_count))
    for d in range(d_count):
        for k in range(f_count):
            if len(np.unique(factors[:, k])) < 2:
                continue
            classifier = DecisionTreeClassifier(min_samples_leaf=5, random_state=0).fit(codes[:, [d]], factors[:, k])
            accuracy[d, k] = classifier.score(codes_test[:, [d]], factors_test[:, k])
    top = np.sort(accuracy, axis=0)[::-1]
    second = top[1] if d_count > 1 else np.zeros(f_count)
    return float(np.mean(top[0] - second))


def _normalised_entropy(p: np.ndarray, base: int) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum() / np.log(base)) if base > 1 else 0.0


def dci(
    codes: np.ndarray,
    factors: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    trees: int = 50,
    seed: int = 0,
) -> dict[str, float]:
    from sklearn.ensemble import RandomForestClassifier

    d_count, f_count = codes.shape[1], factors.shape[1]
    importance, accuracy = np.zeros((d_count, f_count)), []
    for k in range(f_count):
        forest = RandomForestClassifier(trees, max_depth=8, max_features=None, random_state=seed, n_jobs=1)
        forest.fit(codes, factors[:, k])
        importance[:, k] = forest.feature_importances_
        accuracy.append(forest.score(codes_test, factors_test[:, k]))
    total = importance.sum()
    per_code = importance.sum(1)
    disentanglement = sum(
        (per_code[d] / total) * (1 - _normalised_entropy(importance[d] / per_code[d], f_count))
        for d in range(d_count)
        if per_code[d] > 0
    )
    per_factor = importance.sum(0)
    completeness = sum(  # a factor no dimension predicts (a constant one) weighs 0, as in disentanglement_lib
        (per_factor[k] / total) * (1 - _normalised_entropy(importance[:, k] / per_factor[k], d_count))
        for k in range(f_count)
        if per_factor[k] > 0
    )
    return {
        "disentanglement": float(disentanglement),
        "completeness": float(completeness),
        "informativeness": float(np.mean(accuracy)),
    }


def _batch_fixing(k: int, sizes: tuple[int, ...], batch: int, rng: np.random.Generator) -> np.ndarray:
    """(batch, F) random factor indices sharing one random value of factor k."""
    indices = np.stack([rng.integers(n, size=batch) for n in sizes], axis=1)
    indices[:, k] = rng.integers(sizes[k])
    return indices


def beta_vae_score(
    codes_of: CodesOf, sizes: tuple[int, ...], n_train: int, n_test: int, batch: int, seed: int
) -> float:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)

    def points(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(len(sizes), size=n)
        features = []
        for k in labels:
            first, second = _batch_fixing(k, sizes, batch, rng), _batch_fixing(k, sizes, batch, rng)
            second[:, k] = first[:, k]
            features.append(np.abs(codes_of(first) - codes_of(second)).mean(0))
        return np.stack(features), labels

    x, y = points(n_train)
    x_test, y_test = points(n_test)
    return float(LogisticRegression(max_iter=2000).fit(x, y).score(x_test, y_test))


def factor_vae_score(
    codes_of: CodesOf, sizes: tuple[int, ...], n_train: int, n_test: int, batch: int, seed: int, n_scale: int = 10000
) -> float:
    rng = np.random.default_rng(seed)
    scale = codes_of(np.stack([rng.integers(n, size=n_scale) for n in sizes], axis=1)).std(0)
    active = scale >= 0.05  # disentanglement_lib's pruning (on the standard deviation): a dimension whose codes
    # barely vary has no vote
    if not active.any():
        return 0.0

    def votes(n: int) -> np.ndarray:
        out = np.zeros((active.sum(), len(sizes)), dtype=np.int64)
        for _ in range(n):
            k = rng.integers(len(sizes))
            variance = (codes_of(_batch_fixing(k, sizes, batch, rng))[:, active] / scale[active]).var(0)
            out[variance.argmin(), k] += 1
        return out

    train, test = votes(n_train), votes(n_test)
    predicted = train.argmax(1)  # each active dimension's majority factor
    return float(sum(test[d, predicted[d]] for d in range(len(predicted))) / max(test.sum(), 1))
