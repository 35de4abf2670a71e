"""dataset=tabular dataset.table=<file.csv>: a researcher's own table, with its own missing values.

The first row names the columns; every other cell is a number or missing. A missing cell (empty, `NA`, `NaN`, `N/A`,
`null`, `None`, `?`, `.`, any case) becomes NaN: the run then treats it like an entry `missing.*` hid (the encoder reads
it as 0, the likelihood scores observed entries only), but there is no truth behind it, so only entries hidden on top
(`missing.kind=mcar`, say) can be scored. Columns whose observed values are all 0 or 1 are binary (Bernoulli). A
text column is refused with the fix (one 0/1 column per category), a number with a unit too (strip it), and so is a
column with no observed value: every problem of the file in one message. Rows with
no observed value carry nothing to learn from and are dropped from training (with a log line). Tab-separated files
(`.tsv`) work the same way. `vae-run mode=impute ckpt=<run>` writes the file back completed (imputation/table.py).
"""

from __future__ import annotations

import csv
import logging
import re
from pathlib import Path

import torch

from vae_runner.errors import UserError

log = logging.getLogger(__name__)
MISSING_TOKENS = ("NA", "NaN", "N/A", "null", "None", "?", ".")  # any case; "." as SAS and Stata write it
MISSING_CELLS = {"", *(token.lower() for token in MISSING_TOKENS)}
SUFFIXES = (".csv", ".tsv")


def is_table_file(table: str) -> bool:
    return str(table).lower().endswith(SUFFIXES)


def read_cells(path: str) -> tuple[list[str], list[list[str]]]:
    """The file's column names and its rows of cells as written (a byte-order mark dropped, blank lines skipped)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(
            f"dataset.table={path}: no such file. Give the path of a CSV file (header row of column names, one row "
            f"per record), or a bundled table: breast_cancer, wine, diabetes."
        )
    with open(file, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f, delimiter="\t" if file.suffix.lower() == ".tsv" else ","))
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if len(rows) < 2:
        raise UserError(f"dataset.table={path}: needs a header row of column names and at least one row of values.")
    return [c.strip() for c in rows[0]], rows[1:]


def read_table(path: str, drop_empty: bool = True, dtype=torch.float32) -> tuple[torch.Tensor, list[str], list[bool]]:
    """(rows (N, F) with NaN for missing cells, column names, which columns are binary); `drop_empty=False` keeps
    rows without an observed value and float64 the file's digits (mode=impute writes every row of the file back)."""
    columns, rows = read_cells(path)
    x = numbers(path, columns, rows, drop_empty, dtype)
    return x, columns, zero_one_columns(x)


def numbers(path: str, columns: list[str], rows: list[list[str]], drop_empty: bool, dtype) -> torch.Tensor:
    """read_cells' rows as numbers (N, F), NaN for missing cells; every problem refused at once (table_problems)."""
    file = Path(path).expanduser()
    x = torch.tensor([[_number(cell) for cell in row] for row in rows if len(row) == len(columns)], dtype=dtype)
    if problems := table_problems(columns, rows, x):
        listed = "; ".join(f"({i}) {p}" for i, p in enumerate(problems, start=1))
        raise UserError(
            f"{file}: {len(problems)} problem{'s' * (len(problems) > 1)} to fix before it can be read: {listed}. "
            f"Every column must be numeric, missing cells empty or one of {', '.join(repr(c) for c in MISSING_TOKENS)}."
        )
    seen = ~torch.isnan(x)
    keep = seen.any(1) if drop_empty else torch.ones(len(x), dtype=torch.bool)
    if not keep.all():
        log.info("%s: %d row(s) without any observed value dropped", file, int((~keep).sum()))
    return x[keep]


def zero_one_columns(x: torch.Tensor) -> list[bool]:
    """Which columns of (N, F) hold only 0 and 1 among their observed (non-NaN) entries: binary, Bernoulli."""
    seen = ~torch.isnan(x)
    return [bool(torch.isin(x[seen[:, j], j], torch.tensor([0.0, 1.0])).all()) for j in range(x.shape[1])]


def _number(cell: str) -> float:
    """A cell's number; NaN where it is missing or not a number (table_problems names the latter)."""
    text = cell.strip()
    try:
        return float("nan") if text.lower() in MISSING_CELLS else float(text)
    except ValueError:
        return float("nan")


def table_problems(columns: list[str], rows: list[list[str]], x: torch.Tensor) -> list[str]:
    """Every problem of the file at once, each with its fix: rows of the wrong length, each column's cells that
    are not numbers (how many, the first few with their lines), and columns with no observed value."""
    if len(columns) == 1 and ";" in columns[0]:
        return [f"the header {columns[0]!r} is one column with ';' in it: save the file comma-separated (or as .tsv)"]
    problems = []
    ragged = [(line, len(row)) for line, row in enumerate(rows, start=2) if len(row) != len(columns)]
    if ragged:
        shown = ", ".join(f"line {line}: {n} cells" for line, n in ragged[:3])
        sniff = " (the header holds ';': save the file comma-separated)" if any(";" in c for c in columns) else ""
        problems.append(
            f"{len(ragged)} row(s) with other than {len(columns)} cells under the column names, {shown}{sniff}"
        )
        return problems  # the columns cannot be told apart further
    textual, seen = set(), ~torch.isnan(x)
    for j, name in enumerate(columns):
        holes = (~seen[:, j]).nonzero().squeeze(1).tolist()  # NaN: a missing cell, or one _number could not read
        bad = [(i + 2, rows[i][j].strip()) for i in holes if rows[i][j].strip().lower() not in MISSING_CELLS]
        if bad:
            examples = ", ".join(f"{text!r} (line {line})" for line, text in bad[:3])
            problems.append(f"column {name}: {len(bad)} cell(s) not a number, {examples}; {_fix(bad)}")
            textual.add(name)
    empty = [name for name, any_seen in zip(columns, seen.any(0).tolist()) if not any_seen and name not in textual]
    if empty:
        problems.append(f"column(s) {', '.join(empty)} have no observed value; drop them from the file")
    return problems


def _fix(bad: list[tuple[int, str]]) -> str:
    """What to do about a column's non-numeric cells: a number with a unit, or a text column."""
    if all(re.fullmatch(r"[-+]?[\d.]+(e[-+]?\d+)?\s*[^\d\s].*", text, re.IGNORECASE) for _, text in bad):
        return "strip the unit, leaving the number"
    return "a text column: encode it as one 0/1 column per category, or drop it"


def write_numbers(path: Path, columns: list[str], x: torch.Tensor) -> None:
    """(N, F) numbers as a table file read_table reads back (10 significant digits, NaN written as NA): the
    studies' simulated tables with holes."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows([["NA" if v != v else f"{v:.10g}" for v in row] for row in x.tolist()])
