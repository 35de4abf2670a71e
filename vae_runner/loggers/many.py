"""`logger=many`: several loggers at once (configs/logger/many.yaml lists them, e.g. TensorBoard and CSV), each given
the run directory, the resumed run's purge step and the settings every logger shares; every call goes to each."""

from __future__ import annotations

from pathlib import Path

from hydra.utils import instantiate
from torch import Tensor

from vae_runner.loggers.base import RunLogger


class ManyLoggers(RunLogger):
    def __init__(self, run_dir: Path, loggers: dict, purge_step=None, **settings):
        super().__init__(run_dir, **settings)  # what every logger is given (loggers/base.py), passed on to each
        given = {"run_dir": run_dir, "purge_step": purge_step, **settings}
        self.loggers = [instantiate(spec, **given) for spec in loggers.values()]

    def scalars(self, values: dict[str, float], step: int) -> None:
        for logger in self.loggers:
            logger.scalars(values, step)

    def image(self, tag: str, img: Tensor, step: int, png: str | None = None) -> None:
        for i, logger in enumerate(self.loggers):
            logger.image(tag, img, step, png if i == 0 else None)

    def hparams(self, hparams: dict) -> None:
        for logger in self.loggers:
            logger.hparams(hparams)

    def artifact(self, path: Path) -> None:
        for logger in self.loggers:
            logger.artifact(path)

    def flush(self) -> None:
        for logger in self.loggers:
            logger.flush()

    def close(self) -> None:
        for logger in self.loggers:
            logger.close()
