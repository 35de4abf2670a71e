"""logger=csv: what a run logs, read back by pandas; a resumed run's file drops what came after its checkpoint."""

import json
import os

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


# ------------------------------------------------------------------------------------------------ MLflow
def mlflow_client(cwd):
    mlflow = pytest.importorskip("mlflow.tracking")
    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{cwd / 'mlruns' / 'mlflow.db'}")


def test_a_sweep_s_members_are_mlflow_runs_with_metrics_params_and_artefacts(tmp_path):
    """logger=mlflow, offline: each member of `vae-run -m` a run of the experiment (named as its job directory),
    read back through MLflow's own client: metrics per step, the hyper-parameters as params, pictures and
    metrics.json as artefacts."""
    pytest.importorskip("mlflow")
    done = vae_run("-m", "logger=mlflow", "beta=1,4", *FAST, "hydra.sweep.dir=sweep", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    client = mlflow_client(tmp_path)
    experiment = client.get_experiment_by_name("vae-runner")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert sorted(runs) == ["0_beta=1", "1_beta=4"]
    for name, r in runs.items():
        metrics = json.loads((tmp_path / "sweep" / name / "metrics.json").read_text())
        assert r.info.status == "FINISHED" and r.data.params["beta"] == name.split("=")[1] + ".0"
        assert r.data.metrics["test/elbo"] == pytest.approx(metrics["test/elbo"])
        history = client.get_metric_history(r.info.run_id, "val/elbo")
        assert sorted(m.step for m in history) == [1 * s for s in sorted(m.step for m in history)] and len(history) == 2
        artefacts = {a.path for a in client.list_artifacts(r.info.run_id)}
        pictures = {a.path for a in client.list_artifacts(r.info.run_id, "pictures")}
        assert "metrics.json" in artefacts and "pictures/samples.png" in pictures
        assert "test/iw_samples" not in r.data.metrics  # a count stays in metrics.json


# MLflow 3's server needs SQLAlchemy 2, which the sweeps extra's optuna 2 excludes: .ci/run installs the server in a
# virtualenv of its own and names its `mlflow` command here.
MLFLOW_SERVER = os.environ.get("VAE_RUNNER_MLFLOW_SERVER")


@pytest.mark.skipif(not MLFLOW_SERVER, reason="VAE_RUNNER_MLFLOW_SERVER names no mlflow command (.ci/run sets it)")
def test_a_run_logged_to_a_real_mlflow_server_is_listed_by_its_rest_api(tmp_path):
    """`mlflow server` on loopback, the run given its URI (logger.tracking_uri): the server's REST API lists it."""
    import socket
    import subprocess
    import time
    import urllib.request

    pytest.importorskip("mlflow")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = f"sqlite:///{tmp_path / 'server.db'}"
    server = subprocess.Popen(
        [MLFLOW_SERVER, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", store, "--artifacts-destination", str(tmp_path / "served")],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            assert server.poll() is None, "mlflow server exited"
            try:
                urllib.request.urlopen(f"{uri}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        done = vae_run("logger=mlflow", f"logger.tracking_uri={uri}", *FAST, "hydra.run.dir=run", cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
        request = urllib.request.Request(
            f"{uri}/api/2.0/mlflow/experiments/get-by-name?experiment_name=vae-runner", method="GET"
        )
        experiment = json.loads(urllib.request.urlopen(request, timeout=10).read())["experiment"]
        body = json.dumps({"experiment_ids": [experiment["experiment_id"]]}).encode()
        search = urllib.request.Request(
            f"{uri}/api/2.0/mlflow/runs/search", data=body, headers={"Content-Type": "application/json"}
        )
        runs = json.loads(urllib.request.urlopen(search, timeout=10).read())["runs"]
        assert [r["info"]["run_name"] for r in runs] == ["run"] and runs[0]["info"]["status"] == "FINISHED"
        assert not (tmp_path / "mlruns").exists()  # nothing written to the offline store
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_tensorboard_s_custom_scalars_layout_draws_train_and_validation_together(tmp_path):
    """The layout TensorBoard's Custom Scalars tab reads from the run's events (its own parser), and every tag it
    names is one the run logged."""
    import re

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.custom_scalar import layout_pb2, metadata

    done = vae_run(*FAST, "hydra.run.dir=run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    events = EventAccumulator(str(tmp_path / "run"), size_guidance={"tensors": 0})
    events.Reload()
    layout = layout_pb2.Layout()
    layout.ParseFromString(events.Tensors(metadata.CONFIG_SUMMARY_TAG)[0].tensor_proto.string_val[0])
    charts = {c.title: list(c.multiline.tag) for category in layout.category for c in category.chart}
    assert charts["ELBO"] == [r"^(train|val)/elbo$"]
    logged = events.Tags()["scalars"]
    for title, patterns in charts.items():
        assert [t for t in logged if any(re.search(p, t) for p in patterns)], title
    assert sorted(t for t in logged if re.search(charts["ELBO"][0], t)) == ["train/elbo", "val/elbo"]
