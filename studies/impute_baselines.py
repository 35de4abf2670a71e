"""Transductive imputation scores on scikit-learn's bundled tables (each imputer fitted on the whole masked table
and imputing its holes, as MIWAE, GAIN and HyperImpute score): mean, kNN, MICE (and missForest with --missforest),
and with --vae the VAE (`vae_runner.impute_file`: experiment=impute_tabular fitted to the masked table written as a
CSV, then mode=impute; --members > 1: a bootstrap ensemble), per dataset and MCAR rate, mean ± standard deviation
over seeds of the RMSE (standardised columns) and, for the multiple imputers at the same M (--draws), the 90 %
interval coverage and the fair CRPS (evaluation/imputation.py: exact for any M).

    python studies/impute_baselines.py --datasets breast_cancer wine --rates 0.1 0.3 0.5 --seeds 0 1 2 --draws 10
    python studies/impute_baselines.py --datasets breast_cancer --rates 0.5 --protocol miwae --vae \
        likelihood=correlated_gaussian        # MIWAE's protocol (Mattei & Frellsen 2019: MSE 0.2867)

Each seed draws its own mask (every row keeps one observed entry). The table is standardised with the statistics
of its observed entries, or (--protocol miwae, the pamattei/miwae notebook's) with the complete table's mean and
sd; the scores are in those units.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from sklearn import datasets

from vae_runner.api import impute_file, member_seeds, quiet
from vae_runner.data.missingness import keep_one_per_row, mcar_mask
from vae_runner.data.table_file import write_numbers
from vae_runner.evaluation.imputation import crps, interval_coverage, rmse
from vae_runner.imputation.baselines import baseline_imputations

LOADERS = {"breast_cancer": datasets.load_breast_cancer, "wine": datasets.load_wine, "diabetes": datasets.load_diabetes}


def scores(table: np.ndarray, rate: float, seed: int, args, work: Path) -> dict[str, float]:
    mask = keep_one_per_row(mcar_mask(table.shape, rate, seed), seed).numpy()
    basis = table if args.protocol == "miwae" else np.where(mask, np.nan, table)
    mean, std = np.nanmean(basis, 0), np.nanstd(basis, 0)
    table = (table - mean) / np.where(std > 0, std, 1.0)
    names = ("mean", "knn", "mice", *(["missforest"] if args.missforest else []))
    out = baseline_imputations(table, mask, seed, args.draws, names=names)
    row = {f"{name} RMSE": rmse(table, imputed.mean(0), mask) for name, imputed in out.items()}
    multiple = {"MICE": out["mice"]}
    if args.vae:
        work.mkdir(parents=True, exist_ok=True)
        csv = work / f"holes{seed}.csv"
        write_numbers(csv, [f"c{j}" for j in range(table.shape[1])], torch.from_numpy(np.where(mask, np.nan, table)))
        seeds = member_seeds(seed, args.members)
        overrides = ["trainer.num_threads=1", "logger.progress_bar=false", *args.overrides]
        single, multiple["VAE"] = impute_file(csv, overrides, work / f"vae{seed}", args.draws, seeds)
        row["VAE RMSE"] = rmse(table, single, mask)
        row["VAE MSE"] = row["VAE RMSE"] ** 2
    for name, draws in multiple.items():
        row[f"{name} coverage"] = interval_coverage(draws, table, mask, 0.9)
        row[f"{name} CRPS"] = crps(draws, table, mask)
    return row


def cell(values: list[float]) -> str:
    return f"{values[0]:.3f}" if len(values) == 1 else f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["breast_cancer", "wine"], choices=sorted(LOADERS))
    parser.add_argument("--rates", nargs="+", type=float, default=[0.1, 0.3, 0.5])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--draws", type=int, default=10, help="M, every multiple imputer's")
    parser.add_argument("--protocol", choices=("observed", "miwae"), default="observed", help="standardisation")
    parser.add_argument("--missforest", action="store_true", help="missForest too (slow: minutes per table)")
    parser.add_argument("--vae", action="store_true", help="the VAE too")
    parser.add_argument("--members", type=int, default=1, help="the VAE's bootstrap members (1: one model)")
    parser.add_argument(
        "overrides", nargs="*", help="vae-run overrides for the VAE, e.g. likelihood=correlated_gaussian"
    )
    args = parser.parse_args()
    with quiet():  # vae_runner's INFO lines off, restored after (a test runs main in-process)
        tmp = tempfile.TemporaryDirectory()
        work = Path(tmp.name)
        header = None
        for name in args.datasets:
            table = LOADERS[name]().data.astype(np.float64)
            for rate in args.rates:
                start = time.perf_counter()
                rows = [scores(table, rate, seed, args, work / f"{name}{rate}") for seed in args.seeds]
                if header is None:
                    header = list(rows[0])
                    print("| dataset | missing | " + " | ".join(header) + " | seconds |")
                    print("|---|---|" + "---|" * (len(header) + 1))
                cells = [cell([r[k] for r in rows]) for k in header]
                seconds = time.perf_counter() - start
                print(f"| {name} {table.shape} | {rate:.0%} | " + " | ".join(cells) + f" | {seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
