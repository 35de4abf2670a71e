"""Is inference after VAE multiple imputation valid? A simulation study of the whole path a researcher takes:
a table with holes -> `vae-run experiment=impute_tabular dataset.table=<csv> missing.kind=none` -> `vae-run
mode=impute` -> an ordinary least-squares analysis of each imputation -> Rubin's rules (`vae_runner.pool`).

Each replication draws a population table with known regression coefficients (x ~ N(0, S), S with correlation
`--rho` between the `--columns` covariates; y = 1 + 0.5 x1 - 0.3 x2 + N(0, 1)), hides `--rate` of every column
(`--mechanism mcar`; or `mar`: Muzellec et al.'s logistic MAR, `--inputs` of the variables kept complete and the
others' missingness a logistic function of them; every row keeps one entry), and estimates beta1 and beta2 of
y ~ x1 + x2: complete-case analysis, (`--missforest`) missForest's single imputation analysed as if complete,
MICE (scikit-learn's IterativeImputer with posterior draws, M imputations) pooled, MICE with R mice's `norm`
(imputation/mice_norm.py: coefficients and noise drawn per imputation) pooled, the VAE's M multiple imputations
pooled (from one model, proper by the preset's evaluation.imputation.proper=true: each imputation under its own
posterior draw of the likelihood's Gaussian part; `evaluation.imputation.proper=false` for one model's improper
draws; or from `--members` bootstrap members:
`trainer.bootstrap=true`, each its own resample and seed, giving M / members draws each: proper imputation), and
the VAE's single imputation analysed as if complete. The VAE fits 99 % of the rows (dataset.test_fraction=0.01; 10 %
of them are its validation rows for early stopping) and imputes every row through `vae-run mode=impute`. It prints
per method the bias, relative bias (negative: toward 0), coverage of the nominal 95 % interval and mean interval
width over the replications, each with its Monte Carlo standard error, and how faithful the VAE's conditional
means are: on 2,000 fresh complete rows with one column hidden, the slope of its E[column | the others] on the
true conditional mean (1: faithful; below 1: the dependence on the other columns shrunk).

    python studies/mi_inference.py --reps 200 --mechanism mar --rate 0.3 --imputations 20 \
        [--members 5] likelihood=correlated_gaussian [more vae-run overrides]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from vae_runner.api import impute_file, load, member_seeds, quiet
from vae_runner.data.missingness import fit_logistic, keep_one_per_row, mcar_mask
from vae_runner.data.table_file import write_numbers
from vae_runner.imputation.baselines import baseline_imputations
from vae_runner.imputation.pooling import pool

BETA = np.array([1.0, 0.5, -0.3])  # --design regression: intercept, x1, x2
FIMD_BETA = np.array([0.0, 1.0])  # --design fimd_x / fimd_y: van Buuren's y = x + N(0, 1), one predictor


def coefficients(args) -> np.ndarray:
    return BETA if args.design == "regression" else FIMD_BETA


def covariates(args) -> np.ndarray:
    """The regression design's covariance of the covariates: 1 on the diagonal, `--rho` elsewhere."""
    return np.full((args.columns, args.columns), args.rho) + (1 - args.rho) * np.eye(args.columns)


def population(rows: int, args, rng) -> np.ndarray:
    """(rows, 1 + covariates): y, then the covariates. FIMD (2nd ed., section 3.2.4): x ~ N(0, 1), y = x + N(0, 1)."""
    if args.design != "regression":
        x = rng.normal(0, 1, rows)
        return np.column_stack([x + rng.normal(0, 1, rows), x])
    x = rng.multivariate_normal(np.zeros(args.columns), covariates(args), rows)
    y = BETA[0] + x[:, :2] @ BETA[1:] + rng.normal(0, 1, rows)
    return np.column_stack([y, x])


