"""logger=csv: what a run logs, read back by pandas; a resumed run's file drops what came after its checkpoint."""

import json

import pandas as pd
import pytest
import torch
from conftest import FAST, vae_run

from vae_runner.loggers.csv_file import CSVLogger


def test_a_csv_run_writes_every_scalar_pandas_reads_back(tmp_path):
    done = vae_run("logger=csv", *FAST, "trainer.epochs=3", "hydra.run.dir=run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    run = tmp_path / "run"
    table = pd.read_csv(run / "metrics.csv")
    assert list(table.columns) == ["step", "tag", "value", "wall_time"]
    wide = table.pivot_table(index="step", columns="tag", values="value")
    assert wide["val/elbo"].notna().sum() == 3  # one validation per epoch
    metrics = json.loads((run / "metrics.json").read_text())
    test_rows = table[table.tag == "test/elbo"]
    assert len(test_rows) == 1 and test_rows.value.iloc[0] == metrics["test/elbo"]  # exact: written by repr
    assert json.loads((run / "hparams.json").read_text())["beta"] == 1.0
    assert (run / "samples.png").is_file() and not list(run.glob("events.out.tfevents.*"))


def test_a_resumed_run_drops_the_rows_after_its_checkpoint(tmp_path):
    first = CSVLogger(tmp_path, n_images=4, images_every=1, progress_bar=False, log_every_epochs=1)
    for step in range(1, 11):
        first.scalars({"train/loss": float(step)}, step)
    first.close()
    again = CSVLogger(tmp_path, n_images=4, images_every=1, progress_bar=False, log_every_epochs=1, purge_step=6)
    again.scalars({"train/loss": 60.0}, 6)
    again.image("samples", torch.rand(3, 8, 8), 6, png="samples.png")
    again.close()
    table = pd.read_csv(tmp_path / "metrics.csv")
    assert table.step.tolist() == [1, 2, 3, 4, 5, 6] and table.value.tolist() == [1, 2, 3, 4, 5, 60]
    assert (tmp_path / "samples.png").is_file()


def test_logger_many_writes_tensorboard_and_csv_side_by_side(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    done = vae_run("logger=many", *FAST, "hydra.run.dir=run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    table = pd.read_csv(run / "metrics.csv")
    assert table[table.tag == "test/elbo"].value.iloc[0] == metrics["test/elbo"]
    events = EventAccumulator(str(run)).Reload()
    assert events.Scalars("test/elbo")[0].value == pytest.approx(metrics["test/elbo"], rel=1e-6)  # float32 events
    assert (run / "samples.png").is_file() and (run / "hparams.json").is_file()
