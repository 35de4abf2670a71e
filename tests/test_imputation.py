"""Missingness masks (MCAR and MNAR, seeded) and the imputation scores (RMSE, interval coverage, CRPS, dependence
kept) against known answers, and the scikit-learn baselines on a table with a known dependence."""

import json
import math

import numpy as np
import pytest
import torch

from vae_runner.data.missingness import keep_one_per_row, mcar_mask, mnar_mask
from vae_runner.evaluation.imputation import crps, dependence_kept, interval_coverage, rmse
from vae_runner.imputation.baselines import baseline_imputations


def test_mcar_masks_hide_the_rate_reproducibly():
    mask = mcar_mask((2000, 10), 0.3, seed=0)
    assert mask.float().mean().item() == pytest.approx(0.3, abs=0.01)
    assert torch.equal(mask, mcar_mask((2000, 10), 0.3, seed=0)) and not torch.equal(
        mask, mcar_mask((2000, 10), 0.3, 1)
    )
    with pytest.raises(ValueError, match="missing.rate"):
        mcar_mask((3, 3), 1.0, 0)


def test_mnar_masks_hide_large_values():
    x = torch.randn(4000, 3)
    mask = mnar_mask(x, 0.2, seed=0)
    assert mask.float().mean().item() == pytest.approx(0.2, abs=0.02)
    assert x[mask].mean() > 0.8 and x[~mask].mean() < 0  # what is missing is what is large


def test_every_row_keeps_one_entry_when_asked():
    mask = torch.ones(5, 4, dtype=torch.bool)
    mask[0, 1] = False
    kept = keep_one_per_row(mask, seed=0)
    assert (~kept).sum(1).tolist() == [1, 1, 1, 1, 1] and not kept[0, 1]


def test_scores_know_the_answers():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(400, 5))
    mask = rng.random((400, 5)) < 0.5
    assert rmse(truth, truth + 2.0, mask) == pytest.approx(2.0)
    # draws from the truth's own predictive distribution N(mu, 1) around mu = truth - noise: calibrated
    mu = truth - rng.normal(size=truth.shape)
    draws = mu[None] + rng.normal(size=(200, *truth.shape))
    assert interval_coverage(draws, truth, mask, 0.9) == pytest.approx(0.9, abs=0.03)
    assert interval_coverage(draws * 0.2 + mu * 0.8, truth, mask, 0.9) < 0.5  # overconfident draws cover less
    # CRPS of N(mu, 1) at y: z (2 Phi(z) - 1) + 2 phi(z) - 1 / sqrt(pi), z = y - mu
    z = (truth - mu)[mask]
    phi, cdf = np.exp(-(z**2) / 2) / math.sqrt(2 * math.pi), 0.5 * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))
    exact = np.mean(z * (2 * cdf - 1) + 2 * phi - 1 / math.sqrt(math.pi))
    assert crps(draws, truth, mask) == pytest.approx(exact, abs=0.01)
    assert crps(truth[None] + 0.5, truth, mask) == pytest.approx(0.5)  # one draw: the absolute error


def test_dependence_kept_is_one_for_conditional_draws_and_falls_with_shrunk_ones():
    """Three columns with correlation 0.6, a third of the entries hidden: draws from the exact conditional
    distribution of each row's hidden entries given its observed ones keep the correlations (1), draws that ignore
    the observed entries lose them where one of a pair is observed, and conditional means shrunk by half (with the
    same marginal variance) land between."""
    rng = np.random.default_rng(0)
    cov = np.full((3, 3), 0.6) + 0.4 * np.eye(3)
    truth = rng.multivariate_normal(np.zeros(3), cov, 3000)
    mask = rng.random(truth.shape) < 0.33

    def draws(shrink: float, m: int = 20) -> np.ndarray:
        out = np.repeat(truth[None], m, 0)
        for r in np.flatnonzero(mask.any(1)):
            h, o = mask[r], ~mask[r]
            coef = np.linalg.solve(cov[np.ix_(o, o)], cov[np.ix_(o, h)]) if o.any() else np.zeros((0, h.sum()))
            mean = truth[r, o] @ coef * shrink
            var = cov[np.ix_(h, h)] - cov[np.ix_(h, o)] @ coef + (1 - shrink**2) * coef.T @ cov[np.ix_(o, o)] @ coef
            out[:, r, h] = rng.multivariate_normal(mean, var, m)  # shrunk means, same marginal variance
        return out

    proper, marginal = dependence_kept(draws(1.0), truth, mask), dependence_kept(draws(0.0), truth, mask)
    assert proper == pytest.approx(1.0, abs=0.05)
    assert marginal < 0.3  # measured 0.18: what is left are the rows missing both of a pair
    assert marginal + 0.2 < dependence_kept(draws(0.5), truth, mask) < proper - 0.2
    assert math.isnan(dependence_kept(draws(1.0)[:, :5], truth[:5], mask[:5]))  # too few rows to say


