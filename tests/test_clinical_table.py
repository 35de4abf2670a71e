"""A realistic clinical export (tests/clinical_export.py: an id, a date, F/M, an ordinal smoker column, "101 mmHg",
missing cells as NA / "" / ".", a byte-order mark, CRLF; or semicolons and decimal commas) imputed end to end with
declared column types: the likelihoods of the column types against hand formulas and torch's own, valid imputed
values of each type, the input's dialect and labels in the outputs, typed files (Parquet, Stata), and the refusals,
each one message naming every problem with its fix."""

import csv
import io
import json
import math

import pandas as pd
import pytest
import torch
import torch.distributions as td

from tests.clinical_export import DECLARED, HEADER, LEVELS, clinical_rows, write_export
from tests.conftest import make_cfg
from vae_runner.data.column_codes import decode, encode
from vae_runner.data.column_types import schema_of
from vae_runner.data.table_file import read_text_table
from vae_runner.errors import UserError
from vae_runner.model.likelihoods import WithBinaryColumns

FAST = [
    "trainer.epochs=4",
    "trainer.num_threads=1",
    "evaluation.imputation.samples=32",
    "evaluation.imputation.draws=4",
    "logger.progress_bar=false",
]


def declared() -> dict:
    """DECLARED as the mapping dataset.columns becomes."""
    cfg = make_cfg("dataset=tabular", "dataset.table=x.csv", *DECLARED)
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg.dataset.columns)


def read_rows(path) -> tuple[list[str], list[list[str]], bytes]:
    raw = path.read_bytes()
    text = raw.decode("utf-8")
    delimiter = ";" if text.splitlines()[0].count(";") else ","
    header, *rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    return header, rows, raw


# --- the column types' likelihoods, against exact answers ------------------------------------------------------------


def test_an_ordinal_group_is_the_cumulative_logit_of_its_cutpoints():
    loc = torch.tensor([[0.3, 9.0, -9.0], [-1.2, 0.0, 0.0]])  # only a group's first loc (eta) matters
    cut = torch.tensor([-0.5, 1.0])
    table = WithBinaryColumns(
        td.Normal(loc, torch.ones_like(loc)), torch.ones(3, dtype=torch.bool), [(0, 3)], ordinal={(0, 3): cut}
    )
    p = table.group_log_probs(0, 3).exp()
    sig = torch.sigmoid
    for row, eta in zip(p, loc[:, 0]):
        want = [sig(cut[0] - eta), sig(cut[1] - eta) - sig(cut[0] - eta), 1 - sig(cut[1] - eta)]
        assert torch.allclose(row, torch.stack(want), atol=1e-6)
    assert torch.allclose(p.sum(1), torch.ones(2))
    level = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # former, current
    assert torch.allclose(table.log_prob(level).sum(1), torch.log(torch.stack([p[0, 1], p[1, 2]])), atol=1e-6)


def test_a_categorical_group_is_a_softmax_and_a_count_a_poisson():
    loc = torch.tensor([[0.2, -1.0, 0.5, 0.7], [1.5, 0.3, -0.4, -2.0]])
    counts = torch.tensor([False, False, False, True])
    base = torch.tensor([0.0, 0.0, 0.0, 0.4])
    table = WithBinaryColumns(
        td.Normal(loc, torch.ones_like(loc)), torch.tensor([True, True, True, False]), [(0, 3)], counts, base
    )
    x = torch.tensor([[0.0, 0.0, 1.0, 3.0], [1.0, 0.0, 0.0, 0.0]])
    log_p = table.log_prob(x)
    softmax = torch.log_softmax(loc[:, :3], 1)
    assert torch.allclose(log_p[:, :3].sum(1), softmax[[0, 1], [2, 0]], atol=1e-6)
    poisson = td.Poisson(torch.exp(loc[:, 3] + 0.4)).log_prob(x[:, 3])
    assert torch.allclose(log_p[:, 3], poisson, atol=1e-6)
    assert torch.allclose(table.mean[:, 3], torch.exp(loc[:, 3] + 0.4)) and torch.allclose(
        table.mean[:, :3].sum(1), torch.ones(2)
    )
    drawn = table.sample((500,))
    assert torch.all(drawn[..., :3].sum(-1) == 1) and torch.all(drawn[..., 3] == drawn[..., 3].round())


