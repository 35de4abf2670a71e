"""studies/accuracy_table.py: the README's accuracy table from sweep directories laid out as vae-run writes them
(a run's .hydra/config.yaml and metrics.json), the VAE's columns optionally from a second sweep."""

import json
import runpy
import sys
from pathlib import Path

from omegaconf import OmegaConf

KEYS = ("rmse", "rmse_mice", "rmse_mice_norm", "rmse_missforest", "rmse_knn", "coverage", "coverage_mice")
KEYS += ("coverage_mice_norm", "crps", "crps_mice", "crps_mice_norm")


def write_run(sweep: Path, seed: int, vae_rmse: float, table: str = "wine") -> None:
    run = sweep / f"{seed}_seed={seed}"
    (run / ".hydra").mkdir(parents=True)
    config = {"dataset": {"table": table}, "missing": {"kind": "mcar", "rate": 0.3}, "seed": seed}
    OmegaConf.save(OmegaConf.create(config), run / ".hydra" / "config.yaml")
    metrics = {f"test/impute_{k}": 0.5 for k in KEYS} | {"test/impute_rmse": vae_rmse}
    metrics |= {"test/impute_rmse_mice": 0.6 + 0.1 * seed, "test/impute_rmse_missforest": 0.7}
    (run / "metrics.json").write_text(json.dumps(metrics))


def table(monkeypatch, capsys, *args) -> list[str]:
    monkeypatch.setattr(sys, "argv", ["accuracy_table.py", *map(str, args)])
    runpy.run_path("studies/accuracy_table.py", run_name="__main__")
    return capsys.readouterr().out.strip().splitlines()


def test_cells_average_the_seeds_and_the_gap_is_against_the_better_baseline(tmp_path, monkeypatch, capsys):
    for seed in (0, 1):
        write_run(tmp_path / "acc", seed, vae_rmse=0.55 + 0.1 * seed)
    header, _, row = table(monkeypatch, capsys, tmp_path / "acc")
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:5] == ["wine", "MCAR 30%", "2", "0.600 ± 0.071", "0.650 ± 0.071"]
    assert cells[-1] == "-0.050"  # VAE 0.60 against MICE's 0.65 (missForest 0.70)
    assert "VAE - the better of MICE, missForest" in header


def test_the_vae_columns_can_come_from_another_sweep(tmp_path, monkeypatch, capsys):
    for seed in (0, 1):
        write_run(tmp_path / "acc", seed, vae_rmse=0.9)
        write_run(tmp_path / "other", seed, vae_rmse=0.6)
    write_run(tmp_path / "other", 2, vae_rmse=0.1)  # no baselines for this seed: left out
    row = table(monkeypatch, capsys, tmp_path / "acc", "--vae", tmp_path / "other")[-1]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2:5] == ["2", "0.600 ± 0.000", "0.650 ± 0.071"] and cells[-1] == "-0.050"
