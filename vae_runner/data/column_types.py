"""What each column of a researcher's table is, and how it becomes the model's columns and comes back as text.

`dataset.columns.<name>` declares a column's type, as a word or a mapping
(`'+dataset.columns.smoker={type: ordinal, levels: [never, former, current]}'`, `+dataset.columns.bp.unit=mmHg`):
- continuous: a real number (one model column, Gaussian); `unit`: a suffix stripped from every cell ("101 mmHg");
  `min` / `max`: bounds the imputations are squeezed into (as R mice's `squeeze`);
- binary: two values (0/1, or two labels such as F/M: the first in sorted order is 0; `levels` to choose);
- categorical: one of its levels (a one-hot group of model columns, one categorical likelihood: softmax);
- ordinal: one of its ordered `levels` (a one-hot group; a cumulative-logit likelihood);
- count: a non-negative integer (one model column, Poisson); `min` / `max` as for continuous;
- id, date: passed through untouched into the outputs, not modelled; drop: left out of the model and the outputs.
Undeclared columns are inferred and the inference is logged: numbers are continuous (0/1 only: binary; integers
named like an id and all distinct: id); text is a date where every cell reads as one, an id where no two cells are
alike, dropped where all are alike, binary with two labels, categorical with at most MAX_LEVELS labels that repeat,
and anything else is refused with the declaration that fixes it. Every problem of the file comes back in one
message (`refuse_if`). The imputations are valid values of each type: a level, an integer count, within the
declared bounds (data/column_codes.py `decode`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, replace

from vae_runner.data.table_file import MISSING_TOKENS, TextTable, is_missing
from vae_runner.errors import UserError

log = logging.getLogger(__name__)
KINDS = ("continuous", "binary", "categorical", "ordinal", "count", "id", "date", "drop")
MODELLED = ("continuous", "binary", "categorical", "ordinal", "count")
MAX_LEVELS = 20
KEYS = {"type", "levels", "unit", "min", "max"}
DATE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}([ T]\d{1,2}:\d{2}(:\d{2})?)?|\d{1,2}[./-]\d{1,2}[./-]\d{2,4}")


@dataclass(frozen=True)
class Column:
    """One column of the file: its name, type, labels in code order (binary, categorical, ordinal), unit and bounds."""

    name: str
    kind: str
    levels: tuple[str, ...] = ()
    unit: str | None = None
    low: float | None = None
    high: float | None = None
    declared: bool = False

    @property
    def width(self) -> int:
        """How many model columns it takes: a level each for a categorical or ordinal, none when not modelled."""
        return len(self.levels) if self.kind in ("categorical", "ordinal") else int(self.kind in MODELLED)

    def model_names(self) -> list[str]:
        return [f"{self.name}={level}" for level in self.levels] if self.width > 1 else [self.name] * self.width


@dataclass(frozen=True)
class Schema:
    """The file's columns in order, the decimal mark, and the extra missing-cell spellings; the model's columns
    are the modelled ones' model columns, in the file's order."""

    columns: tuple[Column, ...]
    decimal: str = "."
    missing_values: frozenset = field(default_factory=frozenset)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def model_columns(self) -> list[str]:
        return [name for c in self.columns for name in c.model_names()]

    def spans(self) -> list[tuple[Column, int, int]]:
        """(column, start, stop) of each modelled column's model columns."""
        out, start = [], 0
        for c in self.columns:
            if c.width:
                out.append((c, start, start + c.width))
                start += c.width
        return out

    def masks(self) -> tuple[tuple[bool, ...], tuple[bool, ...], tuple, tuple]:
        """(binary: 0/1 model columns, counts, one-hot groups (start, stop), the ordinal ones among them)."""
        width = sum(c.width for c in self.columns)
        binary, counts, groups, ordinal = [False] * width, [False] * width, [], []
        for c, start, stop in self.spans():
            if c.kind in ("binary", "categorical", "ordinal"):
                binary[start:stop] = [True] * (stop - start)
            if c.kind in ("categorical", "ordinal"):
                groups.append((start, stop))
                ordinal += [(start, stop)] if c.kind == "ordinal" else []
            counts[start] = c.kind == "count"
        return tuple(binary), tuple(counts), tuple(groups), tuple(ordinal)


def schema_of(table: TextTable, declared: dict, missing_values=(), decimal: str | None = None, where="") -> Schema:
    """The table's Schema from `declared` (dataset.columns) and inference; every problem refused at once, naming
    the file `where`."""
    extra = frozenset(str(v) for v in missing_values)
    problems = list(table.problems) + _declaration_problems(declared, table.columns)
    problems += [
        f"column {j + 1} has no name: give every column a name in the header row"
        for j, name in enumerate(table.columns)
        if not name
    ]
    problems += [f"column name {n} appears twice: names must differ" for n in sorted(_twice(table.columns))]
    mark = decimal or table.dialect.decimal
    columns = []
    for j, name in enumerate(table.columns):
        observed = [(line, row[j].strip()) for line, row in enumerate(table.cells, 2) if not is_missing(row[j], extra)]
        column, problem = _column(name, observed, declared.get(name), mark)
        columns.append(column)
        problems += [problem] if problem else []
    refuse_if(problems, table, where)
    schema = Schema(tuple(columns), mark, extra)
    _log_inference(schema)
    return schema


