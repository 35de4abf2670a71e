"""scripts/reproduce.py: every ablation composes with the protocol presets, and REPRODUCTION.md reports finished
rows (mean ± std over seeds, difference to the paper), unfinished ones (how far they got) and ablations."""

import json
import sys
from pathlib import Path

import pytest
import torch
from conftest import make_cfg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import reproduce


@pytest.mark.parametrize("name", list(reproduce.ABLATIONS))
def test_every_ablation_composes_with_its_preset(name):
    prior = "vamp" if name.startswith("vamp") else "gaussian"
    cfg = make_cfg(f"experiment=ll_fashion_mnist_{prior}", *reproduce.ABLATIONS[name], shrink=False)
    assert cfg.latent_dim == 40


def finished(path: Path, ll: float, best_epoch: int) -> None:
    path.mkdir(parents=True)
    (path / "metrics.json").write_text(
        json.dumps(
            {
                "test/log_likelihood": ll,
                "best_epoch": best_epoch,
                "epochs": best_epoch + 51,
                "epoch_time_s": 8.5,
                "device": "cpu (test)",
            }
        )
    )


def test_report_shows_finished_unfinished_and_ablation_rows(tmp_path):
    root = tmp_path / "runs"
    finished(reproduce.run_dir(root, "fashion_mnist", "gaussian", 14), -229.0, 300)
    finished(reproduce.run_dir(root, "fashion_mnist", "gaussian", 15), -231.0, 400)
    finished(reproduce.run_dir(root, "fashion_mnist", "gaussian", 14, "adam"), -232.5, 200)
    last = reproduce.run_dir(root, "fashion_mnist", "vamp", 14) / "checkpoints" / "last.pt"
    last.parent.mkdir(parents=True)
    state = {"model": {}, "optimizer": {}, "global_step": 6000, "rng": {}, "config": {}}  # the keys vae-run writes
    torch.save({**state, "epoch": 120, "best_epoch": 118, "best_val_elbo": -240.25}, last)
    text = reproduce.report(root, ["fashion_mnist"], ["gaussian", "vamp"], [14, 15], tmp_path / "R.md", "A note.")
    assert (tmp_path / "R.md").read_text() == text and "A note." in text
    gauss = next(line for line in text.splitlines() if "| gaussian |" in line and "Fashion" in line)
    assert "-228.70 ± 0.15" in gauss and "-230.00 ± 1.41" in gauss and "-1.30" in gauss and "| 2 |" in gauss
    vamp = next(line for line in text.splitlines() if "| vamp |" in line)
    assert "seed 14: epoch 120, best val ELBO -240.25 (epoch 118)" in vamp and "seed 15: not started" in vamp
    ablation = next(line for line in text.splitlines() if "| adam |" in line)
    assert "-232.50" in ablation and "-2.50" in ablation and "`optimizer=adam`" in ablation
