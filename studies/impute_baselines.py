"""The imputation baselines of issue 18 on scikit-learn's bundled tables: mean, kNN and MICE imputations of MCAR
entries, per dataset and missing rate, mean ± standard deviation over seeds of the RMSE (standardised columns) and,
for MICE's multiple imputations, the 90 % interval coverage and the CRPS.

    python studies/impute_baselines.py --datasets breast_cancer wine --rates 0.1 0.3 0.5 --seeds 0 1 2 --draws 10

The table is standardised with the statistics of its observed entries; each seed draws its own mask (every row keeps
one observed entry). These are the numbers a VAE imputer has to beat (goal: RMSE <= MICE's at 30 %).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from sklearn import datasets

from vae_runner.data.missingness import keep_one_per_row, mcar_mask
from vae_runner.evaluation.imputation import crps, interval_coverage, rmse
from vae_runner.imputation.baselines import baseline_imputations

LOADERS = {"breast_cancer": datasets.load_breast_cancer, "wine": datasets.load_wine, "diabetes": datasets.load_diabetes}


def scores(table: np.ndarray, rate: float, seed: int, draws: int) -> dict[str, float]:
    mask = keep_one_per_row(mcar_mask(table.shape, rate, seed), seed).numpy()
    observed = np.where(mask, np.nan, table)
    mean, std = np.nanmean(observed, 0), np.nanstd(observed, 0)
    table = (table - mean) / np.where(std > 0, std, 1.0)
    out = baseline_imputations(table, mask, seed, draws)
    row = {f"{name} RMSE": rmse(table, imputed.mean(0), mask) for name, imputed in out.items()}
    row["MICE coverage"] = interval_coverage(out["mice"], table, mask, 0.9)
    row["MICE CRPS"] = crps(out["mice"], table, mask)
    return row


def cell(values: list[float]) -> str:
    return f"{values[0]:.3f}" if len(values) == 1 else f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["breast_cancer", "wine"], choices=sorted(LOADERS))
    parser.add_argument("--rates", nargs="+", type=float, default=[0.1, 0.3, 0.5])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--draws", type=int, default=10, help="MICE's multiple imputations")
    args = parser.parse_args()
    header = None
    for name in args.datasets:
        table = LOADERS[name]().data.astype(np.float64)
        for rate in args.rates:
            start = time.perf_counter()
            rows = [scores(table, rate, seed, args.draws) for seed in args.seeds]
            if header is None:
                header = list(rows[0])
                print("| dataset | missing | " + " | ".join(header) + " | seconds |")
                print("|---|---|" + "---|" * (len(header) + 1))
            cells = [cell([r[k] for r in rows]) for k in header]
            seconds = time.perf_counter() - start
            print(f"| {name} {table.shape} | {rate:.0%} | " + " | ".join(cells) + f" | {seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
