"""dataset=tabular: scikit-learn's bundled tables (breast_cancer, wine, diabetes) or a table file of one's own
(data/table_file.py read it, data/column_types.py its columns' types) as (N, F) float rows, and their standardisation.

Columns are real-valued, counts (`DataSplits.count_columns`, Poisson), or binary (0/1; `DataSplits.binary_columns`):
diabetes' `sex` (1/2 in the file) is binary, a file's categorical and ordinal columns one-hot groups,
and `label_column=true` appends the class of a labelled table as columns to impute like any other (one binary column
for two classes; beyond, a one-hot group of 0/1 columns, `DataSplits.categorical_columns`: one categorical variable,
hidden and imputed as a whole), e.g. a diagnosis from lab values. The real-valued likelihoods model binary columns
as Bernoulli and one-hot groups as categorical (model/likelihoods.py); standardisation leaves them 0/1.

The loader returns the original values; the run hides entries (data/missingness.py, `missing.*`) and then
standardises every column with the mean and standard deviation of the training split's *observed* entries only, so
no hidden value shapes the model's inputs, not even through a column's scale. Imputations are scored in these
standardised units (RMSEs of different columns comparable; the MICE/kNN literature's convention); `offset` and
`scale` on the DataSplits map them back. Counts, like binary columns, are left in their own units.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import torch

from vae_runner.data import DataSplits, Split, carve
from vae_runner.data.column_codes import encode
from vae_runner.data.column_types import schema_of
from vae_runner.data.table_file import is_table_file, read_text_table
from vae_runner.errors import UserError

log = logging.getLogger(__name__)

# table -> (scikit-learn's loader and its arguments, whether its target is a class label); diabetes' target is a
# disease-progression score. scikit-learn is imported when a bundled table is loaded (start-up: tests/test_startup.py).
TABLES = {
    "breast_cancer": (("load_breast_cancer", {}), True),
    "wine": (("load_wine", {}), True),
    "diabetes": (("load_diabetes", {"scaled": False}), False),
}


def load_tabular(
    table: str,
    val_fraction: float,
    test_fraction: float,
    split_seed: int,
    label_column: bool,
    *,
    columns: dict,
    delimiter: str | None,
    decimal: str | None,
    encoding: str | None,
    missing_values: list,
) -> DataSplits:
    """Rows of `table` (a bundled table, or a file: `own_table`) in float32 with their class labels (where the
    target is one), cut by a seeded split; `columns` ... `missing_values`: how to read a file (data/table_file.py,
    data/column_types.py)."""
    schema, counts, ordinal = None, (), ()
    if is_table_file(table):
        if label_column:
            raise UserError(f"dataset.label_column=true appends a bundled table's class; {table} has its columns.")
        x, schema = own_table(table, columns, delimiter, decimal, encoding, missing_values)
        x, y, classes, columns = x[observed_rows(x, table)].float(), None, None, schema.model_columns()
        binary, counts, groups, ordinal = schema.masks()
    else:
        x, y, columns, binary, classes, groups = bundled(table, label_column)
    n = len(x)
    # at least one validation and one test row: a small table with a small fraction would get an empty split
    tr, va, te = carve(n, max(1, round(n * val_fraction)), max(1, round(n * test_fraction)), split_seed)
    whole = Split(x, y)
    return DataSplits(
        whole.take(tr),
        whole.take(va),
        whole.take(te),
        in_unit_range=False,
        classes=classes,
        columns=tuple(columns),
        binary_columns=tuple(binary),
        categorical_columns=groups,
        count_columns=counts,
        ordinal_columns=ordinal,
        schema=schema,
        native_missing=bool(torch.isnan(x).any()),
    )


def own_table(path: str, declared=None, delimiter=None, decimal=None, encoding=None, missing_values=None):
    """A file's model columns (N, F) float64 (NaN missing) and its Schema; every problem refused at once."""
    text = read_text_table(path, delimiter, decimal, encoding)
    schema = schema_of(text, dict(declared or {}), missing_values or (), decimal, str(path))
    return encode(schema, text, str(path)), schema


