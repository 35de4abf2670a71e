"""reproduction/reproduce.py: every ablation composes with the protocol presets, REPRODUCTION.md reports finished rows
(mean ± std over seeds, difference to the paper), unfinished ones (how far they got) and ablations, and a finished
run's record in the ledger keeps its row after its run directory is gone."""

import json
import sys
from pathlib import Path

import pytest
import torch
from conftest import make_cfg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reproduction"))
import reproduce


@pytest.mark.parametrize("name", list(reproduce.ABLATIONS))
def test_every_ablation_composes_with_its_preset(name):
    prior = "vamp" if name.startswith("vamp") else "gaussian"
    cfg = make_cfg(f"experiment=ll_fashion_mnist_{prior}", *reproduce.ABLATIONS[name], shrink=False)
    assert cfg.latent_dim == 40


def finished(path: Path, ll: float, best_epoch: int, epoch_time: float = 8.5) -> None:
    (path / ".hydra").mkdir(parents=True)
    (path / ".hydra" / "overrides.yaml").write_text(f"- experiment=ll_fashion_mnist_gaussian\n- seed={path.name[4:]}\n")
    (path / "metrics.json").write_text(
        json.dumps(
            {
                "test/log_likelihood": ll,
                "best_epoch": best_epoch,
                "epochs": best_epoch + 51,
                "epoch_time_s": epoch_time,
                "device": "cpu (test)",
            }
        )
    )


def test_report_shows_finished_unfinished_and_ablation_rows(tmp_path):
    root = tmp_path / "runs"
    finished(reproduce.run_dir(root, "fashion_mnist", "gaussian", 14), -229.0, 300)
    finished(reproduce.run_dir(root, "fashion_mnist", "gaussian", 15), -231.0, 400, epoch_time=12.25)
    finished(reproduce.run_dir(root, "fashion_mnist", "gaussian", 14, "adam"), -232.5, 200)
    last = reproduce.run_dir(root, "fashion_mnist", "vamp", 14) / "checkpoints" / "last.pt"
    last.parent.mkdir(parents=True)
    state = {"model": {}, "optimizer": {}, "global_step": 6000, "rng": {}, "config": {}}  # the keys vae-run writes
    torch.save({**state, "epoch": 120, "best_epoch": 118, "best_val_elbo": -240.25}, last)
    ledger = tmp_path / "ledger"
    text = reproduce.report(root, ledger, ["fashion_mnist"], ["gaussian", "vamp"], [14, 15], tmp_path / "R.md", "Note.")
    assert (tmp_path / "R.md").read_text() == text and "Note." in text
    gauss = next(line for line in text.splitlines() if "| gaussian |" in line and "Fashion" in line)
    assert "-228.70 ± 0.15" in gauss and "-230.00 ± 1.41" in gauss and "-1.30" in gauss and "| 2 |" in gauss
    assert "| 300/400 | 351/451 | 8.50/12.25 |" in gauss  # best epoch, epochs and s/epoch per seed
    vamp = next(line for line in text.splitlines() if "| vamp |" in line)
    assert "seed 14: epoch 120, best val ELBO -240.25 (epoch 118)" in vamp and "seed 15: not started" in vamp
    ablation = next(line for line in text.splitlines() if "| adam |" in line)
    assert "-232.50" in ablation and "-2.50" in ablation and "`optimizer=adam`" in ablation


def test_ledger_keeps_finished_runs_after_their_directories_are_gone(tmp_path):
    root, ledger = tmp_path / "runs", tmp_path / "ledger"
    finished(reproduce.run_dir(root, "fashion_mnist", "gaussian", 14), -229.0, 300)
    finished(reproduce.run_dir(root, "fashion_mnist", "gaussian", 14, "adam"), -232.5, 200)
    args = (["fashion_mnist"], ["gaussian"], [14], tmp_path / "R.md", "")
    before = reproduce.report(root, ledger, *args)
    kept = json.loads((ledger / "ll_fashion_mnist_gaussian_seed14.json").read_text())
    assert kept["test/log_likelihood"] == -229.0 and kept["best_epoch"] == 300 and kept["device"] == "cpu (test)"
    assert kept["command"] == "vae-run experiment=ll_fashion_mnist_gaussian seed=14"
    assert (ledger / "ll_fashion_mnist_gaussian_ablate-adam_seed14.json").is_file()
    for path in sorted(root.rglob("*"), key=lambda p: -len(p.parts)):  # the machine is wiped
        path.unlink() if path.is_file() else path.rmdir()
    after = reproduce.report(root, ledger, *args)
    row = next(line for line in after.splitlines() if "| gaussian |" in line)
    assert "-229.00" in row and "| 1 |" in row and "seed 14: -229.00 (" in row
    assert next(line for line in after.splitlines() if "| adam |" in line).count("-232.50") == 1
    assert before.split("\n", 6)[6] == after.split("\n", 6)[6]  # the same table, run dirs or not


