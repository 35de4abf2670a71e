"""Nothing a run wrote is overwritten: resuming from best.pt branches into a new directory (the run's later
last.pt stays), a second evaluation keeps the first one's metrics, and resuming a finished run without more epochs
is refused with what to do instead."""

import json

import pytest
from conftest import make_cfg

from vae_runner import run
from vae_runner.errors import UserError
from vae_runner.runs.directory import continues_in_place


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("finished")
    run.train(make_cfg("trainer.epochs=3", "trainer.limit_batches=2", "evaluation.iw_samples=4"), out)
    return out


def test_resuming_from_best_branches_into_a_new_directory(finished, tmp_path):
    last = (finished / "checkpoints" / "last.pt").read_bytes()
    best = finished / "checkpoints" / "best.pt"
    assert continues_in_place(finished) and continues_in_place(finished / "checkpoints" / "last.pt")
    assert not continues_in_place(best)
    overrides = [f"resume={best}", "trainer.epochs=5"]
    metrics = run.train(make_cfg(*overrides), tmp_path / "branch", overrides)
    assert (finished / "checkpoints" / "last.pt").read_bytes() == last  # the original run is untouched
    assert (tmp_path / "branch" / "checkpoints" / "last.pt").is_file() and metrics["epochs"] == 5


def test_a_second_evaluation_keeps_the_first(finished, tmp_path):
    for k in (4, 2):
        overrides = ["mode=eval", f"ckpt={finished}", f"evaluation.iw_samples={k}"]
        run.evaluate(make_cfg(*overrides), tmp_path, overrides)
    assert json.loads((tmp_path / "metrics.1.json").read_text())["test/iw_samples"] == 4
    assert json.loads((tmp_path / "metrics.json").read_text())["test/iw_samples"] == 2


def test_resuming_a_finished_run_without_more_epochs_is_refused(finished, tmp_path):
    overrides = [f"resume={finished}", "beta=4"]
    with pytest.raises(UserError, match=r"has finished its 3 epochs .*trainer.epochs=<more than 3>.*mode=eval"):
        run.train(make_cfg(*overrides), tmp_path, overrides)
