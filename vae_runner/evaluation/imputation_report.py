"""The model's imputations of the test split's missing entries, scored against the hidden truth beside
scikit-learn's imputers on the same masks (the final evaluation, for data with missing entries: `missing.*`).

The model's imputations are imputation/importance.py's (MIWAE's importance-weighted estimator). The baselines
(mean, kNN, MICE; imputation/baselines.py) are fitted on the training split's observed entries and impute the test
rows, as the model was trained on the training rows and imputes the test rows.
"""

from __future__ import annotations

import csv
import time

import numpy as np
import torch
from torch import Tensor

from vae_runner.evaluation.imputation import crps, dependence_kept, interval_coverage, rmse
from vae_runner.evaluation.pictures import _figure_tensor, _pyplot, image_grid, label_rows
from vae_runner.imputation.baselines import baseline_imputations
from vae_runner.imputation.importance import importance_imputations, proper_imputations

MULTIPLE = ("mice", "mice_norm")  # the baselines that give M imputations (evaluation.imputation.baseline_draws)


def by_column(path, data, truth, real, vae: tuple, theirs: dict, ev) -> None:
    """Per column with hidden real-valued test entries, in the table's own units (standardised x scale): how many,
    RMSE of the VAE's and each baseline's single imputation, and the 90 % coverage of the multiple imputers' draws
    (metrics.json holds the same scores over all columns, in standardised units)."""
    if data.columns is None or data.scale is None:  # a table's columns only
        return
    ours, draws = vae
    multiple = [n for n in MULTIPLE if n in theirs and ev.baseline_draws > 1]
    header = ["column", "hidden", "VAE_rmse", *(f"{n}_rmse" for n in theirs), "VAE_coverage"]
    header += [f"{n}_coverage" for n in multiple]
    rows = []
    for j, name in enumerate(data.columns):
        one = np.zeros_like(real)
        one[:, j] = real[:, j]
        if not one.any():
            continue
        unit = float(data.scale[j])
        cells = [rmse(truth, ours, one) * unit, *(rmse(truth, t.mean(0), one) * unit for t in theirs.values())]
        cells += [interval_coverage(draws, truth, one, ev.level)]
        cells += [interval_coverage(theirs[n], truth, one, ev.level) for n in multiple]
        rows.append([name, int(one.sum()), *(f"{v:.6g}" for v in cells)])
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def imputation_scores(model, data, cfg, metrics: dict, logger, step: int) -> None:
    """Our and the baselines' imputation scores into `metrics` (test/impute_*) and the truth-vs-imputation picture:
    RMSE, interval coverage and CRPS over the real-valued columns' missing entries, accuracy over the binary columns'
    (a probability or value above 1/2 read as 1) and the one-hot groups' (the largest column read as the class)."""
    ev, seed = cfg.evaluation.imputation, cfg.seed
    x, truth = data.test.x[: ev.rows], data.test.truth[: ev.rows]  # rows: None = all
    start = time.perf_counter()
    mean, draws, cond = importance_imputations(model, x, truth, ev.samples, ev.draws, seed)
    if ev.proper:  # the M again, each under its own draw of the likelihood's parameters
        draws = proper_imputations(model, x, data.train.x, ev.samples, ev.draws, seed)
    metrics["test/impute_time_s"] = time.perf_counter() - start
    flat = lambda t: t.reshape(*t.shape[: t.dim() - len(data.shape)], -1).cpu().numpy()  # noqa: E731 - rows of F
    known = torch.isnan(x) & ~torch.isnan(truth)  # a file's own missing entries have no truth: not scored
    truth, mask, ours, draws, observed = flat(truth), flat(known), flat(mean), flat(draws), x
    if data.is_image:  # pixels: 0/1 after a binarisation, else real values in [0, 1]
        binary = np.full(truth.shape[1], data.binarize != "none" or data.binary)
    else:
        binary = np.zeros(truth.shape[1], bool) if data.binary_columns is None else np.array(data.binary_columns)
    real, flags = mask & ~binary, mask & binary
    metrics.update(
        {
            "test/impute_entries": int(mask.sum()),
            "test/impute_rows": len(x),
            "test/impute_cond_ll": cond.cpu().numpy()[mask.any(axis=1)].mean().item(),
            "test/impute_samples": ev.samples,
            "test/impute_draws": ev.draws,
        }
    )
    start = time.perf_counter()
    fit = flat(data.train.x).astype(np.float64)
    theirs = baseline_imputations(truth, mask, seed, ev.baseline_draws, fit=fit, names=ev.baselines)
    metrics["test/impute_baselines_time_s"] = time.perf_counter() - start
    if data.is_image:
        baselines = {name: imputed.mean(0) for name, imputed in theirs.items()}
        picture = inpainting_picture(observed, truth, ours, draws, baselines, data.shape)
        logger.image("test/imputations", picture, step, "imputations.png")
    if real.any():
        metrics["test/impute_rmse"] = rmse(truth, ours, real)
        metrics["test/impute_coverage"] = interval_coverage(draws, truth, real, ev.level)
        metrics["test/impute_crps"] = crps(draws, truth, real)
        for name, imputed in theirs.items():
            metrics[f"test/impute_rmse_{name}"] = rmse(truth, imputed.mean(0), real)
        multiple = {name: theirs[name] for name in MULTIPLE if name in theirs and ev.baseline_draws > 1}
        for name, imputed in multiple.items():
            metrics[f"test/impute_coverage_{name}"] = interval_coverage(imputed, truth, real, ev.level)
            metrics[f"test/impute_crps_{name}"] = crps(imputed, truth, real)
        if not data.is_image:  # a table: do the imputations keep the columns' correlations? (pixels: too many pairs)
            metrics["test/impute_dependence"] = dependence_kept(draws, truth, real)
            for name, imputed in multiple.items():
                metrics[f"test/impute_dependence_{name}"] = dependence_kept(imputed, truth, real)
            by_column(logger.run_dir / "imputation_by_column.csv", data, truth, real, (ours, draws), theirs, ev)
            methods = {"VAE": (ours, draws)}
            methods.update({"MICE": (theirs["mice"].mean(0), theirs["mice"])} if "mice" in theirs else {})
            picture = imputation_picture(truth, real, methods, ev.level)
            logger.image("test/imputations", picture, step, "imputations.png")
    if flags.any():
        groups = data.categorical_columns
        metrics["test/impute_accuracy"] = accuracy(truth, ours, flags, groups)
        for name, imputed in theirs.items():
            metrics[f"test/impute_accuracy_{name}"] = accuracy(truth, imputed.mean(0), flags, groups)