def test_baselines_on_a_table_with_a_dependence():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 1))
    table = np.hstack([a, 2 * a + 0.1 * rng.normal(size=(500, 1)), rng.normal(size=(500, 2))])
    table = (table - table.mean(0)) / table.std(0)
    mask = keep_one_per_row(mcar_mask(table.shape, 0.3, seed=0), seed=0).numpy()
    out = baseline_imputations(table, mask, seed=0, draws=5)
    assert out["mean"].shape == (1, 500, 4) and out["mice"].shape == (5, 500, 4)
    hidden_means = np.nanmean(np.where(mask, np.nan, table), axis=0)
    assert np.allclose(out["mean"][0][mask], np.broadcast_to(hidden_means, table.shape)[mask])
    assert np.array_equal(out["knn"][0][~mask], table[~mask])  # observed entries untouched
    dependent = mask.copy()
    dependent[:, 2:] = False  # the two related columns: MICE and kNN use the relation (where one is observed)
    errors = {name: rmse(table, draws.mean(0), dependent) for name, draws in out.items()}
    assert errors["mice"] < 0.7 * errors["mean"] and errors["knn"] < errors["mean"]


def test_the_baseline_script_prints_its_table(monkeypatch, capsys):
    import runpy
    import sys

    argv = ["impute_baselines.py", "--datasets", "wine", "--rates", "0.3", "--seeds", "0", "--draws", "3"]
    monkeypatch.setattr(sys, "argv", argv)
    import logging

    runpy.run_path("studies/impute_baselines.py", run_name="__main__")
    out = capsys.readouterr().out
    assert (
        "| mean RMSE | knn RMSE | mice RMSE | MICE coverage | MICE CRPS |" in out and "| wine (178, 13) | 30% |" in out
    )
    # its quiet log is restored after: a later run in this process (the suite's next test) logs its INFO lines
    assert logging.root.manager.disable == logging.NOTSET


def test_coverage_and_crps_are_exact_for_a_calibrated_imputer_at_any_number_of_draws():
    """Truths and M = 5 draws all from N(0, 1): the imputer is calibrated, so its 90 % coverage is 0.9 and its CRPS
    the normal's expected CRPS, E|X - Y| - E|X - X'| / 2 = 1 / sqrt(pi). The empirical 5-95 % interval of 5 draws
    and the all-pairs ensemble CRPS (the estimators before 2026-12-01) give 0.62 and 0.678 here."""
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(40000, 5))
    mask = np.ones_like(truth, dtype=bool)
    for m in (2, 5, 20):
        draws = rng.normal(size=(m, *truth.shape))
        assert interval_coverage(draws, truth, mask, 0.9) == pytest.approx(0.9, abs=0.005), m
        assert interval_coverage(draws, truth, mask, 0.5) == pytest.approx(0.5, abs=0.005), m
        assert crps(draws, truth, mask) == pytest.approx(1 / math.sqrt(math.pi), abs=0.01), m
    wide = 3.0 * rng.normal(size=(5, *truth.shape))  # over-dispersed draws cover more than nominal
    assert interval_coverage(wide, truth, mask, 0.9) > 0.95


def test_the_fair_crps_equals_its_all_pairs_formula():
    rng = np.random.default_rng(1)
    draws, truth = rng.normal(size=(7, 30, 3)), rng.normal(size=(30, 3))
    mask = rng.random((30, 3)) < 0.5
    x, y = draws[:, mask], truth[mask]
    pairs = np.abs(x[:, None] - x[None]).sum(axis=(0, 1))
    assert crps(draws, truth, mask) == pytest.approx(np.mean(np.abs(x - y).mean(0) - pairs / (2 * 7 * 6)))


