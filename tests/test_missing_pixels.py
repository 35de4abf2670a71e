"""Missing pixels (`missing.*` on an image dataset): hidden after a binarisation drawn once, so the truth is the
binarised image every run scores; refused where a hidden pixel's truth would be redrawn; imputed and scored against
the baselines by vae-run (experiment=impute_digits)."""

import json

import numpy as np
import pytest
import torch

from tests.conftest import make_cfg
from vae_runner.build import load_data
from vae_runner.errors import UserError
from vae_runner.imputation.baselines import baseline_imputations

CPU = torch.device("cpu")


def test_missing_pixels_are_hidden_after_a_static_binarisation():
    complete = load_data(make_cfg("dataset=digits", "likelihood=bernoulli", "dataset.binarize=static"), CPU)
    cfg = make_cfg("dataset=digits", "likelihood=bernoulli", "missing.kind=mcar", "missing.rate=0.5")
    data = load_data(cfg, CPU)  # binarize=auto: static, as pixels are missing
    assert data.binarize == "static" and data.has_missing and data.train.truth is None
    for split, full in ((data.val, complete.val), (data.test, complete.test)):
        assert torch.equal(split.truth, full.x)  # the same binarised images as a run without missing pixels
        hidden = torch.isnan(split.x)
        assert torch.equal(split.x[~hidden], full.x[~hidden])
        assert abs(hidden.float().mean().item() - 0.5) < 0.03
        assert (~hidden).flatten(1).any(1).all()  # every image keeps an observed pixel
    hidden = torch.isnan(data.train.x)
    assert hidden.any() and torch.equal(data.train.x[~hidden], complete.train.x[~hidden])


def test_missing_pixels_refuse_a_redrawn_truth_and_packed_modalities():
    with pytest.raises(UserError, match="dataset.binarize=static"):
        load_data(
            make_cfg("dataset=digits", "likelihood=bernoulli", "dataset.binarize=dynamic", "missing.kind=mcar"), CPU
        )
    with pytest.raises(UserError, match="modalities.missing"):
        load_data(make_cfg("dataset=digits", "modalities.use=[image,label]", "missing.kind=mcar"), CPU)


def test_baselines_run_only_the_imputers_named():
    rng = np.random.default_rng(0)
    table, mask = rng.normal(size=(30, 4)), rng.random((30, 4)) < 0.3
    assert set(baseline_imputations(table, mask, seed=0, names=["mean", "knn"])) == {"mean", "knn"}
    assert baseline_imputations(table, mask, seed=0, names=[]) == {}


def test_impute_digits_imputes_the_hidden_pixels_beside_the_baselines(tmp_path):
    from vae_runner.api import train

    shrink = [
        "trainer.epochs=2",
        "trainer.num_threads=1",
        "evaluation.iw_samples=16",
        "evaluation.imputation.samples=32",
        "evaluation.imputation.draws=10",
        "evaluation.imputation.baselines=[mean,knn]",
        "evaluation.imputation.rows=40",
        "logger.progress_bar=false",
    ]
    run = train(["experiment=impute_digits", *shrink], run_dir=tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test/impute_rows"] == 40 and 0 < metrics["test/impute_entries"] < 40 * 64
    for key in ("accuracy", "accuracy_mean", "accuracy_knn", "cond_ll"):
        assert np.isfinite(metrics[f"test/impute_{key}"]), key
    assert 0 <= metrics["test/impute_accuracy"] <= 1 and metrics["test/impute_cond_ll"] < 0
    assert "test/impute_accuracy_mice" not in metrics and "test/impute_rmse" not in metrics  # 0/1 pixels: accuracy
    assert np.isfinite(metrics["test/log_likelihood"])  # log p(x_obs): the observed pixels' bound
    assert (tmp_path / "run" / "imputations.png").is_file() and (tmp_path / "run" / "reconstructions.png").is_file()
    # the Python API's imputations are the final evaluation's: the same estimator, seed and rows give its number
    test = run.data.test
    imp = run.impute(test.x[:40], test.truth[:40], samples=32, draws=10, seed=run.config.seed)
    has_missing = torch.isnan(test.x[:40]).flatten(1).any(1)
    assert imp.log_p_missing[has_missing].mean().item() == pytest.approx(metrics["test/impute_cond_ll"], abs=1e-4)