def conditional_slopes(run, args, columns=(0, 1)) -> list[float]:
    """For each of `columns` (0: y, 1: x1): the slope of the model's E[column | the rest] on the truth's, over
    2,000 fresh complete rows, in the table's units."""
    full = population(2000, args, np.random.default_rng(10**6))
    cov = covariates(args)
    b = np.r_[BETA[1:], np.zeros(args.columns - 2)]
    joint = np.block([[b @ cov @ b + 1, (cov @ b)[None]], [(cov @ b)[:, None], cov]])  # of (y, x1, ...)
    mu = np.r_[BETA[0], np.zeros(args.columns)]
    offset, scale = (t.double().numpy().ravel() for t in (run.data.offset, run.data.scale))
    slopes = []
    for j in columns:
        rest = [k for k in range(len(mu)) if k != j]
        true = mu[j] + (full[:, rest] - mu[rest]) @ np.linalg.solve(joint[np.ix_(rest, rest)], joint[rest, j])
        x = torch.tensor((full - offset) / scale, dtype=torch.float32)
        x[:, j] = float("nan")
        mean = run.impute(x, samples=200, draws=1, seed=0, proper=False).mean
        model = mean[:, j].double().numpy() * scale[j] + offset[j]
        slopes.append(float(np.polyfit(true, model, 1)[0]))
    return slopes


def ols(table: np.ndarray, slopes: int) -> tuple[np.ndarray, np.ndarray]:
    """The `slopes` coefficients of y ~ 1 + x1 + ... (columns 1..slopes) and their squared standard errors."""
    design = np.column_stack([np.ones(len(table)), table[:, 1 : 1 + slopes]])
    coef, *_ = np.linalg.lstsq(design, table[:, 0], rcond=None)
    resid = table[:, 0] - design @ coef
    sigma2 = resid @ resid / (len(table) - 1 - slopes)
    return coef[1:], np.diag(sigma2 * np.linalg.inv(design.T @ design))[1:]


def interval(estimate, variance, df) -> tuple[np.ndarray, np.ndarray]:
    half = stats.t.ppf(0.975, df) * np.sqrt(variance)
    return estimate - half, estimate + half


def holes_of(table: np.ndarray, args, r: int) -> np.ndarray:
    """The replication's mask (True = missing): MCAR, or Muzellec et al.'s logistic MAR on `--inputs` of the
    variables (kept complete; data/missingness.py), every row keeping one entry; FIMD: x (fimd_x) or y (fimd_y)
    missing completely at random, the other column complete."""
    if args.design != "regression":
        mask = np.zeros(table.shape, dtype=bool)
        mask[:, 1 if args.design == "fimd_x" else 0] = np.random.default_rng(1000 + r).random(len(table)) < args.rate
        return mask
    if args.mechanism == "mcar":
        mask = mcar_mask(table.shape, args.rate, 1000 + r)
    else:
        x = torch.from_numpy(table)
        mask = fit_logistic(x, args.rate, "mar", args.inputs, 1000 + r).mask(x, args.rate, "mar", 2000 + r)
    return keep_one_per_row(mask, 1000 + r).numpy()


def vae_imputations(csv: Path, r: int, args, work: Path) -> tuple[np.ndarray, np.ndarray, object]:
    """M imputations (M, N, F) and the single imputation (N, F) of `csv` (vae_runner.impute_file: one model, or
    `--members` bootstrap members each giving M / members), and the first member's run."""
    seeds = member_seeds(r, args.members)
    common = ["trainer.num_threads=1", "logger.progress_bar=false", "evaluation.iw_samples=50"]
    single, draws = impute_file(csv, [*common, *args.vae], work / f"rep{r}", args.imputations, seeds)
    return draws, single, load(work / f"rep{r}" / "members" / str(seeds[0]))


