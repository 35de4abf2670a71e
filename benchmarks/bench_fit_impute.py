"""A plain fit-and-impute of one table: `vae_runner.impute_file` (experiment=impute_tabular fitted to the masked
table, then mode=impute) against scikit-learn's IterativeImputer (ICE: chained regressions, one imputation), on
breast_cancer with `--rate` of its cells MCAR, every row fitted and imputed (transductive), one torch thread. Prints
each one's seconds and standardised RMSE on the hidden cells, and the ratio (issue 38 asks <= 5x ICE's time).

    python benchmarks/bench_fit_impute.py                  # 20 % MCAR, M = 20
    python benchmarks/bench_fit_impute.py --rate 0.3 --draws 5
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer

import vae_runner
from vae_runner.api import quiet
from vae_runner.data.table_file import write_numbers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=0.2)
    parser.add_argument("--draws", type=int, default=20, help="the VAE's multiple imputations M")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    x = load_breast_cancer().data
    holes = np.random.default_rng(args.seed).random(x.shape) < args.rate
    masked = np.where(holes, np.nan, x)
    score = lambda imputed: float(np.sqrt((((imputed - x) / x.std(0))[holes] ** 2).mean()))  # noqa: E731
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "breast_cancer.csv"
        write_numbers(path, [f"c{j}" for j in range(x.shape[1])], torch.from_numpy(masked))
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its convergence warning at max_iter
            ice = IterativeImputer(random_state=args.seed, max_iter=10).fit_transform(masked)
        ice_s = time.perf_counter() - start
        start = time.perf_counter()
        with quiet():
            single, _ = vae_runner.impute_file(path, work_dir=Path(work) / "vae", draws=args.draws, seeds=(args.seed,))
        vae_s = time.perf_counter() - start
    print(f"{platform.processor() or platform.machine()}, one torch thread; {args.rate:.0%} MCAR, {len(x)} rows")
    print(f"ICE (IterativeImputer): {ice_s:.1f} s, RMSE {score(ice):.3f}")
    print(f"vae_runner.impute_file (M = {args.draws}): {vae_s:.1f} s, RMSE {score(single):.3f}; {vae_s / ice_s:.0f}x")


if __name__ == "__main__":
    main()
