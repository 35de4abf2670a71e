"""A table's cells as the model's columns and back: `encode` reads text by a Schema (data/column_types.py) into
(N, width) numbers, NaN where missing; `decode` writes model columns back as valid values of each type (a level, an
integer count, a number within its bounds with its unit); `check_columns` refuses another file whose columns
differ."""

from __future__ import annotations

import torch

from vae_runner.data.column_types import Column, Schema, level_key, number_of, refuse_if, unitless
from vae_runner.data.table_file import TextTable, is_missing
from vae_runner.errors import UserError


def encode(schema: Schema, table: TextTable, where: str = "") -> torch.Tensor:
    """The table's cells as the model's columns (N, width), float64, NaN where missing (a categorical's whole
    group); a file other than the schema's own (another cohort) is read by the same levels and refused where it
    has others."""
    index = {name: j for j, name in enumerate(table.columns)}
    rows, problems = [], []
    for c, _, _ in schema.spans():
        cells = [row[index[c.name]] for row in table.cells]
        values, problem = _encoded(c, cells, schema)
        rows.append(values)
        problems += [problem] if problem else []
    refuse_if(problems, table, where)
    return torch.cat(rows, 1) if rows else torch.empty(len(table.cells), 0, dtype=torch.float64)


def _encoded(c: Column, cells: list[str], schema: Schema) -> tuple[torch.Tensor, str | None]:
    """One column's cells as its model columns (N, width)."""
    missing = [is_missing(t, schema.missing_values) for t in cells]
    texts = [unitless(t.strip(), c.unit) for t in cells]
    if c.kind in ("continuous", "count"):
        numbers = [float("nan") if m else number_of(t, schema.decimal) for t, m in zip(texts, missing)]
        bad = [t for t, n in zip(texts, numbers) if n is None]
        values = torch.tensor([[float("nan") if n is None else n] for n in numbers], dtype=torch.float64)
        return values, (f"column {c.name}: {len(bad)} cell(s) not a number, e.g. {bad[0]!r}" if bad else None)
    codes = {level_key(level, schema.decimal): k for k, level in enumerate(c.levels)}
    keys = [level_key(t, schema.decimal) for t in texts]
    unknown = sorted({t for t, key, m in zip(texts, keys, missing) if not m and key not in codes})
    width = c.width
    values = torch.full((len(cells), width), float("nan"), dtype=torch.float64)
    for i, (key, m) in enumerate(zip(keys, missing)):
        if not m and key in codes:
            if width == 1:
                values[i, 0] = codes[key]
            else:
                values[i] = 0.0
                values[i, codes[key]] = 1.0
    problem = (
        (
            f"column {c.name}: level(s) {', '.join(map(repr, unknown[:5]))} that the run's table has not (it has "
            f"{', '.join(c.levels)})"
        )
        if unknown
        else None
    )
    return values, problem


def decode(schema: Schema, values: torch.Tensor, probabilities: bool = False) -> list[list[str]]:
    """Model columns (N, width) in the table's units -> each modelled column's text per row (N lists, in the
    schema's span order): a level (the largest of a group; a binary's side of 1/2, or its probability with
    `probabilities`), a count as an integer, a number at 10 significant digits in the table's decimal mark; counts
    and numbers squeezed into their declared bounds, and written with their unit ("112.5 mmHg") where declared."""
    out = []
    for c, start, stop in schema.spans():
        v = values[:, start:stop]
        if c.kind in ("categorical", "ordinal"):
            out.append([c.levels[k] for k in v.argmax(1).tolist()])
        elif c.kind == "binary" and probabilities:
            out.append([written(p, schema.decimal) for p in v[:, 0].clamp(0, 1).tolist()])
        elif c.kind == "binary":
            out.append([c.levels[int(p > 0.5)] for p in v[:, 0].tolist()])
        else:
            squeezed = v[:, 0] if c.low is None and c.high is None else v[:, 0].clamp(min=c.low, max=c.high)
            if c.kind == "count":
                texts = [str(int(n)) for n in squeezed.round().clamp(min=0).tolist()]
            else:
                texts = [written(n, schema.decimal) for n in squeezed.tolist()]
            out.append([f"{t} {c.unit}" for t in texts] if c.unit else texts)
    return [list(row) for row in zip(*out)] if out else [[] for _ in range(len(values))]


def written(value: float, decimal: str) -> str:
    text = f"{value:.10g}"
    return text.replace(".", decimal) if decimal != "." else text


def check_columns(schema: Schema, table: TextTable, where: str) -> None:
    """A second file (another cohort) must have the schema's columns (any order); the difference named."""
    lacking = [n for n in schema.names if n not in table.columns]
    extra = [n for n in table.columns if n not in schema.names]
    if lacking or extra:
        parts = [
            f"it lacks {', '.join(lacking)}" if lacking else "",
            f"it has {', '.join(extra)}, which the run's table had not" if extra else "",
        ]
        raise UserError(
            f"{where} cannot be filled by this run: its columns must be those of the table the run was trained on "
            f"({', '.join(schema.names)}); {'; '.join(p for p in parts if p)}. Rename, add or remove columns to match."
        )
