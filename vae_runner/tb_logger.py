"""The run's logger: TensorBoard scalars, images and HParams written into the run directory itself, plus PNG copies
of every picture, so the runs of a sweep line up side by side in TensorBoard."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor
from torchvision.utils import save_image

from vae_runner.config.plain import flatten, plain


class RunLogger:
    def __init__(self, run_dir: Path, enabled: bool = True, purge_step: int | None = None):
        self.run_dir = run_dir
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step: a resumed run drops events logged after its checkpoint, so curves do not double back.
            self.writer = SummaryWriter(log_dir=str(run_dir), purge_step=purge_step)

    def scalars(self, values: dict[str, float], step: int) -> None:
        if self.writer:
            for tag, v in values.items():
                self.writer.add_scalar(tag, v, step)

    def image(self, tag: str, img: Tensor, step: int, png: str | None = None) -> None:
        """img: (3, H, W) in [0, 1]; also saved as <run dir>/<png> when a file name is given."""
        if self.writer:
            self.writer.add_image(tag, img, step)
        if png:
            save_image(img, self.run_dir / png)

    def hparams(self, hparams: dict, metric_tags: list[str]) -> None:
        """Declare the run's hyper-parameters and which scalar tags are its metrics (HParams plugin).

        Written into this run's own event file (SummaryWriter.add_hparams would open a sub-folder per call)."""
        if not self.writer:
            return
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        exp, ssi, sei = hparams_summary(hparams, {tag: 0.0 for tag in metric_tags})
        for s in (exp, ssi, sei):
            self.writer.file_writer.add_summary(s)

    def flush(self) -> None:
        if self.writer:
            self.writer.flush()

    def close(self) -> None:
        if self.writer:
            self.writer.close()


def hparams_of(cfg) -> dict:
    """The run's hyper-parameters as flat key -> int/float/str/bool (HParams plugin)."""
    values = plain(cfg)
    for k in ("mode", "ckpt", "resume", "logger"):
        values.pop(k, None)
    hparams = {}
    for key, v in flatten(values).items():
        if key.rsplit(".", 1)[-1] == "_target_":  # prior._target_ -> prior: the class name
            hparams[key.rsplit(".", 1)[0]] = str(v).rsplit(".", 1)[-1]
        else:
            hparams[key] = v if isinstance(v, (int, float, str, bool)) else str(v)
    return hparams
