"""`vae-run mode=impute ckpt=<run>`: a run trained on a table file of one's own (`dataset.table=<file>`) fills
that file's missing cells, for analysis downstream.

`evaluation.imputation.table=<file>` fills another file instead (another cohort, the same columns in any order, read
by the run's column types and levels), its rows standardised as the run's training rows were. Two files go into the
new run directory, every row of the table in the file's order and column order (`drop` columns left out), in the
file's units, labels and dialect (delimiter, decimal mark, line ending; a Parquet input gets Parquet copies too):
- `imputed.csv`: the single imputation, E[x_mis | x_obs], as a valid value of each column's type
  (data/column_types.py `decode`: a binary column's label on the side of 1/2 of its probability, or the probability
  itself with evaluation.imputation.probabilities=true; a categorical's most probable level; a count rounded;
  numbers squeezed into declared bounds);
- `imputations.csv`: `evaluation.imputation.draws` multiple imputations in long format (a first column `imputation`,
  1..M, then the table; the layout of R mice's `complete(action="long")`): fit the analysis to each and pool the M
  results with Rubin's rules, so its standard errors carry the imputation uncertainty.
Beside them, missing_patterns.csv and imputed_densities.png (imputation/diagnostics.py). Observed cells are the file's
own text in both (the filled ones at 10 significant digits), the header without a byte-order mark; ids and dates
pass through untouched. The estimator is the final evaluation's
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

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from omegaconf import OmegaConf

from vae_runner.data.column_codes import check_columns, decode, encode
from vae_runner.data.column_types import Schema
from vae_runner.data.table_file import TextTable, is_missing, is_table_file, read_text_table, write_text_table
from vae_runner.errors import UserError
from vae_runner.imputation.diagnostics import plot_imputed_densities, write_missing_patterns
from vae_runner.imputation.importance import importance_imputations, proper_imputations

if TYPE_CHECKING:
    import pandas as pd  # imported where a frame is built (start-up: tests/test_startup.py)

log = logging.getLogger(__name__)


@dataclass
class Filled:
    """A table's imputations as text: the output columns (the file's, `drop` ones left out), the single imputation's
    rows and each multiple imputation's, and in the table's units the model columns (x, NaN missing; draws)."""

    columns: list[str]
    single: list[list[str]]
    multiple: list[list[list[str]]]
    x: torch.Tensor
    draws: torch.Tensor


def impute_table(members: list[tuple], run_dir: Path) -> dict:
    """Fill the missing cells of the table the runs were trained on (or evaluation.imputation.table) into
    imputed.csv and imputations.csv in `run_dir`; `members`: (cfg, state, data, model, device) of one run or of each
    member of a bootstrap ensemble (build.from_checkpoint gives these), the M = `evaluation.imputation.draws`
    imputations shared among them."""
    cfg, state, data = members[0][:3]
    table = OmegaConf.select(cfg, "dataset.table", default=None)
    if cfg.dataset.name != "tabular" or not is_table_file(str(table)):
        raise UserError(
            f"mode=impute fills the missing cells of the table file a run was trained on (dataset=tabular "
            f"dataset.table=<file>); {state['path']} was trained on dataset={cfg.dataset.name}"
            f"{f' dataset.table={table}' if table else ''}. For other data, impute NaN entries with the Python API: "
            f"vae_runner.load(<run dir>).impute(x)."
        )
    target = OmegaConf.select(cfg, "evaluation.imputation.table", default=None) or table
    text = read_text_table(str(target), *(OmegaConf.select(cfg, f"dataset.{k}") for k in READING))
    check_members(members, table)
    filled = fill(members, text, str(target))
    run_dir.mkdir(parents=True, exist_ok=True)
    write_outputs(run_dir, filled, text)
    schema = data.schema
    missing = torch.tensor(
        [[is_missing(row[j], schema.missing_values) for j in modelled(schema, text)] for row in text.cells],
        dtype=torch.bool,
    ).reshape(len(text.cells), -1)
    write_missing_patterns(run_dir / "missing_patterns.csv", [c.name for c in schema.columns if c.width], missing)
    if not cfg.evaluation.lean:  # a fill inside a pipeline draws nothing (30 columns' densities: ~5 s)
        numeric = [start for c, start, _ in schema.spans() if c.kind in ("continuous", "count")]
        names = [c.name for c, _, _ in schema.spans() if c.kind in ("continuous", "count")]
        plot_imputed_densities(
            run_dir / "imputed_densities.png", names, filled.x[:, numeric], filled.draws[..., numeric]
        )
    log.info(
        "%d missing cells of %s (%d rows) imputed by %s: %s (single imputation) and %s (%d multiple imputations)",
        int(missing.sum()),
        target,
        len(text.cells),
        state["path"] if len(members) == 1 else f"{len(members)} bootstrap members",
        run_dir / "imputed.csv",
        run_dir / "imputations.csv",
        len(filled.multiple),
    )
    return {"imputed_cells": int(missing.sum()), "rows": len(text.cells), "imputations": len(filled.multiple)}


READING = ("delimiter", "decimal", "encoding")  # dataset.* options a file is read by (data/table_file.py)


def modelled(schema: Schema, text: TextTable) -> list[int]:
    """The text's column index of each modelled column, in the schema's order."""
    return [text.columns.index(c.name) for c in schema.columns if c.width]


def fill(members: list[tuple], text: TextTable, where: str) -> Filled:
    """The members' imputations of `text`'s missing cells (read by the first member's schema), as text."""
    cfg, _, data = members[0][:3]
    schema = replace(data.schema, decimal=text.dialect.decimal)  # another cohort's file may write 1,5 for 1.5
    check_columns(schema, text, where)
    x = encode(schema, text, where)  # (N, F) model columns in the table's units, NaN missing
    total, missing = cfg.evaluation.imputation.draws, torch.isnan(x)
    shares = [total // len(members) + (m < total % len(members)) for m in range(len(members))]
    proper = OmegaConf.select(cfg, "evaluation.imputation.proper", default=False)
    proper = proper and len(members) == 1  # an ensemble's members carry the estimation error already
    drawn = [member_imputations(*m, x, share, i, proper) for i, (m, share) in enumerate(zip(members, shares))]
    mean = torch.where(missing, torch.stack([m for m, _ in drawn]).mean(0), x)
    multiple = torch.where(missing, torch.cat([d for _, d in drawn]), x)
    probabilities = bool(cfg.evaluation.imputation.probabilities)
    columns = [name for name in text.columns if name in schema.names and _kind(schema, name) != "drop"]
    single = merged(schema, text, decode(schema, mean, probabilities), columns)
    many = [merged(schema, text, decode(schema, m), columns) for m in multiple]
    return Filled(columns, single, many, x, multiple)


def _kind(schema: Schema, name: str) -> str:
    return schema.columns[schema.names.index(name)].kind


def merged(schema: Schema, text: TextTable, decoded: list[list[str]], columns: list[str]) -> list[list[str]]:
    """Rows of `columns`: each modelled column's missing cell its decoded text, every other cell as written."""
    position = {c.name: k for k, (c, _, _) in enumerate(schema.spans())}
    where = [text.columns.index(name) for name in columns]
    rows = []
    for row, filled in zip(text.cells, decoded):
        rows.append(
            [
                filled[position[name]] if name in position and is_missing(row[j], schema.missing_values) else row[j]
                for name, j in zip(columns, where)
            ]
        )
    return rows


def write_outputs(run_dir: Path, filled: Filled, text: TextTable) -> None:
    """imputed.csv and imputations.csv (long: `imputation` 1..M first) in the input's dialect; Parquet copies beside
    them where the input was Parquet."""
    write_text_table(run_dir / "imputed.csv", filled.columns, filled.single, text.dialect)
    long = [[str(m + 1), *row] for m, rows in enumerate(filled.multiple) for row in rows]
    write_text_table(run_dir / "imputations.csv", ["imputation", *filled.columns], long, text.dialect)
    if text.dialect.suffix == ".parquet":
        frame(filled.columns, filled.single).to_parquet(run_dir / "imputed.parquet", index=False)
        frame(["imputation", *filled.columns], long).to_parquet(run_dir / "imputations.parquet", index=False)


def frame(columns: list[str], rows: list[list[str]]) -> pd.DataFrame:
    """Rows of text as a DataFrame: a column whose every cell reads as a number becomes numbers (empty: NaN)."""
    import pandas as pd

    out = pd.DataFrame(rows, columns=columns, dtype=object)
    for name in columns:
        numbers = pd.to_numeric(out[name].replace("", None), errors="coerce")
        if numbers.notna().sum() == (out[name] != "").sum():
            out[name] = numbers
    return out


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