def replication(r: int, args, work: Path) -> tuple[dict[str, tuple], list[float]]:
    rng = np.random.default_rng(r)
    table = population(args.rows, args, rng)
    mask = holes_of(table, args, r)
    holes = np.where(mask, np.nan, table)
    k = len(coefficients(args)) - 1  # slopes
    df = args.rows - 1 - k
    out: dict[str, tuple] = {}
    complete = holes[~np.isnan(holes[:, : 1 + k]).any(1)]
    est, var = ols(complete, k)
    out["complete case"] = (est, *interval(est, var, len(complete) - 1 - k))
    theirs = baseline_imputations(table, mask, r, draws=args.imputations, names=("mice", "mice_norm"))
    for name, label in (("mice", "MICE, pooled"), ("mice_norm", "MICE (norm), pooled")):
        pooled = pool(*zip(*(ols(t, k) for t in theirs[name])), df_complete=df)
        out[label] = (pooled.estimate, *pooled.interval(0.95))
    if args.missforest:  # one imputation, analysed as if complete (no between-imputation variance)
        forest = baseline_imputations(table, mask, r, names=("missforest",))["missforest"][0]
        est, var = ols(forest, k)
        out["missForest, single imputation"] = (est, *interval(est, var, df))
    if args.no_vae:
        return out, [float("nan")] * 2
    csv = work / f"rep{r}.csv"
    write_numbers(csv, ["y", *(f"x{j}" for j in range(1, table.shape[1]))], torch.from_numpy(holes))  # NaN: NA
    draws, single, run = vae_imputations(csv, r, args, work)
    pooled = pool(*zip(*(ols(t, k) for t in draws)), df_complete=df)
    out["VAE, pooled"] = (pooled.estimate, *pooled.interval(0.95))
    est, var = ols(single, k)
    out["VAE, single imputation"] = (est, *interval(est, var, df))
    slopes = conditional_slopes(run, args) if args.design == "regression" else [float("nan")] * 2
    return out, slopes


def summary(name: str, runs: list, beta: np.ndarray) -> str:
    """One table row: per coefficient bias, relative bias, coverage and width, each with its Monte Carlo standard
    error (sd / sqrt(R); for the coverage sqrt(c (1 - c) / R))."""
    est, low, high = (np.array(v) for v in zip(*runs))  # (R, 2) each
    reps = len(est)
    slopes = len(beta) - 1
    se = lambda v: v.std(0, ddof=1) / np.sqrt(reps) if reps > 1 else np.zeros(slopes)  # noqa: E731
    bias, bias_se = est.mean(0) - beta[1:], se(est)
    inside = ((low < beta[1:]) & (beta[1:] < high)).astype(float)
    cover, cover_se = inside.mean(0), np.sqrt(inside.mean(0) * (1 - inside.mean(0)) / reps)
    width, width_se = (high - low).mean(0), se(high - low)
    cells = []
    for j in range(slopes):
        relative = 100 * bias[j] / beta[1 + j]
        cells += [
            f"{bias[j]:+.3f} ± {bias_se[j]:.3f}",
            f"{relative:+.1f} % ± {100 * bias_se[j] / abs(beta[1 + j]):.1f}",
            f"{cover[j]:.3f} ± {cover_se[j]:.3f}",
            f"{width[j]:.3f} ± {width_se[j]:.3f}",
        ]
    return f"| {name} | " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=40)
    parser.add_argument("--first", type=int, default=0, help="first replication's seed")
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--columns", type=int, default=6, help="covariates (x1, x2 and the rest)")
    parser.add_argument("--rho", type=float, default=0.5)
    parser.add_argument("--rate", type=float, default=0.3)
    parser.add_argument("--imputations", type=int, default=20)
    parser.add_argument("--mechanism", choices=("mcar", "mar"), default="mcar")
    parser.add_argument("--inputs", type=float, default=0.3, help="MAR: the share of variables kept complete")
    parser.add_argument("--members", type=int, default=1, help="bootstrap members (1: one model)")
    parser.add_argument(
        "--design",
        choices=("regression", "fimd_x", "fimd_y"),
        default="regression",
        help="fimd_x / fimd_y: van Buuren's FIMD Tables 3.2 / 3.1 (y = x + N(0, 1), --rate of x or y MCAR; use "
        "--rows 50 --rate 0.5 --imputations 5)",
    )
    parser.add_argument("--no-vae", action="store_true", help="complete case and MICE only")
    parser.add_argument(
        "--missforest", action="store_true", help="also missForest's single imputation (~10-30 s per replication)"
    )
    parser.add_argument(
        "--results",
        type=Path,
        help="a JSON-lines file of per-replication results: each replication appended as it ends, those already "
        "in it (same settings) read instead of rerun, so a stopped study resumes and processes given different "
        "--first share one file; the table covers every replication of --first .. --first + --reps - 1 in it",
    )
    parser.add_argument("vae", nargs="*", help="further vae-run overrides for the VAE, e.g. objective.input_dropout=0")
    args = parser.parse_args()
    with quiet():  # vae_runner's INFO lines off, restored after (a test runs main in-process)
        done = saved(args, settings(parser.parse_args([])))
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(args.first, args.first + args.reps):
                if r not in done:
                    done[r] = dict(zip(("methods", "slopes"), replication(r, args, Path(tmp))))
                    keep(args, r, done[r])
                    print(f"replication {r} done, {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
                if (r + 1 - args.first) % 10 == 0:  # the table so far, so that a long study stopped early still reports
                    report(*collect(done, args.first, r + 1), args, time.perf_counter() - start, sys.stderr)
        report(*collect(done, args.first, args.first + args.reps), args, time.perf_counter() - start, sys.stdout)


def settings(args) -> dict:
    """What a replication's result depends on: every option but the ones choosing which replications to run."""
    return {k: v for k, v in vars(args).items() if k not in ("reps", "first", "results")}


def saved(args, defaults: dict) -> dict[int, dict]:
    """The replications in --results run with these settings (a line with other settings is an error, so that
    two studies never mix in one file; an option a line does not name, added since, counts at its default)."""
    if args.results is None or not args.results.exists():
        return {}
    done, want = {}, json.loads(json.dumps(settings(args), default=str))
    defaults = json.loads(json.dumps(defaults, default=str))
    for number, line in enumerate(args.results.read_text().splitlines(), 1):
        record = json.loads(line)
        if {**defaults, **record["settings"]} != want:
            sys.exit(
                f"{args.results}, line {number}: a replication run with other settings ({record['settings']}) -- "
                f"these are {want}. Give another --results file, or the same settings."
            )
        done[record["replication"]] = record
    return done


def keep(args, r: int, result: dict) -> None:
    if args.results is None:
        return
    record = {"replication": r, "settings": settings(args), **result}
    with args.results.open("a") as f:
        f.write(json.dumps(record, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v)) + "\n")