def observed_rows(x: torch.Tensor, table: str) -> torch.Tensor:
    """Which rows have an observed value (the others carry nothing to learn from: dropped, with a log line)."""
    keep = (~torch.isnan(x)).any(1)
    if not keep.all():
        log.info("%s: %d row(s) without any observed value dropped", table, int((~keep).sum()))
    return keep


def zero_one_columns(x: torch.Tensor) -> list[bool]:
    """Which columns of (N, F) hold only 0 and 1 among their observed (non-NaN) entries: binary, Bernoulli."""
    seen = ~torch.isnan(x)
    return [bool(torch.isin(x[seen[:, j], j], torch.tensor([0.0, 1.0])).all()) for j in range(x.shape[1])]


def bundled(table: str, label_column: bool):
    """A bundled table: (rows (N, F), class labels or None, column names, which columns are binary, class names or
    None, one-hot groups)."""
    if table not in TABLES:
        raise UserError(
            f"dataset.table={table} is not a bundled table; choose one of {', '.join(sorted(TABLES))}, or give the "
            f"path of a .csv file."
        )
    loader, labelled = TABLES[table]
    if label_column and not labelled:
        raise UserError(f"dataset.label_column=true needs a labelled table (breast_cancer, wine); {table} has none.")
    from sklearn import datasets

    name, arguments = loader
    bunch = getattr(datasets, name)(**arguments)
    x = torch.as_tensor(bunch.data, dtype=torch.float32)  # (N, F)
    columns = list(map(str, bunch.feature_names))
    binary = zero_one_columns(x)
    if table == "diabetes":  # sex is 1 / 2 in the file
        x[:, 1] -= 1
        binary[1] = True
    y = torch.as_tensor(bunch.target, dtype=torch.long) if labelled else None
    groups = ()
    if label_column:
        names = list(map(str, bunch.target_names))
        groups = ((x.shape[1], x.shape[1] + len(names)),) if len(names) > 2 else ()
        onehot = torch.nn.functional.one_hot(y).float()
        onehot, names = (
            (onehot[:, 1:], [f"class={names[1]}"]) if len(names) == 2 else (onehot, [f"class={n}" for n in names])
        )
        x, columns, binary = torch.cat([x, onehot], 1), columns + names, binary + [True] * len(names)
    classes = tuple(map(str, bunch.target_names)) if labelled else None
    return x, y, columns, binary, classes, groups


def standardized(data: DataSplits) -> DataSplits:
    """Every split (and its hidden truth) as (x - offset) / scale, offset and scale the mean and standard deviation
    of each column's observed training entries (a constant column keeps scale 1; binary columns stay 0/1)."""
    x = data.train.x.double()
    seen = ~torch.isnan(x)
    count = seen.sum(0).clamp(min=1)
    offset = torch.where(seen, x, 0.0).sum(0) / count
    var = torch.where(seen, (x - offset) ** 2, 0.0).sum(0) / count
    scale = torch.where(var > 0, var.sqrt(), torch.ones_like(var))
    if data.binary_columns is not None:
        own = torch.tensor(data.binary_columns)  # 0/1 columns and counts keep their own units
        own |= torch.tensor(data.count_columns) if data.count_columns else False
        offset, scale = torch.where(own, 0.0, offset), torch.where(own, 1.0, scale)

    def apply(split: Split) -> Split:
        move = lambda t: None if t is None else ((t.double() - offset) / scale).float()  # noqa: E731
        return replace(split, x=move(split.x), truth=move(split.truth))

    return replace(
        data,
        train=apply(data.train),
        val=apply(data.val),
        test=apply(data.test),
        offset=offset.float(),
        scale=scale.float(),
    )
