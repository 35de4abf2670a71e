"""`vae-run mode=impute ckpt=<run>`: a run trained on a CSV table of one's own (`dataset.table=<file.csv>`) fills
that file's missing cells, for analysis downstream.

`evaluation.imputation.table=<file.csv>` fills another file instead (another cohort, the same columns in the same
order), its rows standardised as the run's training rows were. Two files go into the new run directory, every row of
the table in the file's order, in the file's units:
- `imputed.csv`: the single imputation, E[x_mis | x_obs] (a binary column's cell: 1 where its imputed probability
  exceeds 1/2, else 0; the probability itself with evaluation.imputation.probabilities=true);
- `imputations.csv`: `evaluation.imputation.draws` multiple imputations in long format (a first column `imputation`,
  1..M, then the table; the layout of R mice's `complete(action="long")`): fit the analysis to each and pool the M
  results with Rubin's rules, so its standard errors carry the imputation uncertainty.
Beside them, missing_patterns.csv and imputed_densities.png (imputation/diagnostics.py). Observed cells are the file's
own text in both (the filled ones at 10 significant digits), the header without a
byte-order mark. The estimator is the final evaluation's
(imputation/importance.py: `evaluation.imputation.samples` proposals from q(z | x_obs),
importance-weighted), on the run's standardisation (the observed entries of its training split), seeded by `seed`.

`ckpt=<sweep directory>` pools the sweep's runs as one bootstrap ensemble (each trained with trainer.bootstrap=true
on its own resample of the rows, seed=range(B)): each member gives its share of the M imputations and the single
imputation is the members' average, so the imputations carry the model's estimation error as well as
p(x_mis | x_obs) ("proper" multiple imputation in Rubin's sense; the EMB idea of Honaker, King & Blackwell 2011;
one run is made proper more cheaply by `evaluation.imputation.proper=true`, experiment=impute_tabular's default,
which draws the likelihood's Gaussian part from its posterior per imputation instead of refitting the whole model;
an ensemble's members skip that):
    vae-run -m experiment=impute_tabular dataset.table=f.csv missing.kind=none trainer.bootstrap=true 'seed=range(5)'
    vae-run mode=impute ckpt=<that multirun directory> evaluation.imputation.draws=20
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import torch
from omegaconf import OmegaConf

from vae_runner.data.csv_table import is_table_file, numbers, read_cells
from vae_runner.errors import UserError
from vae_runner.imputation.diagnostics import plot_imputed_densities, write_missing_patterns
from vae_runner.imputation.importance import importance_imputations, proper_imputations

log = logging.getLogger(__name__)


def impute_table(members: list[tuple], run_dir: Path) -> dict:
    """Fill the missing cells of the table the runs were trained on into imputed.csv and imputations.csv in
    `run_dir`; `members`: (cfg, state, data, model, device) of one run or of each member of a bootstrap ensemble
    (build.from_checkpoint gives these), the M = `evaluation.imputation.draws` imputations shared among them."""
    cfg, state, data = members[0][:3]
    table = OmegaConf.select(cfg, "dataset.table", default=None)
    if cfg.dataset.name != "tabular" or not is_table_file(str(table)):
        raise UserError(
            f"mode=impute fills the missing cells of the CSV table a run was trained on (dataset=tabular "
            f"dataset.table=<file.csv>); {state['path']} was trained on dataset={cfg.dataset.name}"
            f"{f' dataset.table={table}' if table else ''}. For other data, impute NaN entries with the Python API: "
            f"vae_runner.load(<run dir>).impute(x)."
        )
    target = OmegaConf.select(cfg, "evaluation.imputation.table", default=None) or table
    columns, cells = read_cells(str(target))  # the observed cells go back as the file writes them
    x = numbers(str(target), columns, cells, drop_empty=False, dtype=torch.float64)
    if columns != list(data.columns):
        raise UserError(column_difference(target, columns, table, data.columns))
    check_members(members, table)
    total, missing = cfg.evaluation.imputation.draws, torch.isnan(x)
    shares = [total // len(members) + (m < total % len(members)) for m in range(len(members))]
    proper = OmegaConf.select(cfg, "evaluation.imputation.proper", default=False)
    proper = proper and len(members) == 1  # an ensemble's members carry the estimation error already
    drawn = [member_imputations(*m, x, share, i, proper) for i, (m, share) in enumerate(zip(members, shares))]
    mean = torch.stack([m for m, _ in drawn]).mean(0)
    binary = torch.tensor(data.binary_columns)
    if not cfg.evaluation.imputation.probabilities:
        mean = torch.where(binary, (mean > 0.5).double(), mean)
    single, multiple = torch.where(missing, mean, x), torch.where(missing, torch.cat([d for _, d in drawn]), x)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_table(run_dir / "imputed.csv", columns, [(None, single)], cells, missing)
    numbered = [(m + 1, imputation) for m, imputation in enumerate(multiple)]
    write_table(run_dir / "imputations.csv", ["imputation", *columns], numbered, cells, missing)
    write_missing_patterns(run_dir / "missing_patterns.csv", columns, missing)
    plot_imputed_densities(run_dir / "imputed_densities.png", columns, x, multiple)
    log.info(
        "%d missing cells of %s (%d rows) imputed by %s: %s (single imputation) and %s (%d multiple imputations)",
        int(missing.sum()),
        target,
        len(x),
        state["path"] if len(members) == 1 else f"{len(members)} bootstrap members",
        run_dir / "imputed.csv",
        run_dir / "imputations.csv",
        len(multiple),
    )
    return {"imputed_cells": int(missing.sum()), "rows": len(x), "imputations": len(multiple)}


def column_difference(target, columns: list[str], table, trained: list[str]) -> str:
    """Why `target`'s columns cannot be filled by a run trained on `table`'s: the names each lacks, or the order."""
    extra, lacking = [c for c in columns if c not in trained], [c for c in trained if c not in columns]
    if extra or lacking:
        what = "; ".join(
            part
            for part in (
                f"it lacks {', '.join(lacking)}" if lacking else "",
                f"it has {', '.join(extra)}, which the run's table had not" if extra else "",
            )
            if part
        )
    else:
        what = f"the same names in another order ({', '.join(columns)})"
    return (
        f"{target} cannot be filled by this run: its columns must be those of {table}, which it was trained on, in "
        f"that order ({', '.join(trained)}); {what}. Rename, add or reorder its columns to match."
    )


def member_imputations(cfg, state, data, model, device, x: torch.Tensor, draws: int, member: int, proper: bool):
    """One run's single imputation (N, F) and `draws` multiple imputations (M, N, F) of x, in the table's units,
    drawn from `seed` (+ 1,000,003 per member: each member its own stream); `proper`: each imputation under its own
    draw of the likelihood's parameters given the run's training rows (imputation/importance.py)."""
    model.accept_missing()
    standard = ((x - data.offset) / data.scale).float().to(device)
    samples, seed = cfg.evaluation.imputation.samples, cfg.seed + 1_000_003 * member
    mean, multiple, _ = importance_imputations(model, standard, None, samples, draws, seed)
    if proper:
        multiple = proper_imputations(model, standard, data.train.x.to(device), samples, draws, seed)
    return tuple(t.cpu().double() * data.scale + data.offset for t in (mean, multiple))


def check_members(members: list[tuple], table) -> None:
    """An ensemble's members must be runs on the same table, with different seeds; one that is not bootstrapped is
    allowed (a deep ensemble) with a warning."""
    if len(members) == 1:
        return
    problems = [
        f"{state['path']} was trained on {OmegaConf.select(cfg, 'dataset.table')}"
        for cfg, state, *_ in members
        if OmegaConf.select(cfg, "dataset.table") != table
    ]
    if len({state["config"]["seed"] for _, state, *_ in members}) < len(members):
        problems.append("two members were trained with the same seed (the same resample and start)")
    if problems:
        raise UserError(
            f"mode=impute with a sweep directory pools its runs as members of one ensemble, so they must be runs of "
            f"one table with seeds of their own; here {'; '.join(problems)}. Pass one run directory, or a sweep of "
            f"trainer.bootstrap=true seed=range(M) on {table}."
        )
    plain = [str(state["path"]) for cfg, state, *_ in members if not cfg.trainer.bootstrap]
    if plain:
        log.warning(
            "%d of the %d members were not trained on a bootstrap resample (trainer.bootstrap=false): their "
            "imputations carry the spread of their random starts, not the estimation error a bootstrap gives",
            len(plain),
            len(members),
        )


def write_table(path: Path, columns: list[str], tables: list, cells: list[list[str]], missing: torch.Tensor) -> None:
    """`tables`: (imputation number or None, values (N, F)) -> one CSV, the number first where given (the long
    layout); each observed cell exactly as the input file wrote it, each filled one at 10 significant digits."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for number, values in tables:
            first = [] if number is None else [str(number)]
            for row, written, hole in zip(values.tolist(), cells, missing.tolist()):
                writer.writerow(first + [f"{v:.10g}" if h else c for v, c, h in zip(row, written, hole)])