def accuracy(truth: np.ndarray, imputed: np.ndarray, mask: np.ndarray, groups=()) -> float:
    """The share of the missing discrete values imputed right: a 0/1 column's entry on the right side of 1/2, a
    one-hot group's (start, stop) hidden class by the largest of its imputed columns (one value per group)."""
    single = mask.copy()
    hits = []
    for start, stop in groups:
        rows = mask[:, start]
        hits.append(imputed[rows, start:stop].argmax(1) == truth[rows, start:stop].argmax(1))
        single[:, start:stop] = False
    hits.append((imputed[single] > 0.5) == (truth[single] > 0.5))
    return float(np.mean(np.concatenate(hits)))


def imputation_picture(truth: np.ndarray, mask: np.ndarray, methods: dict, level: float = 0.9) -> Tensor:
    """Imputed against true value for every missing entry, one panel per method, with each entry's central `level`
    interval of the multiple imputations as a vertical bar."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(methods), figsize=(4.2 * len(methods), 4.2), dpi=100, squeeze=False)
    t = truth[mask]
    lo_hi = [(1 - level) / 2, (1 + level) / 2]
    for ax, (name, (single, multiple)) in zip(axes[0], methods.items()):
        lo, hi = np.quantile(multiple, lo_hi, axis=0)
        imputed = single[mask]
        below, above = np.maximum(imputed - lo[mask], 0), np.maximum(hi[mask] - imputed, 0)
        ax.errorbar(t, imputed, yerr=[below, above], fmt="o", ms=2, lw=0.4, alpha=0.5)
        edge = [float(min(t.min(), imputed.min())), float(max(t.max(), imputed.max()))]
        ax.plot(edge, edge, color="0.4", lw=0.8)
        inside = np.mean((t >= lo[mask]) & (t <= hi[mask]))
        ax.set_title(f"{name}: RMSE {rmse(truth, single, mask):.3f}, {level:.0%} interval covers {inside:.0%}")
        ax.set_xlabel("true value (standardised)")
        ax.set_ylabel("imputed")
    return _figure_tensor(fig)


def inpainting_picture(x: Tensor, truth, mean, draws, baselines: dict, shape, n: int = 8) -> Tensor:
    """Rows: the first `n` test images with their missing pixels grey, the complete images, the VAE's mean
    imputation, three of its multiple imputations, then each baseline's; the observed pixels are the image's own in
    every row. `truth`, `mean`: (N, F) arrays, `draws` (M, N, F), `baselines` name -> (N, F)."""
    shown = x[:n].float().cpu()  # image_grid shows the missing pixels grey
    images = [truth, mean, *draws[:3], *baselines.values()]
    rows = [shown] + [torch.from_numpy(a[:n]).float().view(-1, *shape) for a in images]
    names = ["observed", "truth", "VAE mean", "VAE draw", "VAE draw", "VAE draw", *baselines]
    return label_rows(image_grid(torch.cat(rows).clamp(0, 1), nrow=len(shown)), names)