def test_missforest_follows_a_nonlinear_dependence_that_mice_misses():
    """y = x^2 + noise: chained linear regressions (MICE) see no linear relation of y on x and impute about the
    mean; chained random forests (missForest) recover the parabola."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, size=300)
    table = np.stack([x, x**2 + 0.1 * rng.normal(size=300)], 1)
    mask = np.zeros_like(table, dtype=bool)
    mask[::3, 1] = True  # a third of y hidden, x always observed
    out = baseline_imputations(table, mask, seed=0, names=["mice", "missforest"])
    assert rmse(table, out["missforest"][0], mask) < 0.5 * rmse(table, out["mice"][0], mask)


@pytest.mark.slow
def test_a_run_scores_missforest_beside_the_model_when_asked(tmp_path, no_threads):
    from conftest import make_cfg

    from vae_runner import run

    overrides = ("dataset=tabular", "dataset.table=wine", "likelihood=gaussian", "missing.kind=mcar")
    cfg = make_cfg(*overrides, "missing.rate=0.3", "evaluation.imputation.baselines=[mean,missforest]")
    metrics = run.train(cfg, tmp_path)
    assert metrics["test/impute_rmse_missforest"] < metrics["test/impute_rmse_mean"]


def test_the_inference_study_runs_bootstrap_members_under_mar_and_prints_its_table(monkeypatch, capsys):
    import runpy
    import sys

    argv = ["mi_inference.py", "--reps", "1", "--rows", "120", "--mechanism", "mar", "--members", "2"]
    argv += [
        "--imputations",
        "4",
        "likelihood=correlated_gaussian",
        "trainer.epochs=2",
        "evaluation.imputation.samples=16",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path("studies/mi_inference.py", run_name="__main__")
    out = capsys.readouterr().out
    assert "30% MAR, M = 4 from 2 model(s)" in out
    for method in ("complete case", "MICE, pooled", "VAE, pooled", "VAE, single imputation"):
        assert f"| {method} | " in out
    assert "The VAE's conditional means against the truth's" in out


def test_the_transductive_study_scores_the_vae_beside_mice_at_the_same_m(monkeypatch, capsys):
    import runpy
    import sys

    argv = ["impute_baselines.py", "--datasets", "wine", "--rates", "0.5", "--seeds", "0", "--draws", "4"]
    argv += ["--protocol", "miwae", "--vae", "likelihood=correlated_gaussian", "trainer.epochs=2"]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path("studies/impute_baselines.py", run_name="__main__")
    out = capsys.readouterr().out
    assert "| VAE RMSE | VAE MSE | MICE coverage | MICE CRPS | VAE coverage | VAE CRPS |" in out
    assert "| wine (178, 13) | 50% |" in out


def test_the_inference_study_resumes_from_its_results_file_and_refuses_other_settings(monkeypatch, capsys, tmp_path):
    import runpy
    import sys

    results = tmp_path / "reps.jsonl"
    study = ["mi_inference.py", "--no-vae", "--rows", "80", "--imputations", "3", "--results", str(results)]

    def run(*extra):
        monkeypatch.setattr(sys, "argv", [*study, *extra])
        runpy.run_path("studies/mi_inference.py", run_name="__main__")
        return capsys.readouterr()

    run("--reps", "1", "--first", "1")  # another process's share
    whole = run("--reps", "2")  # replication 0 run, 1 read back
    assert [json.loads(line)["replication"] for line in results.read_text().splitlines()] == [1, 0]
    assert "replication 1 done" not in whole.err and "replication 0 done" in whole.err
    assert whole.out.startswith("2 replications")
    again = run("--reps", "2")
    assert "done" not in again.err and again.out.split(";")[0] == whole.out.split(";")[0]
    assert again.out.split("\n", 1)[1] == whole.out.split("\n", 1)[1]  # the same table, from the file alone
    with pytest.raises(SystemExit, match="other settings"):
        run("--reps", "2", "--rate", "0.2")