def collect(done: dict[int, dict], first: int, stop: int) -> tuple[dict[str, list], list]:
    """Per method its (estimate, low, high) over the replications first .. stop - 1 that are done, and the slopes."""
    results: dict[str, list] = {}
    slopes = []
    for r in sorted(k for k in done if first <= k < stop):
        for name, value in done[r]["methods"].items():
            results.setdefault(name, []).append(tuple(np.asarray(v, dtype=float) for v in value))
        slopes.append(list(done[r]["slopes"]))
    return results, slopes


def report(results: dict[str, list], slopes: list, args, seconds: float, file) -> None:
    """The study's table (and the VAE's conditional slopes) over the replications so far, into `file`."""
    say = lambda *lines: print(*lines, file=file, flush=True)  # noqa: E731
    say(
        f"{len(slopes)} replications, design {args.design}, {args.rows} rows, "
        f"{args.columns} covariates (rho {args.rho}), "
        f"{args.rate:.0%} {args.mechanism.upper()}, M = {args.imputations} from {args.members} model(s), "
        f"VAE overrides {args.vae}; {seconds:.0f} s\n"
    )
    beta = coefficients(args)
    head = [f"{what} beta{j}" for j in range(1, len(beta)) for what in ("bias", "relative bias", "coverage", "width")]
    say("| method | " + " | ".join(head) + " |\n|---|" + "---|" * len(head))
    for name, runs in results.items():
        say(summary(name, runs, beta))
    if args.no_vae or args.design != "regression":
        return
    slope, spread = np.mean(slopes, 0), np.std(slopes, 0, ddof=1) if len(slopes) > 1 else np.zeros(2)
    say(
        f"\nThe VAE's conditional means against the truth's (slope; 1 = faithful): E[y | x] {slope[0]:.2f} ± "
        f"{spread[0]:.2f}, E[x1 | y, x2, ...] {slope[1]:.2f} ± {spread[1]:.2f} (mean ± std over replications)"
    )


if __name__ == "__main__":
    main()