def test_the_readme_gets_the_same_table_between_its_markers_and_keeps_the_rest(tmp_path):
    root, ledger = tmp_path / "runs", tmp_path / "ledger"
    finished(reproduce.run_dir(root, "fashion_mnist", "gaussian", 14), -229.0, 300)
    start, end = reproduce.README_MARKERS
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nBefore.\n\n{start}\n| an old | table |\n{end}\n\nAfter.\n")
    text = reproduce.report(root, ledger, ["fashion_mnist"], ["gaussian"], [14], tmp_path / "R.md", "", readme)
    block = readme.read_text().split(start)[1].split(end)[0]
    table = [line for line in text.splitlines() if line.startswith("|") and "ablat" not in line]
    assert [line for line in block.splitlines() if line.startswith("|")] == table and "an old" not in block
    assert readme.read_text().startswith("# Title\n\nBefore.\n\n") and readme.read_text().endswith(f"{end}\n\nAfter.\n")
    again = readme.read_text()
    reproduce.report(root, ledger, ["fashion_mnist"], ["gaussian"], [14], tmp_path / "R.md", "", readme)
    assert readme.read_text().split(start)[0] == again.split(start)[0]  # rewriting it twice changes only the block


def test_a_readme_without_the_markers_is_refused_with_the_fix_and_left_alone(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n")
    with pytest.raises(SystemExit, match="Put the two lines where the README's table belongs"):
        reproduce.report(
            tmp_path / "runs", tmp_path / "ledger", ["fashion_mnist"], ["gaussian"], [14], tmp_path / "R.md", "", readme
        )
    assert readme.read_text() == "# Title\n" and (tmp_path / "R.md").is_file()


def test_the_repository_readme_carries_the_markers_and_reproduction_md_s_table():
    """docs/reproduction.md's table is REPRODUCTION.md's (both written by the script from the same runs and ledger)."""
    root = Path(reproduce.__file__).resolve().parents[1]
    start, end = reproduce.README_MARKERS
    block = (root / "docs" / "reproduction.md").read_text().split(start)[1].split(end)[0]
    ours = [line for line in block.splitlines() if line.startswith("|")]
    theirs = (root / "reproduction/REPRODUCTION.md").read_text().split("\n## ")[0]
    assert ours and ours == [line for line in theirs.splitlines() if line.startswith("|")]


def test_richer_posterior_rows_show_the_gap_beside_the_gaussian_posterior(tmp_path):
    root, ledger = tmp_path / "runs", tmp_path / "ledger"
    for path, ll, elbo in [
        (reproduce.run_dir(root, "fashion_mnist", "gaussian", 14), -229.0, -233.0),
        (reproduce.run_dir(root, "fashion_mnist", "gaussian", 14, posterior="iaf"), -228.0, -231.5),
    ]:
        finished(path, ll, 300)
        metrics = json.loads((path / "metrics.json").read_text())
        (path / "metrics.json").write_text(json.dumps({**metrics, "test/elbo": elbo, "test/active_units": 40}))
    text = reproduce.report(root, ledger, ["fashion_mnist"], ["gaussian"], [14], tmp_path / "R.md", "")
    row = next(line for line in text.splitlines() if "| iaf |" in line)
    assert "| -228.00 | +1.00 | -231.50 | 3.50 | 40 | 1 |" in row
    assert (ledger / "ll_fashion_mnist_gaussian_posterior-iaf_seed14.json").is_file()
    for name in reproduce.POSTERIORS:
        assert make_cfg("experiment=ll_fashion_mnist_vamp", f"posterior={name}", shrink=False).latent_dim == 40


def test_a_call_for_some_priors_and_seeds_still_reports_every_row_on_record(tmp_path, monkeypatch):
    """`--priors gaussian --seeds 14` runs those only, but the table it writes keeps the other priors' and seeds'
    rows (a subset once shrank the committed table to one row)."""
    root, ledger = tmp_path / "runs", tmp_path / "ledger"
    finished(reproduce.run_dir(root, "fashion_mnist", "gaussian", 14), -229.0, 300)
    finished(reproduce.run_dir(root, "fashion_mnist", "vamp", 16), -227.0, 300)
    argv = ["reproduce.py", "--report-only", "--root", str(root), "--ledger", str(ledger), "--priors", "gaussian"]
    monkeypatch.setattr(sys, "argv", [*argv, "--seeds", "14", "--out", str(tmp_path / "R.md"), "--readme", "none"])
    reproduce.main()
    text = (tmp_path / "R.md").read_text()
    vamp = next(line for line in text.splitlines() if "| vamp |" in line and "Fashion" in line)
    assert "seed 16: -227.00" in vamp and "Richer posteriors" not in text  # no richer posterior on record: no table
