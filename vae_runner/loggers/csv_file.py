"""`logger=csv`: every scalar a run logs as one row of <run dir>/metrics.csv (columns step, tag, value, wall_time:
`pandas.read_csv(path).pivot_table(index="step", columns="tag", values="value")` gives a step-by-tag table), the
run's hyper-parameters in hparams.json, and every picture as a PNG file in the run directory, as with TensorBoard.
A resumed run drops the rows from its checkpoint's step on, so its curves do not double back."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

from torch import Tensor

from vae_runner.loggers.base import RunLogger
from vae_runner.loggers.png import save_png

COLUMNS = ("step", "tag", "value", "wall_time")
FILE = "metrics.csv"


class CSVLogger(RunLogger):
    def __init__(self, run_dir: Path, purge_step=None, **settings):
        super().__init__(run_dir, **settings)  # what every logger is given (loggers/base.py)
        self.path = Path(run_dir) / FILE
        kept = kept_rows(self.path, purge_step) if purge_step is not None and self.path.exists() else []
        self.file = self.path.open("w", newline="")
        self.writer = csv.writer(self.file)
        self.writer.writerows([COLUMNS, *kept])

    def scalars(self, values: dict[str, float], step: int) -> None:
        now = round(time.time(), 3)
        self.writer.writerows([(step, tag, repr(float(v)), now) for tag, v in values.items()])

    def image(self, tag: str, img: Tensor, step: int, png: str | None = None) -> None:
        if png:
            save_png(img, self.run_dir / png)

    def hparams(self, hparams: dict) -> None:
        (self.run_dir / "hparams.json").write_text(json.dumps(hparams, indent=2, default=str) + "\n")

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def kept_rows(path: Path, purge_step: int) -> list[list[str]]:
    """The rows of an earlier session's file logged before `purge_step`."""
    with path.open(newline="") as f:
        rows = list(csv.reader(f))[1:]
    return [row for row in rows if int(row[0]) < purge_step]