def refuse_if(problems: list[str], table: TextTable, where: str = "") -> None:
    if problems:
        listed = "; ".join(f"({i}) {p}" for i, p in enumerate(problems, start=1))
        raise UserError(
            f"{where or 'the table'}: {len(problems)} problem{'s' * (len(problems) > 1)} to fix before it can be "
            f"read: {listed}. Missing cells: empty or one of {', '.join(repr(c) for c in MISSING_TOKENS)} "
            f"(more with dataset.missing_values=[...])."
        )


def _twice(names: list[str]) -> set[str]:
    return {n for n in names if n and names.count(n) > 1}


def _declaration_problems(declared: dict, names: list[str]) -> list[str]:
    problems = []
    for name, spec in declared.items():
        if name not in names:
            problems.append(f"dataset.columns.{name}: no such column (the file's: {', '.join(names)})")
            continue
        spec = {"type": spec} if isinstance(spec, str) else dict(spec or {})
        if unknown := set(spec) - KEYS:
            problems.append(f"dataset.columns.{name}: unknown key(s) {', '.join(sorted(unknown))} ({', '.join(KEYS)})")
        if spec.get("type") not in (None, *KINDS):
            problems.append(f"dataset.columns.{name}: type {spec['type']!r}; choose one of {', '.join(KINDS)}")
    return problems


def _column(name: str, observed: list[tuple[int, str]], spec, decimal: str) -> tuple[Column, str | None]:
    """The column `name` from its observed cells ((line, text)) and its declaration (None, a word or a mapping):
    (Column, None) or (a placeholder, the problem with its fix)."""
    spec = {"type": spec} if isinstance(spec, str) else dict(spec or {})
    kind, unit = spec.get("type"), spec.get("unit")
    levels = tuple(str(v) for v in spec.get("levels") or ())
    low, high = spec.get("min"), spec.get("max")
    column = Column(name, kind or "continuous", levels, unit, low, high, declared=bool(spec))
    if kind in ("id", "date", "drop"):
        return column, None
    if not observed:
        return column, f"column {name} has no observed value: declare it +dataset.columns.{name}=drop, or remove it"
    texts = [unitless(t, unit) for _, t in observed]
    numbers = [number_of(t, decimal) for t in texts]
    if kind is None:
        kind = _inferred(name, texts, numbers)
        if kind is None:
            return column, _undeclared_text(name, observed, numbers)
    column = replace(column, kind=kind)
    if kind in ("continuous", "count"):
        return column, _number_problem(column, observed, numbers)
    found = _sorted_levels(texts, decimal)
    if kind == "binary" and not levels:
        levels = ("0", "1") if set(numbers) <= {0.0, 1.0} else found
    if kind == "ordinal" and not levels and any(n is None for n in numbers):
        return column, (
            f"column {name} is ordinal: give its levels in order, e.g. '+dataset.columns.{name}="
            f"{{type: ordinal, levels: [{', '.join(found[:4])}]}}' in the right order"
        )
    column = replace(column, levels=levels or found)
    return column, _level_problem(column, texts, observed, decimal)


def _inferred(name: str, texts: list[str], numbers: list) -> str | None:
    """An undeclared column's type from its observed cells, None where text needs a declaration."""
    if all(n is not None for n in numbers):
        if set(numbers) <= {0.0, 1.0}:
            return "binary"
        named_id = re.search(r"(^|_)id$|^id_", name.lower()) is not None
        if named_id and all(n.is_integer() for n in numbers) and len(set(numbers)) == len(numbers):
            return "id"
        return "continuous"
    if all(DATE.fullmatch(t) for t in texts):
        return "date"
    if _common_unit([t for t, n in zip(texts, numbers) if n is None]):
        return None  # numbers with a unit: the user says whether to strip it (_undeclared_text)
    distinct = len(set(texts))
    if distinct == len(texts) and distinct > 2:
        return "id"
    if distinct == 1:
        return "drop"  # one value: nothing to model (a note written once, say)
    if distinct == 2:
        return "binary"
    if distinct <= MAX_LEVELS and distinct <= len(texts) / 2:
        return "categorical"
    return None


