"""The README's clinical example, end to end: a realistic export (tests/clinical_export.py: an id, a date, F/M, an
ordinal smoker column, blood pressure as "101 mmHg", "NA"/"."/"" missing cells, a byte-order mark, CRLF) filled by one
`vae-run experiment=impute_file` command with declared column types, then the analysis model bp ~ age + sex + smoker
fitted to each of the M imputations and pooled by Rubin's rules (vae_runner.pool), beside the same model on the
complete data (before cells went missing) and on the complete cases only.

    python studies/clinical_example.py --rows 600 --rate 0.15 --draws 20 --out outputs/clinical_example
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.clinical_export import DECLARED, HEADER, LEVELS, clinical_rows, write_export  # noqa: E402
from vae_runner import pool  # noqa: E402

TERMS = ["intercept", "age", "sex=M", "smoker (0/1/2)"]
TRUTH = [80.0, 0.5, 3.0, 4.0]  # bp = 80 + 0.5 age + 3 [sex = M] + 4 smoker + N(0, 5^2): tests/clinical_export.py


def ols(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """bp ~ age + sex + smoker score: the coefficients and their squared standard errors."""
    bp = frame["bp"].astype(str).str.removesuffix(" mmHg").astype(float).to_numpy()
    design = np.column_stack(
        [
            np.ones(len(frame)),
            frame["age"].astype(float),
            (frame["sex"] == "M").astype(float),
            frame["smoker"].map({level: k for k, level in enumerate(LEVELS)}).astype(float),
        ]
    )
    beta, *_ = np.linalg.lstsq(design, bp, rcond=None)
    residual = bp - design @ beta
    sigma2 = residual @ residual / (len(bp) - design.shape[1])
    return beta, np.diag(np.linalg.inv(design.T @ design)) * sigma2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=600)
    parser.add_argument("--rate", type=float, default=0.15)
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("outputs/clinical_example"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    export = write_export(args.out / "export.csv", clinical_rows(args.rows, args.seed, args.rate))
    command = [
        "vae-run",
        "experiment=impute_file",
        f"dataset.table={export}",
        *DECLARED,
        f"evaluation.imputation.draws={args.draws}",
        f"hydra.run.dir={args.out / 'run'}",
    ]
    print("$", shlex.join(command), flush=True)
    start = time.perf_counter()
    subprocess.run(command, check=True)
    print(f"fit and imputation: {time.perf_counter() - start:.1f} s")
    long = pd.read_csv(args.out / "run" / "imputations.csv", dtype=str, keep_default_na=False)
    fits = [ols(group) for _, group in long.groupby("imputation", sort=True)]
    pooled = pool([b for b, _ in fits], [v for _, v in fits])
    low, high = pooled.interval(0.95)
    complete = pd.DataFrame(clinical_rows(args.rows, args.seed, 0.0), columns=list(HEADER))
    full, full_var = ols(complete)
    given = pd.read_csv(export, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    cases = given[~given[["sex", "smoker", "age", "bp"]].isin(["", "NA", "."]).any(axis=1)]
    cc, cc_var = ols(cases)
    print(f"\nbp ~ age + sex + smoker, {args.rows} rows ({len(cases)} complete cases), M = {pooled.m} imputations")
    print(f"{'term':<16}{'truth':>7}{'complete data':>20}{'complete cases':>20}{'pooled (95% CI)':>30}{'fmi':>7}")
    for k, term in enumerate(TERMS):
        se_full, se_cc = full_var[k] ** 0.5, cc_var[k] ** 0.5
        print(
            f"{term:<16}{TRUTH[k]:>7.2f}{full[k]:>11.2f} ({se_full:.2f}){cc[k]:>13.2f} ({se_cc:.2f})"
            f"{pooled.estimate[k]:>11.2f} ({pooled.std_error[k]:.2f}) [{low[k]:.2f}, {high[k]:.2f}]"
            f"{pooled.fmi[k]:>7.2f}"
        )


if __name__ == "__main__":
    main()
