"""dataset=tabular dataset.table=<file.csv>: a researcher's own table, with its own missing values.

The first row names the columns; every other cell is a number or missing. A missing cell (empty, `NA`, `NaN`, `N/A`,
`null`, `None`, `?`, any case) becomes NaN: the run then treats it like an entry `missing.*` hid (the encoder reads
it as 0, the likelihood scores observed entries only), but there is no truth behind it, so only entries hidden on top
(`missing.kind=mcar`, say) can be scored. Columns whose observed values are all 0 or 1 are binary (Bernoulli). A
text column is refused with the fix (one 0/1 column per category); so is a column with no observed value. Rows with
no observed value carry nothing to learn from and are dropped from training (with a log line). Tab-separated files
(`.tsv`) work the same way. `vae-run mode=impute ckpt=<run>` writes the file back completed (imputation/table.py).
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import torch

from vae_runner.errors import UserError

log = logging.getLogger(__name__)
MISSING_CELLS = {"", "na", "nan", "n/a", "null", "none", "?"}
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
    file = Path(path).expanduser()
    columns, rows = read_cells(path)
    values = []
    for line, row in enumerate(rows, start=2):
        if len(row) != len(columns):
            raise UserError(f"{file}, line {line}: {len(row)} cells under {len(columns)} column names.")
        values.append([_number(cell, file, line, name) for cell, name in zip(row, columns)])
    x = torch.tensor(values, dtype=dtype)
    seen = ~torch.isnan(x)
    empty = [name for name, any_seen in zip(columns, seen.any(0).tolist()) if not any_seen]
    if empty:
        raise UserError(f"{file}: column(s) {', '.join(empty)} have no observed value; drop them from the file.")
    keep = seen.any(1) if drop_empty else torch.ones(len(x), dtype=torch.bool)
    if not keep.all():
        log.info("%s: %d row(s) without any observed value dropped", file, int((~keep).sum()))
    x = x[keep]
    return x, columns, zero_one_columns(x)


def zero_one_columns(x: torch.Tensor) -> list[bool]:
    """Which columns of (N, F) hold only 0 and 1 among their observed (non-NaN) entries: binary, Bernoulli."""
    seen = ~torch.isnan(x)
    return [bool(torch.isin(x[seen[:, j], j], torch.tensor([0.0, 1.0])).all()) for j in range(x.shape[1])]


def _number(cell: str, file: Path, line: int, column: str) -> float:
    text = cell.strip()
    if text.lower() in MISSING_CELLS:
        return float("nan")
    try:
        return float(text)
    except ValueError:
        raise UserError(
            f"{file}, line {line}, column {column}: {text!r} is not a number. Every column must be numeric (missing "
            f"cells empty or NA); encode a text column as one 0/1 column per category."
        ) from None
