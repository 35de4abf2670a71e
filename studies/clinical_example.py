"""The README's clinical example, end to end: a realistic export (tests/clinical_export.py: an id, a date, F/M, an
ordinal smoker column, blood pressure as "101 mmHg", "NA"/"."/"" missing cells, a byte-order mark, CRLF) filled by one
`vae-run experiment=impute_file` command with declared column types, then the analysis model bp ~ age + sex + smoker
fitted to each of the M imputations and pooled by Rubin's rules (vae_runner.pool), beside the same model on the
complete data (before cells went missing), on the complete cases only, and on M imputations by R mice's `norm`
(vae_runner's implementation, on the four analysis columns as numbers) for reference.

    python studies/clinical_example.py --rows 600 --rate 0.15 --draws 20 --out outputs/clinical_example [overrides]
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
from vae_runner.imputation.baselines import baseline_imputations  # noqa: E402

TERMS = ["intercept", "age", "sex=M", "smoker (0/1/2)"]
TRUTH = [80.0, 0.5, 3.0, 4.0]  # bp = 80 + 0.5 age + 3 [sex = M] + 4 smoker + N(0, 5^2): tests/clinical_export.py


def numbers(frame: pd.DataFrame) -> np.ndarray:
    """The export's analysis columns as numbers (N, 4): age, bp (its unit stripped), sex = M as 1, smoker 0/1/2;
    NaN where missing."""
    cells = frame[["age", "bp", "sex", "smoker"]].astype(str).replace(["", "NA", "."], np.nan)
    return np.column_stack(
        [
            cells["age"].astype(float),
            cells["bp"].str.removesuffix(" mmHg").astype(float),
            cells["sex"].map({"F": 0.0, "M": 1.0}),
            cells["smoker"].map({level: float(k) for k, level in enumerate(LEVELS)}),
        ]
    )


def ols(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """bp ~ age + sex + smoker score on `numbers`' columns: the coefficients and their squared standard errors."""
    age, bp, sex, smoker = values.T
    design = np.column_stack([np.ones(len(bp)), age, sex, smoker])
    beta, *_ = np.linalg.lstsq(design, bp, rcond=None)
    residual = bp - design @ beta
    sigma2 = residual @ residual / (len(bp) - design.shape[1])
    return beta, np.diag(np.linalg.inv(design.T @ design)) * sigma2


def pooled(fits: list[tuple[np.ndarray, np.ndarray]]):
    """Rubin's rules over the M analyses: the pooled result."""
    return pool([b for b, _ in fits], [v for _, v in fits])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=600)
    parser.add_argument("--rate", type=float, default=0.15)
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("outputs/clinical_example"))
    parser.add_argument("overrides", nargs="*", help="more vae-run overrides, e.g. likelihood=gaussian")
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
        *args.overrides,
    ]
    print("$", shlex.join(command), flush=True)
    start = time.perf_counter()
    subprocess.run(command, check=True)
    print(f"fit and imputation: {time.perf_counter() - start:.1f} s")
    long = pd.read_csv(args.out / "run" / "imputations.csv", dtype=str, keep_default_na=False)
    vae = pooled([ols(numbers(group)) for _, group in long.groupby("imputation", sort=True)])
    given = numbers(pd.read_csv(export, dtype=str, keep_default_na=False, encoding="utf-8-sig"))
    holes = np.isnan(given)
    start = time.perf_counter()  # R mice's norm (as vae_runner writes it) on the same four columns, for reference
    mice = baseline_imputations(np.nan_to_num(given), holes, args.seed, args.draws, names=("mice_norm",))
    mice = pooled([ols(imputed) for imputed in mice["mice_norm"]])
    print(f"mice_norm on the four analysis columns: {time.perf_counter() - start:.1f} s")
    full, full_var = ols(numbers(pd.DataFrame(clinical_rows(args.rows, args.seed, 0.0), columns=list(HEADER))))
    cases = given[~holes.any(axis=1)]
    cc, cc_var = ols(cases)
    print(f"\nbp ~ age + sex + smoker, {args.rows} rows ({len(cases)} complete cases), M = {vae.m} imputations")
    print(
        f"{'term':<16}{'truth':>7}{'complete data':>16}{'complete cases':>16}"
        f"{'VAE pooled (95% CI)':>30}{'fmi':>6}{'mice_norm pooled (95% CI)':>32}{'fmi':>6}"
    )
    for k, term in enumerate(TERMS):
        print(
            f"{term:<16}{TRUTH[k]:>7.2f}{full[k]:>9.2f} ({full_var[k] ** 0.5:.2f})"
            f"{cc[k]:>9.2f} ({cc_var[k] ** 0.5:.2f})"
            + "".join(f"{interval(p, k)}{p.fmi[k]:>6.2f}" for p in (vae, mice))
        )


def interval(p, k: int) -> str:
    """Term k's pooled estimate, standard error and 95 % interval."""
    low, high = p.interval(0.95)
    return f"{p.estimate[k]:>11.2f} ({p.std_error[k]:.2f}) [{low[k]:.2f}, {high[k]:.2f}]"


if __name__ == "__main__":
    main()