# --- reading, coding and writing back ------------------------------------------------------------------------------


def test_the_export_is_read_with_declared_types_and_decoded_to_valid_values(tmp_path):
    file = write_export(tmp_path / "export.csv", clinical_rows(60))
    text = read_text_table(str(file))
    assert text.columns == list(HEADER) and text.dialect.newline == "\r\n"  # no byte-order mark in the names
    schema = schema_of(text, declared())
    kinds = {c.name: c.kind for c in schema.columns}
    assert kinds == {
        "patient_id": "id",
        "visit_date": "date",
        "sex": "binary",
        "smoker": "ordinal",
        "age": "continuous",
        "bp": "continuous",
        "glu": "continuous",
        "admissions": "count",
        "notes": "drop",
    }
    assert schema.model_columns() == ["sex", *(f"smoker={v}" for v in LEVELS), "age", "bp", "glu", "admissions"]
    x = encode(schema, text)
    assert x.shape == (60, 8)
    groups = x[:, 1:4]
    seen = ~torch.isnan(groups).any(1)
    assert torch.all(groups[seen].sum(1) == 1) and torch.all(torch.isnan(groups[~seen]))  # a whole group missing
    assert torch.all(x[:, 0][~torch.isnan(x[:, 0])] == x[:, 0][~torch.isnan(x[:, 0])].round())  # F/M as 0/1
    # values a model could give: probabilities, a level's scores, numbers out of bounds, a fractional count
    wild = torch.tensor(
        [[0.7, 0.1, 0.5, 0.2, 41.26, -12.0, 5.5, 2.6], [0.2, 0.0, 0.1, 0.9, 70.0, 130.4, 6.0, 77.0]],
        dtype=torch.float64,
    )
    assert decode(schema, wild) == [
        ["M", "former", "41.26", "0 mmHg", "5.5", "3"],
        ["F", "current", "70", "130.4 mmHg", "6", "30"],
    ]
    assert decode(schema, wild, probabilities=True)[0][0] == "0.7"


# --- end to end ----------------------------------------------------------------------------------------------------


def same(cell: str, was: str, exact: bool) -> bool:
    if exact or cell == was:
        return cell == was
    try:
        return float(cell) == float(was)
    except ValueError:
        return False


def assert_valid(header: list[str], rows: list[list[str]], given: list[list[str]], exact: bool = True) -> None:
    """Every cell a valid value of its column's type; observed cells, ids and dates as given (exactly: as text; else
    as numbers, for a DataFrame's numeric columns)."""
    col = {name: j for j, name in enumerate(header)}
    source = {name: j for j, name in enumerate(HEADER)}
    for row, want in zip(rows, given):
        for name, j in col.items():
            cell, was = row[j], want[source[name]]
            if was not in ("", "NA", "."):
                assert same(cell, was, exact), (name, cell, was)
        assert row[col["sex"]] in ("F", "M") and row[col["smoker"]] in LEVELS
        count = int(row[col["admissions"]])
        assert 0 <= count <= 30 and row[col["admissions"]] == str(count)
        number, unit = row[col["bp"]].split(" ")
        assert unit == "mmHg" and float(number.replace(",", ".")) >= 0
        assert math.isfinite(float(row[col["age"]].replace(",", "."))) and row[col["glu"]] not in ("", "NA", ".")


