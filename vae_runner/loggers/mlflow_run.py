"""`logger=mlflow`: a run as an MLflow run. Offline by default: a store in `mlruns/` of the working directory (an
SQLite file, mlruns/mlflow.db, and the artefacts in mlruns/artifacts/; MLflow 3 refuses its old file store):
`mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db` shows it. Or any tracking URI
(`logger.tracking_uri=http://host:5000`). Metrics per step (every scalar the run logs), params (the run's
hyper-parameters, as TensorBoard's HParams), artefacts (each picture as a PNG under pictures/, and metrics.json).
A sweep's members are runs of one experiment, named as their job directories; a resumed run goes on in its own
MLflow run (its id is kept in the run directory). MLflow keeps every value logged, so the steps an interrupted run
logged after its last checkpoint appear twice in its history (TensorBoard and CSV drop them).
mlflow is an optional extra: `pip install "vae-runner[mlflow]"`.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from torch import Tensor

from vae_runner.errors import UserError
from vae_runner.loggers.base import RunLogger
from vae_runner.loggers.png import save_png

STORE = "mlruns"  # the default store: mlruns/mlflow.db (SQLite) and mlruns/artifacts/ in the working directory
RUN_ID_FILE = "mlflow_run_id"  # in the run directory: the MLflow run a resumed run goes on in
MAX_PARAM = 500  # characters of a param value MLflow stores (longer values are cut, with "...")


def _client(tracking_uri: str | None):
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise UserError(
            'logger=mlflow needs the mlflow package: pip install "vae-runner[mlflow]" (or pip install mlflow), '
            "then run the same command again"
        ) from None
    store = Path.cwd() / STORE
    if tracking_uri is None:
        store.mkdir(exist_ok=True)
    uri = tracking_uri or f"sqlite:///{store / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri), None if tracking_uri else (store / "artifacts").as_uri()


class MLflowLogger(RunLogger):
    def __init__(self, run_dir: Path, tracking_uri: str | None, experiment: str, purge_step=None, **settings) -> None:
        super().__init__(run_dir, **settings)  # what every logger is given (loggers/base.py)
        self.client, artifacts = _client(tracking_uri)
        id_file = Path(run_dir) / RUN_ID_FILE
        if purge_step is not None and id_file.is_file():  # a resumed run: its own MLflow run again
            self.run_id = id_file.read_text().strip()
            self.client.update_run(self.run_id, status="RUNNING")
            return
        found = self.client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else self.client.create_experiment(experiment, artifacts)
        tags = {"vae_runner.run_dir": str(Path(run_dir).resolve())}
        self.run_id = self.client.create_run(experiment_id, run_name=Path(run_dir).name, tags=tags).info.run_id
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        id_file.write_text(self.run_id + "\n")

    def scalars(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(tag, float(v), now, step) for tag, v in values.items()]
        for start in range(0, len(metrics), 1000):  # MLflow takes at most 1000 metrics per batch
            self.client.log_batch(self.run_id, metrics=metrics[start : start + 1000])

    def image(self, tag: str, img: Tensor, step: int, png: str | None = None) -> None:
        if png:  # the run directory's PNG copy, as every logger writes it
            save_png(img, self.run_dir / png)
            self.client.log_artifact(self.run_id, str(self.run_dir / png), artifact_path="pictures")
            return
        with tempfile.TemporaryDirectory() as folder:  # logger=many: another logger wrote the copy
            path = Path(folder) / f"{tag.replace('/', '_')}.png"
            save_png(img, path)
            self.client.log_artifact(self.run_id, str(path), artifact_path="pictures")

    def hparams(self, hparams: dict) -> None:
        from mlflow.entities import Param

        def text(v) -> str:
            s = str(v)
            return s if len(s) <= MAX_PARAM else s[: MAX_PARAM - 3] + "..."

        params = [Param(k, text(v)) for k, v in sorted(hparams.items())]
        for start in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[start : start + 100])

    def artifact(self, path: Path) -> None:
        self.client.log_artifact(self.run_id, str(path))

    def close(self) -> None:
        self.client.set_terminated(self.run_id, status="FINISHED")
