"""A table file as its cells of text, whatever it was saved as, and written back in the same dialect.

Read by pandas: delimited text (`.csv`, `.tsv`, `.txt`; the delimiter sniffed among `,` `;` tab `|` unless
`dataset.delimiter` says, the decimal mark `,` recognised where the delimiter is not a comma unless
`dataset.decimal` says, UTF-8 with or without a byte-order mark, else Windows-1252 with a log line, any line
ending), Parquet (`.parquet`, with pyarrow), Stata (`.dta`, value labels as their text), SAS (`.sas7bdat`,
`.xpt`) and Excel (`.xlsx`, with openpyxl). Every cell is kept as its text (a typed file's numbers as Python writes
them, exact), so observed cells go back out exactly as read; column_types.py decides what the text means. A cell is
missing when empty or one of MISSING_TOKENS (any case), or one of `dataset.missing_values` (e.g. -99).
"""

from __future__ import annotations

import csv
import io
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vae_runner.errors import UserError

if TYPE_CHECKING:
    import pandas as pd  # imported where a typed file is read (start-up: tests/test_startup.py)

log = logging.getLogger(__name__)
MISSING_TOKENS = ("NA", "NaN", "N/A", "null", "None", "?", ".")  # any case; "." as SAS and Stata write it
MISSING_CELLS = {"", *(token.lower() for token in MISSING_TOKENS)}
DELIMITED = (".csv", ".tsv", ".txt")
TYPED = {".parquet": "pyarrow", ".dta": None, ".sas7bdat": None, ".xpt": None, ".xlsx": "openpyxl"}
SUFFIXES = DELIMITED + tuple(TYPED)
DELIMITERS = (",", "\t", ";", "|")  # sniffed in this order of preference


@dataclass(frozen=True)
class Dialect:
    """How a file writes its cells: its suffix, delimiter, decimal mark and line ending (outputs follow it)."""

    suffix: str = ".csv"
    delimiter: str = ","
    decimal: str = "."
    newline: str = "\n"


@dataclass
class TextTable:
    """A file's column names and cells (N rows of F texts, as written; blank rows skipped), its dialect, and the
    problems found reading it (rows of the wrong length), which column_types.py reports with its own."""

    columns: list[str]
    cells: list[list[str]]
    dialect: Dialect
    problems: list[str]


def is_table_file(table: str) -> bool:
    return str(table).lower().endswith(SUFFIXES)


def read_text_table(
    path: str, delimiter: str | None = None, decimal: str | None = None, encoding: str | None = None
) -> TextTable:
    """The file at `path` as a TextTable; `None` options are found from the file (module docstring)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(
            f"dataset.table={path}: no such file. Give the path of a table file ({', '.join(SUFFIXES)}: a header "
            f"row of column names, one row per record), or a bundled table: breast_cancer, wine, diabetes."
        )
    suffix = file.suffix.lower()
    table = _typed(file, suffix) if suffix in TYPED else _delimited(file, suffix, delimiter, decimal, encoding)
    if len(table.cells) < 1:
        raise UserError(f"dataset.table={path}: needs a header row of column names and at least one row of values.")
    return table


def _delimited(file: Path, suffix: str, delimiter: str | None, decimal: str | None, encoding: str | None):
    raw = file.read_bytes()
    text = _decoded(raw, encoding, file)
    newline = "\r\n" if "\r\n" in text[:65536] else "\n"
    if delimiter is None:
        delimiter = "\t" if suffix == ".tsv" else sniff_delimiter(text[:65536])
    rows = [r for r in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter) if any(c.strip() for c in r)]
    if not rows:
        raise UserError(f"dataset.table={file}: the file is empty; it needs a header row of column names.")
    columns, cells = [c.strip() for c in rows[0]], rows[1:]
    if not cells:
        raise UserError(f"dataset.table={file}: needs a header row of column names and at least one row of values.")
    if decimal is None:
        decimal = "," if delimiter != "," and _decimal_commas(cells) else "."
    problems = []
    ragged = [(line, len(row)) for line, row in enumerate(cells, start=2) if len(row) != len(columns)]
    if ragged:
        shown = ", ".join(f"line {line}: {n} cells" for line, n in ragged[:3])
        problems.append(
            f"{len(ragged)} row(s) with other than {len(columns)} cells under the column names, {shown} (is the "
            f"delimiter {delimiter!r}? set dataset.delimiter='<the file's>', e.g. ';')"
        )
        cells = [row for row in cells if len(row) == len(columns)]
    return TextTable(columns, cells, Dialect(suffix, delimiter, decimal, newline), problems)


def _decoded(raw: bytes, encoding: str | None, file: Path) -> str:
    """The file's text: `encoding` where given, else UTF-8 (a byte-order mark dropped), else Windows-1252."""
    try:
        return raw.decode(encoding or "utf-8-sig")
    except UnicodeDecodeError as error:
        if encoding:
            raise UserError(
                f"{file}: not readable as {encoding} ({error.reason} at byte {error.start}); set dataset.encoding "
                f"to the file's encoding (e.g. utf-8, cp1252, latin-1)."
            ) from None
    log.warning("%s is not UTF-8: read as Windows-1252 (set dataset.encoding if it is another)", file)
    return raw.decode("cp1252", errors="replace")