def test_the_export_is_filled_in_one_command_with_valid_values_of_each_type(tmp_path):
    from vae_runner.api import train

    given = clinical_rows(120, rate=0.2)
    file = write_export(tmp_path / "export.csv", given)
    train(["experiment=impute_file", f"dataset.table={file}", *DECLARED, *FAST], run_dir=tmp_path / "run")
    header, rows, raw = read_rows(tmp_path / "run" / "imputed.csv")
    assert not raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw  # no byte-order mark; the export's line ends
    assert header == [h for h in HEADER if h != "notes"] and len(rows) == 120  # its order; the dropped column gone
    assert_valid(header, rows, given)
    long_header, long_rows, _ = read_rows(tmp_path / "run" / "imputations.csv")
    assert long_header == ["imputation", *header] and len(long_rows) == 4 * 120
    assert [r[0] for r in long_rows[::120]] == ["1", "2", "3", "4"]
    assert_valid(header, [r[1:] for r in long_rows[:120]], given)
    j = header.index("bp")
    holes = [i for i, row in enumerate(given) if row[HEADER.index("bp")] in ("", "NA", ".")]
    assert len({long_rows[m * 120 + i][1 + j] for m in range(4) for i in holes}) > len(holes)  # the draws differ
    assert (tmp_path / "run" / "missing_patterns.csv").is_file()
    assert not (tmp_path / "run" / "imputed_densities.png").exists()  # lean: no pictures (evaluation.lean=false)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "test/elbo" in metrics and "test/log_likelihood" not in metrics  # lean: no K = 1000 log-likelihood
    assert not (tmp_path / "run" / "samples.png").exists() and not list((tmp_path / "run").glob("events.*"))


def test_a_semicolon_export_trains_and_another_cohorts_parquet_and_stata_files_are_filled(tmp_path):
    from vae_runner import run
    from vae_runner.api import train

    given = clinical_rows(100, seed=1, rate=0.2)
    file = write_export(tmp_path / "export.csv", given, semicolon=True)
    train(["experiment=impute_file", f"dataset.table={file}", *DECLARED, *FAST], run_dir=tmp_path / "run")
    header, rows, raw = read_rows(tmp_path / "run" / "imputed.csv")
    assert raw.splitlines()[0].decode().count(";") == len(header) - 1  # the export's dialect
    semicolon_given = [[c.replace(".", ",") if c != "." else c for c in r] for r in given]
    assert_valid(header, rows, semicolon_given)
    assert any("," in row[header.index("glu")] for row in rows)  # decimal commas written back
    cohort = pd.DataFrame(clinical_rows(30, seed=2, rate=0.2), columns=list(HEADER)).replace(
        {"NA": None, ".": None, "": None}
    )
    cohort["age"] = pd.to_numeric(cohort["age"])
    cohort["glu"] = pd.to_numeric(cohort["glu"])
    cohort["admissions"] = pd.to_numeric(cohort["admissions"])
    for suffix, write in [("parquet", cohort.to_parquet), ("dta", lambda p: cohort.to_stata(p, write_index=False))]:
        path = tmp_path / f"cohort.{suffix}"
        write(path)
        text = read_text_table(str(path))
        assert text.columns == list(HEADER) and len(text.cells) == 30
        other = [
            "mode=impute",
            f"ckpt={tmp_path / 'run'}",
            f"evaluation.imputation.table={path}",
            "evaluation.imputation.draws=2",
        ]
        run.run(make_cfg(*other), tmp_path / suffix, other)
        out = pd.read_csv(tmp_path / suffix / "imputed.csv", sep=None, engine="python", dtype=str)
        assert len(out) == 30 and set(out["sex"]) <= {"F", "M"} and set(out["smoker"]) <= set(LEVELS)
        assert out["patient_id"].tolist() == cohort["patient_id"].tolist()
    back = pd.read_parquet(tmp_path / "parquet" / "imputed.parquet")
    assert back["admissions"].notna().all() and back["age"].dtype.kind == "f" and set(back["sex"]) <= {"F", "M"}


