"""The cadences that keep the loop busy with training: checkpoints every `trainer.checkpoint_every_s` seconds
(written on a background thread, best.pt before the last.pt that refers to it, both always at the end and on a stop
signal) and pictures every `logger.images_every` epochs; and the background writer itself."""

import os
import signal
import statistics
import threading

import pytest
import torch
from conftest import make_cfg

from vae_runner import build, run
from vae_runner.host.signals import Interrupted
from vae_runner.runs import checkpoint
from vae_runner.runs.checkpoint import CheckpointWriter, load_checkpoint, snapshot
from vae_runner.training import trainer

OVERRIDES = ["trainer.epochs=6", "trainer.limit_batches=2", "logger.tensorboard=false"]


@pytest.fixture
def writes(monkeypatch):
    """(file name, epoch, thread name) of every checkpoint written, in order."""
    real, seen = checkpoint.save_checkpoint, []

    def recording(path, **state):
        seen.append((path.name, state["epoch"], threading.current_thread().name))
        real(path, **state)

    monkeypatch.setattr(checkpoint, "save_checkpoint", recording)
    return seen


@pytest.fixture
def picture_steps(monkeypatch):
    real, steps = build.log_pictures, []

    def recording(model, data, logger, n, step, seed):
        steps.append(step)
        real(model, data, logger, n, step, seed)

    monkeypatch.setattr(build, "log_pictures", recording)
    return steps


def test_by_default_a_short_run_writes_its_checkpoints_once_at_the_end_off_the_training_thread(
    tmp_path, writes, no_threads
):
    metrics = run.train(make_cfg(*OVERRIDES), tmp_path)
    names = [(name, epoch) for name, epoch, _ in writes]
    assert names == [("best.pt", metrics["best_epoch"]), ("last.pt", 6)]  # the 30 s cadence never came
    assert {thread for *_, thread in writes} == {"vae-run checkpoints"}
    assert load_checkpoint(tmp_path / "checkpoints" / "best.pt")["epoch"] == metrics["best_epoch"]
    assert 0 < metrics["train_steps_s"] <= metrics["train_time_s"]


def test_checkpoint_every_s_0_writes_every_epoch_and_each_better_model_before_its_last_pt(tmp_path, writes, no_threads):
    run.train(make_cfg(*OVERRIDES, "trainer.checkpoint_every_s=0"), tmp_path)
    lasts = [epoch for name, epoch, _ in writes if name == "last.pt"]
    assert lasts == [1, 2, 3, 4, 5, 6]
    for i, (name, epoch, _) in enumerate(writes):
        if name == "best.pt":  # written with the last.pt of the same epoch, just before it
            assert writes[i + 1][:2] == ("last.pt", epoch)


def test_pictures_every_n_epochs_and_at_the_last(tmp_path, picture_steps, no_threads):
    run.train(make_cfg(*OVERRIDES, "logger.images_every=4"), tmp_path)
    assert picture_steps == [4 * 2, 6 * 2]  # epochs 4 and 6 (2 steps each); the final evaluation draws its own


def test_a_stop_signal_writes_the_better_model_kept_in_memory_and_waits_for_the_disk(
    tmp_path, writes, monkeypatch, no_threads
):
    real, count = trainer.Console.step, iter(range(1, 100))

    def step_then_signal(self):
        real(self)
        if next(count) == 9:  # in epoch 5
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(trainer.Console, "step", step_then_signal)
    with pytest.raises(Interrupted):
        run.train(make_cfg(*OVERRIDES), tmp_path)
    assert [name for name, *_ in writes] == ["best.pt", "last.pt"]  # nothing before the signal; both then
    last = load_checkpoint(tmp_path / "checkpoints" / "last.pt")  # on disk once Interrupted is raised
    best = load_checkpoint(tmp_path / "checkpoints" / "best.pt")
    assert (last["epoch"], last["global_step"], last["batch_index"]) == (4, 9, 1)
    assert best["epoch"] == last["best_epoch"] <= 4
    assert len(last["epoch_times_s"]) == 4  # the whole epochs; the interrupted one is not an epoch's time


def test_the_epoch_time_of_a_resumed_run_counts_every_session_but_not_an_epoch_resumed_in_its_middle(
    tmp_path, monkeypatch, no_threads
):
    real, count = trainer.Console.step, iter(range(1, 100))

    def step_then_signal(self):
        real(self)
        if next(count) == 9:  # in epoch 5, after its first step
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(trainer.Console, "step", step_then_signal)
    with pytest.raises(Interrupted):
        run.train(make_cfg(*OVERRIDES), tmp_path)
    monkeypatch.setattr(trainer.Console, "step", real)
    first = load_checkpoint(tmp_path / "checkpoints" / "last.pt")["epoch_times_s"]
    metrics = run.train(make_cfg(*OVERRIDES, f"resume={tmp_path}"), tmp_path / "ignored", [f"resume={tmp_path}"])
    times = load_checkpoint(tmp_path / "checkpoints" / "last.pt")["epoch_times_s"]
    assert times[:4] == first and len(times) == 5  # epochs 1-4, then 6: epoch 5 began in the first session
    assert metrics["epoch_time_s"] == round(statistics.median(times), 3)
    assert metrics["train_steps_s"] > sum(times)  # the steps of epoch 5 count there


def test_a_snapshot_does_not_change_with_training():
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    saved = snapshot({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 1})
    before = saved["model"]["weight"].clone(), saved["optimizer"]["state"][0]["exp_avg"].clone()
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()  # changes the live weights and moments in place
    assert torch.equal(saved["model"]["weight"], before[0])
    assert torch.equal(saved["optimizer"]["state"][0]["exp_avg"], before[1])
    assert not torch.equal(model.weight.detach(), before[0])


def test_the_writer_raises_a_failed_write_in_the_training_thread(tmp_path):
    (tmp_path / "a_file").write_text("")
    writer = CheckpointWriter()
    writer.write([(tmp_path / "a_file" / "last.pt", {"epoch": 1})])  # its folder is a file: the write fails
    with pytest.raises(OSError):
        writer.wait()
    writer.wait()  # reported once
    writer.write([(tmp_path / "ok" / "last.pt", {"epoch": 2})])
    writer.wait()
    assert torch.load(tmp_path / "ok" / "last.pt", weights_only=True) == {"epoch": 2}