def _undeclared_text(name: str, observed, numbers) -> str:
    bad = [(line, t) for (line, t), n in zip(observed, numbers) if n is None]
    examples = ", ".join(f"{t!r} (line {line})" for line, t in bad[:3])
    if unit := _common_unit([t for _, t in bad]):
        return (
            f"column {name}: {len(bad)} number(s) with the unit {unit!r}, {examples}; declare "
            f"+dataset.columns.{name}.unit='{unit}' to strip it"
        )
    distinct = len({t for _, t in observed})
    return (
        f"column {name}: text with {distinct} different values, {examples}; declare it "
        f"+dataset.columns.{name}=categorical (or ordinal with its levels), id (passed through) or drop"
    )


def _common_unit(texts: list[str]) -> str | None:
    """The unit every text writes after its number ("101 mmHg" -> "mmHg"), or None."""
    first = re.fullmatch(r"[-+]?[\d.,]+(e[-+]?\d+)?\s*([^\d\s].*)", texts[0], re.IGNORECASE) if texts else None
    if first and all(re.fullmatch(rf"[-+]?[\d.,]+(e[-+]?\d+)?\s*{re.escape(first[2])}", t) for t in texts):
        return first[2]
    return None


def _number_problem(column: Column, observed, numbers) -> str | None:
    bad = [(line, t) for (line, t), n in zip(observed, numbers) if n is None]
    if column.kind == "count":
        bad += [(line, t) for (line, t), n in zip(observed, numbers) if n is not None and (n < 0 or not n.is_integer())]
    outside = [(line, t) for (line, t), n in zip(observed, numbers) if n is not None and not _within(column, n)]
    what = "a non-negative integer" if column.kind == "count" else "a number"
    parts = []
    if bad:
        examples = ", ".join(f"{t!r} (line {line})" for line, t in bad[:3])
        unit = f" after the unit {column.unit!r} is stripped" if column.unit else ""
        parts.append(f"{len(bad)} cell(s) not {what}{unit}, {examples}")
    if outside:
        examples = ", ".join(f"{t!r} (line {line})" for line, t in outside[:3])
        parts.append(f"{len(outside)} cell(s) outside its declared bounds [{column.low}, {column.high}], {examples}")
    if not parts:
        return None
    return f"column {column.name} ({column.kind}): {'; '.join(parts)}; fix the cells or declare another type"


def level_key(text: str, decimal: str):
    """How a cell is matched to a level: by its number where it is one (1, 1.0 and 1,0 alike), else by its text."""
    number = number_of(text, decimal)
    return text if number is None else number


def _level_problem(column: Column, texts: list[str], observed, decimal: str) -> str | None:
    known = {level_key(level, decimal) for level in column.levels}
    unknown = [(line, t) for (line, _), t in zip(observed, texts) if level_key(t, decimal) not in known]
    if column.kind == "binary" and len(column.levels) != 2:
        return (
            f"column {column.name} is binary but has {len(column.levels)} value(s) ({', '.join(column.levels)}); "
            f"declare it +dataset.columns.{column.name}=categorical"
        )
    if len(column.levels) > 1000:
        return f"column {column.name}: {len(column.levels)} levels; declare it id or drop"
    if unknown:
        examples = ", ".join(f"{t!r} (line {line})" for line, t in unknown[:3])
        return (
            f"column {column.name}: {len(unknown)} cell(s) not among its declared levels "
            f"({', '.join(column.levels)}), {examples}"
        )
    return None


def _log_inference(schema: Schema) -> None:
    """One line naming each column's type (its levels in code order), inferred ones marked."""

    def described(c: Column) -> str:
        shown = c.levels if c.width > 1 or c.kind == "binary" else ()  # not an id's or a date's cells
        levels = f" ({', '.join(shown[:6])}{', ...' if len(shown) > 6 else ''})" if shown else ""
        return f"{c.name}: {c.kind}{levels}{'' if c.declared else '*'}"

    log.info(
        "columns: %s (* inferred; declare +dataset.columns.<name>=<type> to change one)",
        "; ".join(described(c) for c in schema.columns),
    )


def unitless(text: str, unit: str | None) -> str:
    return text.removesuffix(unit).strip() if unit and text.endswith(unit) else text


def number_of(text: str, decimal: str) -> float | None:
    if decimal != ".":
        text = text.replace(decimal, ".")
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value and abs(value) != float("inf") else None


def _sorted_levels(texts: list[str], decimal: str) -> tuple[str, ...]:
    """The distinct values (one spelling per number), in numeric order where all are numbers, else in text order."""
    first = {}
    for t in texts:
        first.setdefault(level_key(t, decimal), t)
    if all(not isinstance(key, str) for key in first):
        return tuple(first[key] for key in sorted(first))
    return tuple(sorted(first.values()))


def _within(column: Column, n: float) -> bool:
    return (column.low is None or n >= column.low) and (column.high is None or n <= column.high)
