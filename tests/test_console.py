"""What a run says: a line per validation (epoch, train loss, val ELBO, recon, KL, active units, s/epoch, time
left) in the log, no progress-bar clutter when the output is not a terminal, the end-of-run summary with the run
directory, and a warning when the posterior collapsed."""

import logging
import re

from conftest import make_cfg

from vae_runner import run
from vae_runner.loggers.console import duration, summary
from vae_runner.runs.checkpoint import load_checkpoint
from vae_runner.runs.directory import checkpoint_path


def test_each_validation_is_one_line_and_the_run_ends_with_a_summary(tmp_path, caplog, capsys, no_threads):
    caplog.set_level(logging.INFO, logger="vae_runner")
    run.train(make_cfg("trainer.epochs=3", "trainer.limit_batches=3", "logger.progress_bar=true"), tmp_path)
    lines = [r.getMessage() for r in caplog.records]
    validation = [m for m in lines if m.startswith("epoch ")]
    assert len(validation) == 3
    pattern = (
        r"epoch (\d)/3: train loss -?[\d.]+, val ELBO -[\d.]+ \(recon -[\d.]+, KL [\d.]+\), active units \d+/16, "
        r"[\d.]+ s/epoch, [\d.]+ (s|min) left"
    )
    assert [re.fullmatch(pattern, m).group(1) for m in validation] == ["1", "2", "3"], validation
    assert any(m.startswith("test ELBO") and "log-likelihood" in m and "active units" in m for m in lines)
    assert f"run directory: {tmp_path}" in lines
    # each stage of the final evaluation is announced and timed (the linear probe alone can take half a minute)
    stages = [m for m in lines if m.startswith("final evaluation:")]
    names = [
        "validation and test ELBO",
        "log-likelihood with K=8 importance samples on 359 test images",
        "active units, KL per dimension, ELBO surgery",
        "linear probe (200 training images)",
        "pictures",
    ]
    for name in names:
        assert any(m.startswith(f"final evaluation: {name}") and " done in " in m for m in stages), (name, stages)
    assert "\r" not in capsys.readouterr().err  # not a terminal: no progress bar, even with progress_bar=true


def test_posterior_collapse_is_warned(caplog):
    caplog.set_level(logging.INFO, logger="vae_runner")
    metrics = {"test/elbo": -90.0, "test/recon": -89.85, "test/kl": 0.15, "val/elbo": -91.0, "test/active_units": 0}
    summary(metrics, "outputs/x", 16)
    warning = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1 and "Posterior collapse" in warning[0].getMessage() and "0.150 nats" in caplog.text
    caplog.clear()
    summary({**metrics, "test/active_units": 3}, "outputs/x", 16)
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


def test_durations_read_well():
    assert [duration(s) for s in (3, 42, 200, 7200)] == ["3.0 s", "42 s", "3 min", "2.0 h"]


def test_train_time_adds_up_over_a_resumed_run(tmp_path, monkeypatch, no_threads):
    """Extending a run reports the training time of all its sessions, not only the last one's."""
    first = run.train(make_cfg("trainer.epochs=2", "trainer.limit_batches=2"), tmp_path)
    # the time reported is the time stored (the last checkpoint's write is not counted), so sessions add up
    assert round(load_checkpoint(checkpoint_path(tmp_path))["train_time_s"], 3) == first["train_time_s"]
    more = run.train(
        make_cfg(f"resume={tmp_path}", "trainer.epochs=3"), tmp_path / "x", [f"resume={tmp_path}", "trainer.epochs=3"]
    )
    assert more["epochs"] == 3 and more["train_time_s"] > first["train_time_s"]


def test_a_warm_up_longer_than_the_training_is_warned_with_the_fix(tmp_path, caplog, no_threads):
    caplog.set_level(logging.INFO, logger="vae_runner")
    run.train(make_cfg("trainer.epochs=2", "objective.warmup_epochs=5"), tmp_path / "short")
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "reaches the full KL weight" in r.getMessage()
    ]
    assert len(warnings) == 1 and "epoch 5, after the last of trainer.epochs=2" in warnings[0]
    assert "trainer.epochs=5 or more" in warnings[0]
    caplog.clear()
    run.train(make_cfg("trainer.epochs=2", "objective.warmup_epochs=2"), tmp_path / "in_time")
    assert not [r for r in caplog.records if "reaches the full KL weight" in r.getMessage()]


def test_the_console_shows_every_nth_validation_and_the_log_file_every_one(tmp_path):
    from conftest import FAST, vae_run

    done = vae_run(*FAST, "trainer.epochs=25", "logger.log_every_epochs=10", "hydra.run.dir=run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    shown = [line.split(" - epoch ")[1].split(":")[0] for line in done.stdout.splitlines() if " - epoch " in line]
    assert shown == ["1/25", "10/25", "20/25", "25/25"]  # the first, every 10th and the last
    log = (tmp_path / "run" / "vae-run.log").read_text()
    assert log.count(" - epoch ") == 25 and log.count("final evaluation: ") > 0
    assert "final evaluation: " not in done.stdout and "test ELBO" in done.stdout  # stages in the file only
    assert "torch threads for training" not in done.stdout and "torch threads for training" in log
