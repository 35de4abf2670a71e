"""A researcher's own table: `dataset=tabular dataset.table=<file>` read with its missing cells, refused with the
fix where a column cannot be read, trained and scored end to end (only entries hidden on top have a truth), and
written back completed by `mode=impute`. The clinical export with every column type: tests/test_clinical_table.py."""

import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from sklearn.datasets import load_wine

from tests.conftest import make_cfg, table_reading
from tests.test_missing_data import train_impute_tabular
from vae_runner.build import load_data
from vae_runner.config.checks import validate
from vae_runner.data.tabular import own_table
from vae_runner.errors import UserError

AS_GIVEN = table_reading()


def read_table(path: str):
    """(model columns (N, F) with NaN, their names, which are binary) of a file, rows without a value dropped."""
    x, schema = own_table(path)
    return x[(~torch.isnan(x)).any(1)].float(), schema.model_columns(), list(schema.masks()[0])


def write_wine_with_holes(path, rate: float = 0.1, seed: int = 0):
    """wine as a CSV whose cells are missing at `rate` (written as empty, NA or ?), with a 0/1 column added."""
    bunch, rng = load_wine(), np.random.default_rng(seed)
    x = np.column_stack([bunch.data, bunch.target == 0]).astype(float)
    x = np.array([[float(f"{v:g}") for v in row] for row in x])  # the values as written
    names = [*bunch.feature_names, "is_class_0"]
    holes = rng.random(x.shape) < rate
    tokens = ["", "NA", "?"]
    lines = [",".join(names)]
    for i, row in enumerate(x):
        lines.append(",".join(tokens[(i + j) % 3] if holes[i, j] else f"{v:g}" for j, v in enumerate(row)))
    path.write_text("\n".join(lines) + "\n")
    return x, holes


def test_a_csv_is_read_with_its_missing_cells_and_binary_columns(tmp_path):
    file = tmp_path / "t.csv"
    file.write_text("a,b,flag\n1.5,,1\nNA,2,0\n?,n/a,\n3,4e-1,NaN\n")
    x, columns, binary = read_table(str(file))
    assert columns == ["a", "b", "flag"] and binary == [False, False, True]
    assert len(x) == 3  # the row with no observed value is dropped
    expected = torch.tensor([[1.5, float("nan"), 1.0], [float("nan"), 2.0, 0.0], [3.0, 0.4, float("nan")]])
    assert torch.equal(torch.isnan(x), torch.isnan(expected))
    assert torch.allclose(x.nan_to_num(-9), expected.nan_to_num(-9))
    tsv = tmp_path / "t.tsv"
    tsv.write_text("a\tb\n1\t\n2\t3\n")
    assert read_table(str(tsv))[0].shape == (2, 2)


@pytest.mark.parametrize(
    "text, message",
    [
        ("a,b\n1,red\n2,blue\n3,green\n4,red\n", "column b: text with 3 different values, 'red' \\(line 2\\)"),
        ("a,b\n1,2,3\n4,5\n", "1 row\\(s\\) with other than 2 cells under the column names, line 2: 3 cells"),
        ("a,b\n1,\n2,NA\n", "column b has no observed value: declare it \\+dataset.columns.b=drop"),
        ("bp,b\n1 mmHg,\n2 mmHg,NA\n", "unit 'mmHg'.*\\+dataset.columns.bp.unit='mmHg'.*column b has no observed"),
        ("a,b\n", "at least one row"),
        ("a,a\n1,2\n", "column name a appears twice"),
    ],
)
def test_a_bad_file_gets_the_fix_not_a_traceback(tmp_path, text, message):
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(UserError, match=message):
        read_table(str(tmp_path / "bad.csv"))
    with pytest.raises(UserError, match="no such file"):
        read_table(str(tmp_path / "absent.csv"))


def test_every_problem_of_a_clinical_export_is_named_at_once_with_its_fix(tmp_path):
    text = "\ufeffpatient_age,sex,bp,glu,notes\r\n61,F,101 mmHg,5.2,\r\n54,M,96 mmHg,.,\r\n70,F,NA,6.1,\r\n"
    (tmp_path / "export.csv").write_text(text, encoding="utf-8")
    with pytest.raises(UserError) as refused:
        read_table(str(tmp_path / "export.csv"))
    message = str(refused.value)
    assert message.count("\n") == 0 and "2 problems" in message and "\ufeff" not in message
    assert "column bp: 2 number(s) with the unit 'mmHg', '101 mmHg' (line 2), '96 mmHg' (line 3)" in message
    assert "column notes has no observed value: declare it +dataset.columns.notes=drop" in message
    assert "glu" not in message and "sex" not in message  # '.' is a missing cell; F/M a binary column
    assert "patient_age" not in message


def test_a_csv_with_missing_cells_trains_and_scores_only_entries_with_a_truth(tmp_path):
    file = tmp_path / "wine_holes.csv"
    x, holes = write_wine_with_holes(file)
    own = train_impute_tabular(tmp_path / "own", f"dataset.table={file}", "missing.kind=none")
    assert np.isfinite(own["test/elbo"]) and np.isfinite(own["test/log_likelihood"])
    assert "test/impute_rmse" not in own  # nothing was hidden on top: no truth to score against
    overrides = [f"dataset.table={file}", "missing.kind=mcar", "missing.rate=0.3"]
    scored = train_impute_tabular(tmp_path / "scored", *overrides)
    data = load_data(make_cfg("experiment=impute_tabular", *overrides), torch.device("cpu"))
    assert data.columns[-1] == "is_class_0" and data.binary_columns[-1] and data.native_missing
    known = torch.isnan(data.test.x) & ~torch.isnan(data.test.truth)
    assert 0 < known.sum() < torch.isnan(data.test.x).sum()  # the file's own holes are hidden but have no truth
    assert scored["test/impute_entries"] == int(known.sum())
    for key in ("rmse", "coverage", "crps", "cond_ll", "rmse_mice", "accuracy"):
        assert np.isfinite(scored[f"test/impute_{key}"]), key
    config = json.loads((tmp_path / "scored" / "metrics.json").read_text())
    assert config["test/impute_rows"] == len(data.test)


def test_mode_impute_writes_the_file_back_completed_with_multiple_imputations(tmp_path):
    from vae_runner import run

    file = tmp_path / "wine_holes.csv"
    x, holes = write_wine_with_holes(file)
    train_impute_tabular(tmp_path / "trained", f"dataset.table={file}", "missing.kind=none")
    overrides = ["mode=impute", f"ckpt={tmp_path / 'trained'}", "evaluation.imputation.draws=5", "seed=3"]
    run.run(make_cfg(*overrides), tmp_path / "imputed", overrides)
    single = np.loadtxt(tmp_path / "imputed" / "imputed.csv", delimiter=",", skiprows=1)
    long = np.loadtxt(tmp_path / "imputed" / "imputations.csv", delimiter=",", skiprows=1)
    header = (tmp_path / "imputed" / "imputations.csv").read_text().splitlines()[0].split(",")
    assert header[0] == "imputation" and header[1:] == file.read_text().splitlines()[0].split(",")
    assert single.shape == x.shape and not np.isnan(single).any()  # every row, in the file's order
    assert np.allclose(single[~holes], x[~holes], rtol=1e-12)  # observed cells as the file has them
    assert set(np.unique(single[:, -1])) <= {0.0, 1.0}  # a binary column stays 0/1
    draws = long[:, 1:].reshape(5, *x.shape)
    assert np.array_equal(long[:, 0], np.repeat(np.arange(1, 6), len(x)))
    assert np.allclose(draws[:, ~holes], x[~holes]) and draws[:, holes].std(0).mean() > 0  # holes vary across draws
    cols = np.nonzero(holes[:, :-1])[1]  # the real-valued columns' holes: in the file's units, within its range
    low, high = x.min(0)[cols] - 3 * x.std(0)[cols], x.max(0)[cols] + 3 * x.std(0)[cols]
    assert np.all((single[:, :-1][holes[:, :-1]] > low) & (single[:, :-1][holes[:, :-1]] < high))
    soft = [*overrides, "evaluation.imputation.probabilities=true"]
    run.run(make_cfg(*soft), tmp_path / "soft", soft)
    chance = np.loadtxt(tmp_path / "soft" / "imputed.csv", delimiter=",", skiprows=1)
    flag = holes[:, -1]
    assert np.all((chance[flag, -1] >= 0) & (chance[flag, -1] <= 1)) and len(set(chance[flag, -1])) > 2
    assert np.array_equal(single[flag, -1], (chance[flag, -1] > 0.5).astype(float))  # the 0/1 cells, thresholded
    assert np.array_equal(chance[:, :-1], single[:, :-1]) and np.array_equal(chance[~flag], single[~flag])
    run.run(make_cfg(*overrides), tmp_path / "again", overrides)
    assert (tmp_path / "again" / "imputations.csv").read_text() == (
        tmp_path / "imputed" / "imputations.csv"
    ).read_text()
    bundled = ["mode=impute", f"ckpt={tmp_path / 'bundled'}"]
    train_impute_tabular(tmp_path / "bundled", "dataset.table=wine")
    with pytest.raises(UserError, match="mode=impute fills the missing cells of the table file"):
        run.run(make_cfg(*bundled), tmp_path / "refused", bundled)
    with pytest.raises(UserError, match="mode=impute needs a checkpoint"):
        validate(make_cfg("mode=impute"))


def test_mode_impute_pools_a_sweep_of_bootstrap_members_into_one_set_of_imputations(tmp_path):
    from vae_runner import run

    file = tmp_path / "wine_holes.csv"
    x, holes = write_wine_with_holes(file)
    for seed in (0, 1):  # the layout of a multirun directory: <sweep>/<job number>/
        train_impute_tabular(
            tmp_path / "sweep" / str(seed),
            f"dataset.table={file}",
            "missing.kind=none",
            "trainer.bootstrap=true",
            f"seed={seed}",
        )
    overrides = ["mode=impute", f"ckpt={tmp_path / 'sweep'}", "evaluation.imputation.draws=5"]
    run.run(make_cfg(*overrides), tmp_path / "imputed", overrides)
    long = np.loadtxt(tmp_path / "imputed" / "imputations.csv", delimiter=",", skiprows=1)
    assert np.array_equal(long[:, 0], np.repeat(np.arange(1, 6), len(x)))  # 3 draws from one member, 2 from the other
    draws = long[:, 1:].reshape(5, *x.shape)
    assert np.allclose(draws[:, ~holes], x[~holes]) and not np.isnan(draws).any()
    alone = ["mode=impute", f"ckpt={tmp_path / 'sweep' / '0'}", "evaluation.imputation.draws=3"]
    alone.append("evaluation.imputation.proper=false")  # a member's share: its own draws, not bootstrapped again
    run.run(make_cfg(*alone), tmp_path / "alone", alone)
    first = np.loadtxt(tmp_path / "alone" / "imputations.csv", delimiter=",", skiprows=1)[:, 1:].reshape(3, *x.shape)
    assert np.allclose(draws[:3], first)  # the first member's share is that run's own draws
    train_impute_tabular(
        tmp_path / "sweep" / "2", f"dataset.table={file}", "missing.kind=none", "trainer.bootstrap=true", "seed=1"
    )
    with pytest.raises(UserError, match="the same seed"):
        run.run(make_cfg(*overrides), tmp_path / "refused", overrides)


def test_bootstrap_members_train_on_different_resamples_that_reproduce_from_the_seed():
    from conftest import make_cfg

    from vae_runner import build

    def train_rows(seed: int, bootstrap: bool = True) -> torch.Tensor:
        cfg = make_cfg(
            "dataset=tabular",
            "dataset.table=wine",
            "likelihood=gaussian",
            f"seed={seed}",
            f"trainer.bootstrap={bootstrap}",
        )
        return build.load_data(cfg, torch.device("cpu")).train.x

    plain, first, again, other = train_rows(0, False), train_rows(0), train_rows(0), train_rows(1)
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert first.shape == plain.shape
    rows = {tuple(r) for r in plain.tolist()}
    assert all(tuple(r) in rows for r in first.tolist())  # drawn from the training rows ...
    assert len({tuple(r) for r in first.tolist()}) < 0.75 * len(plain)  # ... with replacement (about 63 % distinct)


def test_a_small_table_keeps_a_validation_and_a_test_row(tmp_path):
    """Found by studies/mi_inference.py --design fimd_x: 50 rows with test_fraction=0.01 gave an empty test split."""
    from vae_runner.data.tabular import load_tabular

    file = tmp_path / "small.csv"
    file.write_text("a,b\n" + "\n".join(f"{i},{i % 7}" for i in range(50)) + "\n")
    data = load_tabular(str(file), val_fraction=0.01, test_fraction=0.01, split_seed=0, label_column=False, **AS_GIVEN)
    assert (len(data.train), len(data.val), len(data.test)) == (48, 1, 1)


def test_a_table_changed_under_the_same_path_is_never_taken_for_the_runs_own(tmp_path):
    from vae_runner import run
    from vae_runner.runs.checkpoint import load_checkpoint
    from vae_runner.runs.saved_config import table_digest

    file = tmp_path / "cohort.csv"
    write_wine_with_holes(file)
    trained = tmp_path / "trained"
    overrides = [f"dataset.table={file}", "missing.kind=none"]
    train_impute_tabular(trained, *overrides)
    cfg = make_cfg("experiment=impute_tabular", *overrides)
    assert load_checkpoint(trained / "checkpoints" / "last.pt")["table_digest"] == table_digest(cfg)
    original = file.read_text()
    file.write_text(original.replace("\n1", "\n2", 1))  # one cell of the file changed, its path the same
    again = list(OmegaConf.load(trained / ".hydra" / "overrides.yaml"))  # the training's own command line
    for how, command in [
        ("a re-launched run", make_cfg(*again, shrink=False)),  # would be skipped as finished
        ("resume=", make_cfg(f"resume={trained}", "trainer.epochs=5")),
        ("mode=impute", make_cfg("mode=impute", f"ckpt={trained}")),
    ]:
        with pytest.raises(UserError, match=r"has changed since .* train a new run .* restore the file"):
            run.run(command, trained if how == "a re-launched run" else tmp_path / "other", [])
    file.write_text(original)  # the file it trained on: taken up again
    impute = ["mode=impute", f"ckpt={trained}", "evaluation.imputation.draws=2"]
    run.run(make_cfg(*impute), tmp_path / "imputed", impute)
    assert (tmp_path / "imputed" / "imputed.csv").is_file()


def test_observed_cells_go_back_as_the_file_writes_them_and_no_byte_order_mark(tmp_path):
    import csv

    from vae_runner import run

    file = tmp_path / "export.csv"
    write_wine_with_holes(file)
    lines = file.read_text().splitlines()
    rows = [line.split(",") for line in lines[1:]]
    for row in rows:  # the same numbers written as an export might: trailing zeros, a leading space, an exponent
        row[0] = row[0] + ("0" if "." in row[0] else ".0") if row[0] not in ("", "NA", "?") else row[0]
        row[1] = " " + row[1] if row[1] not in ("", "NA", "?") else row[1]
        row[4] = f"{float(row[4]):e}" if row[4] not in ("", "NA", "?") else row[4]
    file.write_bytes(("\ufeff" + "\r\n".join([lines[0], *map(",".join, rows)]) + "\r\n").encode())
    train_impute_tabular(tmp_path / "trained", f"dataset.table={file}", "missing.kind=none")
    impute = ["mode=impute", f"ckpt={tmp_path / 'trained'}", "evaluation.imputation.draws=2"]
    run.run(make_cfg(*impute), tmp_path / "imputed", impute)
    names = lines[0].split(",")
    for output, skip in (("imputed.csv", 0), ("imputations.csv", 1)):
        with open(tmp_path / "imputed" / output, newline="", encoding="utf-8") as f:
            header, *written = list(csv.reader(f))
        assert header[skip:] == names and not header[0].startswith("\ufeff")
        for got, want in zip(written[: len(rows)], rows):
            observed = [c for c in want if c not in ("", "NA", "?")]
            assert [g for g, w in zip(got[skip:], want) if w not in ("", "NA", "?")] == observed
            assert all(float(g) == float(g) for g in got[skip:])  # every hole filled with a number


def test_a_fitted_run_fills_another_cohorts_file_from_any_working_directory(tmp_path, monkeypatch):
    import csv

    from vae_runner import run

    (tmp_path / "study" / "data").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "study")
    write_wine_with_holes(tmp_path / "study" / "data" / "cohort1.csv", seed=0)
    trained = tmp_path / "study" / "trained"
    train_impute_tabular(trained, "dataset.table=data/cohort1.csv", "missing.kind=none")  # a relative path
    cohort2 = tmp_path / "cohort2.csv"
    write_wine_with_holes(cohort2, rate=0.2, seed=1)
    lines = cohort2.read_text().splitlines()
    cohort2.write_text("\n".join(lines[:41]) + "\n")  # 40 rows of another cohort, the same columns
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # neither the run's directory nor where it was trained
    own = ["mode=impute", f"ckpt={trained}", "evaluation.imputation.draws=2"]
    run.run(make_cfg(*own), tmp_path / "own", own)
    assert len((tmp_path / "own" / "imputed.csv").read_text().splitlines()) == 179  # cohort 1's 178 rows
    other = [*own, f"evaluation.imputation.table={cohort2}"]
    run.run(make_cfg(*other), tmp_path / "other", other)
    with open(tmp_path / "other" / "imputed.csv", newline="") as f:
        header, *rows = list(csv.reader(f))
    given = [line.split(",") for line in lines[1:41]]
    assert header == lines[0].split(",") and len(rows) == 40
    assert all(g == w for row, want in zip(rows, given) for g, w in zip(row, want) if w not in ("", "NA", "?"))
    names = lines[0].split(",")
    for changed, difference in [
        (names[:-1], "it lacks is_class_0"),
        ([*names[:-1], "smoker"], "it lacks is_class_0; it has smoker, which the run's table had not"),
    ]:
        wrong = tmp_path / "wrong.csv"
        wrong.write_text(",".join(changed) + "\n" + ",".join(["1"] * len(changed)) + "\n")
        refused = [*own, f"evaluation.imputation.table={wrong}"]
        trained_on = "its columns must be those of the table the run was trained on"
        with pytest.raises(
            UserError, match=f"wrong.csv cannot be filled by this run: {trained_on} \\(alcohol, .*\\); {difference}"
        ):
            run.run(make_cfg(*refused), tmp_path / "refused", refused)


def test_a_table_runs_last_lines_show_its_imputation_scores_beside_the_baselines(tmp_path):
    import logging.config

    # a logging.config call before (Hydra's job logging in this process does one) disables every existing logger,
    # vae_runner's too: the run's log must still get its lines (it came out empty in the full suite)
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": True})
    metrics = train_impute_tabular(tmp_path / "run", "dataset.table=wine", "missing.rate=0.3")
    log = (tmp_path / "run" / "vae-run.log").read_text()
    assert f"imputation of {metrics['test/impute_entries']} hidden test entries in" in log
    vae = next(line for line in log.splitlines() if line.split(" - ")[-1].strip().startswith("VAE "))
    assert vae.split()[-3:] == [f"{metrics[f'test/impute_{k}']:.3f}" for k in ("rmse", "coverage", "crps")]
    assert "test rows" in log and "test images" not in log
    import csv

    with open(tmp_path / "run" / "imputation_by_column.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    data = load_data(
        make_cfg("experiment=impute_tabular", "dataset.table=wine", "missing.rate=0.3"), torch.device("cpu")
    )
    assert [r["column"] for r in rows] == list(data.columns) and "mice_coverage" in rows[0]
    assert sum(int(r["hidden"]) for r in rows) == metrics["test/impute_entries"]
    scale = dict(zip(data.columns, data.scale.tolist()))
    for method, key in (("VAE", "test/impute_rmse"), ("mice", "test/impute_rmse_mice")):  # the columns' RMSEs, in
        squares = sum(int(r["hidden"]) * (float(r[f"{method}_rmse"]) / scale[r["column"]]) ** 2 for r in rows)
        assert (squares / metrics["test/impute_entries"]) ** 0.5 == pytest.approx(metrics[key], rel=1e-5)  # units


def test_mode_impute_writes_the_missingness_patterns_and_the_observed_against_imputed_densities(tmp_path):
    import csv

    from PIL import Image

    from vae_runner import run

    file = tmp_path / "wine_holes.csv"
    x, holes = write_wine_with_holes(file, rate=0.2)
    train_impute_tabular(tmp_path / "trained", f"dataset.table={file}", "missing.kind=none")
    impute = ["mode=impute", f"ckpt={tmp_path / 'trained'}", "evaluation.imputation.draws=3"]
    run.run(make_cfg(*impute), tmp_path / "imputed", impute)
    with open(tmp_path / "imputed" / "missing_patterns.csv", newline="") as f:
        header, *rows = list(csv.reader(f))
    patterns, totals = rows[:-1], rows[-1]
    assert header[0] == "rows" and header[-1] == "missing_cells" and len(header) == x.shape[1] + 2
    assert sum(int(r[0]) for r in patterns) == len(x) and [int(c) for c in totals[1:-1]] == holes.sum(0).tolist()
    distinct = {tuple(row) for row in (~holes).astype(int).tolist()}
    assert {tuple(int(c) for c in r[1:-1]) for r in patterns} == distinct
    assert [int(r[0]) for r in patterns] == sorted((int(r[0]) for r in patterns), reverse=True)
    for r in patterns:
        assert int(r[-1]) == x.shape[1] - sum(int(c) for c in r[1:-1])
    picture = Image.open(tmp_path / "imputed" / "imputed_densities.png")
    assert picture.size[0] > 600 and picture.size[1] > 400
