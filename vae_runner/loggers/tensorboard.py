"""`logger=tensorboard`: TensorBoard scalars, images and HParams written into the run directory itself, plus PNG
copies of every picture, so the runs of a sweep line up side by side in TensorBoard; and a Custom Scalars layout
(LAYOUT) that puts each quantity's training and validation curves in one chart."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from vae_runner.loggers.base import RunLogger
from vae_runner.loggers.png import save_png

# TensorBoard's Custom Scalars tab: category -> chart -> the tags (regular expressions) drawn together.
LAYOUT = {
    "ELBO and its terms (train, val)": {
        "ELBO": ["Multiline", [r"^(train|val)/elbo$"]],
        "reconstruction": ["Multiline", [r"^(train|val)/recon$"]],
        "KL": ["Multiline", [r"^(train|val)/kl$"]],
        "loss (what is optimised)": ["Multiline", [r"^(train|val)/loss$"]],
    },
    "latent space and optimisation": {
        "active units (val)": ["Multiline", [r"^val/active_units$"]],
        "KL weight": ["Multiline", [r"^train/beta$"]],
        "gradient norm": ["Multiline", [r"^train/grad_norm$"]],
    },
    "final test numbers": {
        "ELBO and log-likelihood": ["Multiline", [r"^test/(elbo|log_likelihood)$"]],
    },
}


class TensorBoardLogger(RunLogger):
    """`tensorboard`: write the event files (false: the PNG copies only)."""

    def __init__(self, run_dir: Path, tensorboard: bool, purge_step=None, **settings):
        super().__init__(run_dir, **settings)  # what every logger is given (loggers/base.py)
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step: a resumed run drops events logged after its checkpoint, so curves do not double back.
            self.writer = SummaryWriter(log_dir=str(run_dir), purge_step=purge_step)
            if purge_step is None:  # a resumed run has it already
                self.writer.add_custom_scalars(LAYOUT)

    def scalars(self, values: dict[str, float], step: int) -> None:
        if self.writer:
            for tag, v in values.items():
                self.writer.add_scalar(tag, v, step)

    def image(self, tag: str, img: Tensor, step: int, png: str | None = None) -> None:
        """img: (3, H, W) in [0, 1]; also saved as <run dir>/<png> when a file name is given."""
        if self.writer:
            self.writer.add_image(tag, img, step)
        if png:
            save_png(img, self.run_dir / png)

    def hparams(self, hparams: dict) -> None:
        """The run's hyper-parameters for the HParams tab, written into this run's own event file
        (SummaryWriter.add_hparams would open a sub-folder per call).

        Only the session's start and end, no experiment summary: TensorBoard expects one experiment per logdir and
        picks an arbitrary run's when each run writes one (so a sweep mixing priors lost the columns of the others).
        Without one it builds the experiment from all runs, marks the hyper-parameters whose values differ, lists
        those first and shows the first five: a sweep's swept keys lead, its constants stay hidden."""
        if not self.writer:
            return
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        _, session_start, session_end = hparams_summary(hparams, {})
        for s in (session_start, session_end):
            self.writer.file_writer.add_summary(s)

    def flush(self) -> None:
        if self.writer:
            self.writer.flush()

    def close(self) -> None:
        if self.writer:
            self.writer.close()
