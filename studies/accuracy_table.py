"""The README's accuracy table from `experiment=impute_tabular` sweeps: per table and mechanism, mean ± std over
seeds of the test rows' standardised RMSE (the VAE's single imputation against MICE, R mice's norm, missForest and
kNN), the 90 % interval coverage and the fair CRPS of the M draws, and the VAE's RMSE minus the better of MICE's
and missForest's (negative: ahead), read from each run's metrics.json and saved config.

    vae-run -m experiment=impute_tabular dataset.table=breast_cancer,wine,diabetes missing.kind=mcar,mar \
        missing.rate=0.3 seed=0,1,2 evaluation.imputation.draws=20 evaluation.imputation.baseline_draws=20 \
        "evaluation.imputation.baselines=[mean,knn,mice,mice_norm,missforest]" hydra.sweep.dir=outputs/acc
    python studies/accuracy_table.py outputs/acc [more sweep directories]
    python studies/accuracy_table.py outputs/acc --vae outputs/acc_other   # another VAE beside the same baselines
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

from omegaconf import OmegaConf

COLUMNS = {  # header: metric
    "VAE RMSE": "test/impute_rmse",
    "MICE RMSE": "test/impute_rmse_mice",
    "norm RMSE": "test/impute_rmse_mice_norm",
    "missForest RMSE": "test/impute_rmse_missforest",
    "kNN RMSE": "test/impute_rmse_knn",
    "VAE 90 % coverage": "test/impute_coverage",
    "MICE coverage": "test/impute_coverage_mice",
    "norm coverage": "test/impute_coverage_mice_norm",
    "VAE CRPS": "test/impute_crps",
    "MICE CRPS": "test/impute_crps_mice",
    "norm CRPS": "test/impute_crps_mice_norm",
}
TABLES = ("breast_cancer", "wine", "diabetes")
VAE_METRICS = ("test/impute_rmse", "test/impute_coverage", "test/impute_crps")


def runs(sweeps: list[Path]) -> dict:
    """{(table, mechanism label, seed): metrics} of every finished run under the sweep directories."""
    found = {}
    for metrics in sorted(p for sweep in sweeps for p in sweep.glob("*/metrics.json")):
        cfg = OmegaConf.load(metrics.parent / ".hydra" / "config.yaml")
        label = f"{cfg.missing.kind.upper()} {round(100 * cfg.missing.rate)}%"
        found[str(cfg.dataset.table), label, cfg.seed] = json.loads(metrics.read_text())
    return found


def spread(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values) if len(values) > 1 else 0:.3f}"


def table(sweeps: list[Path], vae: list[Path] | None = None) -> str:
    """The table; `vae`: sweeps whose runs give the VAE's columns (the same tables, masks and seeds), the
    baselines' columns still from `sweeps`."""
    metrics = runs(sweeps)
    if vae:
        mine = runs(vae)
        metrics = {
            key: {**metrics[key], **{k: v for k, v in mine[key].items() if k in VAE_METRICS}}
            for key in mine.keys() & metrics.keys()
        }
    cells = defaultdict(list)
    for (name, label, _), values in metrics.items():
        cells[name, label].append(values)
    order = sorted(cells, key=lambda c: (TABLES.index(c[0]) if c[0] in TABLES else len(TABLES), c[0], c[1]))
    lines = [
        "| table | missing | seeds | " + " | ".join(COLUMNS) + " | VAE - the better of MICE, missForest |",
        "|" + "---|" * (len(COLUMNS) + 4),
    ]
    for cell in order:
        found = cells[cell]
        row = [spread([m[k] for m in found]) if all(k in m for m in found) else "-" for k in COLUMNS.values()]
        mean = {k: statistics.mean(m[COLUMNS[k]] for m in found) for k in ("VAE RMSE", "MICE RMSE", "missForest RMSE")}
        gap = mean["VAE RMSE"] - min(mean["MICE RMSE"], mean["missForest RMSE"])
        lines.append(f"| {cell[0]} | {cell[1]} | {len(found)} | " + " | ".join(row) + f" | {gap:+.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweeps", nargs="+", type=Path, help="vae-run -m sweep directories")
    parser.add_argument("--vae", nargs="+", type=Path, help="sweeps giving the VAE's columns (baselines=[] runs)")
    args = parser.parse_args()
    print(table(args.sweeps, args.vae))


if __name__ == "__main__":
    main()
