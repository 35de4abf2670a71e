"""The logger contract (`logger=`, configs/logger/): what every logger of a run is given and answers. A new logger is
one module here with a subclass and one yaml in configs/logger/ naming it by `_target_`; build.make_logger builds
whichever is chosen, with the run directory and, for a resumed run, the step from which earlier events are dropped.

Every option carries the settings of what a run logs, whatever it logs to: `n_images` per picture, pictures at
every `images_every`-th validation (and the last), the console's `progress_bar` and its validation line every
`log_every_epochs` epochs (the first and last too; vae-run.log has every epoch's).
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor


class RunLogger:
    """Scalars by step, pictures ((3, H, W) in [0, 1]; a PNG copy in the run directory when `png` is named), the
    run's hyper-parameters once, `flush` after each validation and `close` at the end."""

    def __init__(self, run_dir: Path, n_images: int, images_every: int, progress_bar: bool, log_every_epochs: int):
        self.run_dir = run_dir
        self.n_images = n_images
        self.images_every = images_every
        self.progress_bar = progress_bar
        self.log_every_epochs = log_every_epochs

    def scalars(self, values: dict[str, float], step: int) -> None:
        raise NotImplementedError

    def image(self, tag: str, img: Tensor, step: int, png: str | None = None) -> None:
        raise NotImplementedError

    def hparams(self, hparams: dict) -> None:
        raise NotImplementedError

    def artifact(self, path: Path) -> None:
        """A file of the run (metrics.json once written) for loggers that keep files (MLflow); others ignore it."""

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass
