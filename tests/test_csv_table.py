"""A researcher's own table: `dataset=tabular dataset.table=<file.csv>` read with its missing cells, refused with the
fix when a cell is not a number, and trained and scored end to end (only entries hidden on top have a truth)."""

import json

import numpy as np
import pytest
import torch
from sklearn.datasets import load_wine

from tests.conftest import make_cfg
from tests.test_missing_data import train_impute_tabular
from vae_runner.build import load_data
from vae_runner.data.csv_table import read_table
from vae_runner.errors import UserError


def write_wine_with_holes(path, rate: float = 0.1, seed: int = 0):
    """wine as a CSV whose cells are missing at `rate` (written as empty, NA or ?), with a 0/1 column added."""
    bunch, rng = load_wine(), np.random.default_rng(seed)
    x = np.column_stack([bunch.data, bunch.target == 0])
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
        ("a,b\n1,red\n", "line 2, column b: 'red' is not a number"),
        ("a,b\n1,2,3\n", "line 2: 3 cells under 2 column names"),
        ("a,b\n1,\n2,NA\n", "column\\(s\\) b have no observed value"),
        ("a,b\n", "at least one row"),
    ],
)
def test_a_bad_csv_gets_the_fix_not_a_traceback(tmp_path, text, message):
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(UserError, match=message):
        read_table(str(tmp_path / "bad.csv"))
    with pytest.raises(UserError, match="no such file"):
        read_table(str(tmp_path / "absent.csv"))


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