def sniff_delimiter(sample: str) -> str:
    """The delimiter under which the sample's lines (the last, perhaps cut, left out) have one number of cells,
    more than one; the most cells wins, ties in DELIMITERS' order; a comma where none fits."""
    lines = [line for line in sample.splitlines()[:50] if line.strip()]
    lines = lines[:-1] if len(lines) > 2 else lines
    best, most = ",", 1
    for delimiter in DELIMITERS:
        counts = {len(row) for row in csv.reader(lines, delimiter=delimiter)}
        if len(counts) == 1 and (n := counts.pop()) > most:
            best, most = delimiter, n
    return best


def _decimal_commas(cells: list[list[str]]) -> bool:
    """Whether numbers in the cells are written with a decimal comma (1,5) and none with a decimal point."""
    comma, point = re.compile(r"\s*[-+]?\d*,\d+\s*"), re.compile(r"\s*[-+]?\d*\.\d+\s*")
    sample = [c for row in cells[:500] for c in row]
    return any(comma.fullmatch(c) for c in sample) and not any(point.fullmatch(c) for c in sample)


def _typed(file: Path, suffix: str) -> TextTable:
    """A Parquet, Stata, SAS or Excel file's cells as text: numbers as Python writes them (exact), missing values
    empty, dates in ISO form, value labels as their text."""
    needs = TYPED[suffix]
    try:
        if needs:
            __import__(needs)
    except ImportError:
        raise UserError(
            f"{file}: reading {suffix} files needs the {needs} package: pip install 'vae-runner[tables]' (or "
            f"pip install {needs}), or save the table as CSV."
        ) from None
    import pandas as pd

    readers = {".parquet": pd.read_parquet, ".dta": pd.read_stata, ".xlsx": pd.read_excel}
    try:
        frame = readers.get(suffix, lambda f: pd.read_sas(f, encoding="utf-8"))(file)
    except Exception as error:  # a damaged or mislabelled file: say which
        raise UserError(f"{file}: could not be read as {suffix} ({type(error).__name__}: {error}).") from None
    return frame_text(frame, Dialect(suffix))


def frame_text(frame: pd.DataFrame, dialect: Dialect = Dialect()) -> TextTable:
    """A pandas DataFrame's cells as text (as a typed file's: missing values empty, floats exact)."""
    columns = [str(c).strip() for c in frame.columns]
    cells = [[_text(v) for v in row] for row in frame.itertuples(index=False, name=None)]
    return TextTable(columns, cells, dialect, [])


def _text(value) -> str:
    """One typed cell as text: '' where missing, a float by repr (read back exactly), a date in ISO form."""
    import pandas as pd  # loaded already: the cell comes from a DataFrame

    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    if isinstance(value, pd.Timestamp):
        return value.isoformat().removesuffix("T00:00:00")
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def is_missing(cell: str, extra: frozenset = frozenset()) -> bool:
    text = cell.strip()
    return text.lower() in MISSING_CELLS or text in extra


def write_text_table(path: Path, columns: list[str], rows, dialect: Dialect) -> None:
    """Rows of texts as a delimited file in `dialect` (a typed input's outputs are comma-separated CSV), without a
    byte-order mark."""
    delimiter = dialect.delimiter if dialect.suffix in DELIMITED else ","
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter=delimiter, lineterminator=dialect.newline)
        writer.writerow(columns)
        writer.writerows(rows)


def write_numbers(path: Path, columns: list[str], x) -> None:
    """(N, F) numbers as a CSV file (10 significant digits, NaN written as NA): the studies' simulated tables with
    holes."""
    rows = [["NA" if v != v else f"{v:.10g}" for v in row] for row in x.tolist()]
    write_text_table(Path(path), columns, rows, Dialect())