REFUSED = [
    (
        [],
        "1 problem to fix.*bp: 100 number\\(s\\) with the unit 'mmHg', '128 mmHg' \\(line 2\\).*"
        "declare \\+dataset.columns.bp.unit='mmHg' to strip it",
    ),
    (
        ["+dataset.columns.smoker=ordinal", "+dataset.columns.bp.unit=mmHg"],
        "column smoker is ordinal: give its levels in order, e.g. '\\+dataset.columns.smoker=\\{type: ordinal, levels:",
    ),
    (
        ["+dataset.columns.weight=count", "+dataset.columns.sex=nominal", "+dataset.columns.bp.unit=mmHg"],
        "2 problems.*dataset.columns.weight: no such column.*dataset.columns.sex: type 'nominal'; choose one of",
    ),
    (
        ["+dataset.columns.smoker={type: ordinal, levels: [never, current]}", "+dataset.columns.bp.unit=mmHg"],
        "column smoker: \\d+ cell\\(s\\) not among its declared levels \\(never, current\\), 'former'",
    ),
    (
        ["+dataset.columns.bp={unit: mmHg, max: 100}"],
        "column bp \\(continuous\\): \\d+ cell\\(s\\) outside its declared",
    ),
    (
        ["+dataset.columns.age=count", "+dataset.columns.bp.unit=mmHg"],
        "column age \\(count\\): \\d+ cell\\(s\\) not a non-negative",
    ),
]


@pytest.mark.parametrize("declarations, message", REFUSED)
def test_each_refusal_of_the_export_is_one_message_naming_its_fix(tmp_path, declarations, message):
    from vae_runner.data.tabular import own_table

    file = write_export(tmp_path / "export.csv", clinical_rows(100, rate=0.0))
    cfg = make_cfg("dataset=tabular", f"dataset.table={file}", *declarations)
    with pytest.raises(UserError, match=message) as refused:
        own_table(str(file), cfg.dataset.columns, None, None, None, [])
    assert "\n" not in str(refused.value) and "Traceback" not in str(refused.value)


def test_another_cohort_with_a_label_the_run_never_saw_is_refused_naming_it(tmp_path):
    from vae_runner import run
    from vae_runner.api import train

    file = write_export(tmp_path / "export.csv", clinical_rows(60))
    train(["experiment=impute_file", f"dataset.table={file}", *DECLARED, *FAST], run_dir=tmp_path / "run")
    rows = clinical_rows(20, seed=3)
    rows[4][HEADER.index("sex")] = "X"
    rows[5][HEADER.index("smoker")] = "heavy"
    cohort = write_export(tmp_path / "cohort.csv", rows)
    other = ["mode=impute", f"ckpt={tmp_path / 'run'}", f"evaluation.imputation.table={cohort}"]
    with pytest.raises(UserError, match="2 problems.*sex.*'X'.*smoker.*'heavy'"):
        run.run(make_cfg(*other), tmp_path / "other", other)


def test_the_python_api_fills_a_dataframe_of_another_cohort(tmp_path, monkeypatch):
    from vae_runner.api import load, train

    file = write_export(tmp_path / "export.csv", clinical_rows(80))
    train(["experiment=impute_file", f"dataset.table={file}", *DECLARED, *FAST], run_dir=tmp_path / "run")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    given = clinical_rows(25, seed=4, rate=0.25)
    cohort = pd.DataFrame(given, columns=list(HEADER))[list(reversed(HEADER))]  # another column order
    cohort = cohort.replace({"NA": None, "": None})
    run = load(tmp_path / "run")
    single, long = run.impute_frame(cohort, draws=3, seed=1)
    assert list(single.columns) == [h for h in reversed(HEADER) if h != "notes"] and len(single) == 25
    assert list(long.columns) == ["imputation", *single.columns] and len(long) == 75
    text = single.astype(str).to_numpy().tolist()
    assert_valid(list(single.columns), [[str(c) for c in row] for row in text], given, exact=False)
    again, _ = run.impute_frame(cohort, draws=3, seed=1)
    assert again.equals(single)  # seeded
    with pytest.raises(UserError, match="the DataFrame cannot be filled by this run.*it lacks glu"):
        run.impute_frame(cohort.drop(columns=["glu"]))
    with pytest.raises(UserError, match="opened with the table it was trained on.*run.impute_frame"):
        load(tmp_path / "run", overrides=[f"dataset.table={file}"])
