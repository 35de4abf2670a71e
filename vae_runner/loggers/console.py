"""What a run says while it trains: one progress bar over all of training (on a terminal, or in a Jupyter notebook,
as tqdm's widget where ipywidgets is installed; never in a log file or a Slurm output), a line per validation in the
console and vae-run.log (epoch, training loss, validation ELBO with its reconstruction and KL, active units, seconds
per epoch, time left), and the end-of-run summary (with the imputation scores beside the baselines' where the run
imputed) and its warning on posterior collapse.
"""

from __future__ import annotations

import contextlib
import logging
import statistics
import sys
import time

from tqdm import tqdm

log = logging.getLogger("vae_runner")


def duration(seconds: float) -> str:
    """3 s, 4 min, 2.5 h."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@contextlib.contextmanager
def stage(name: str):
    """A stage of the final evaluation, said when it starts and how long it took when it ends (in vae-run.log; the
    console shows the summary at the end)."""
    log.info("final evaluation: %s ...", name, extra=FILE_ONLY)
    t0 = time.perf_counter()
    yield
    log.info("final evaluation: %s done in %s", name, duration(time.perf_counter() - t0), extra=FILE_ONLY)


FILE_ONLY = {"console": False}  # `extra` of a log record that goes to vae-run.log but not to the console


class ConsoleOnly(logging.Filter):
    """The console handler's filter (train.yaml hydra.job_logging): drops the records marked FILE_ONLY."""

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "console", True)


def shown_on_console(epoch: int, every: int, epochs: int) -> bool:
    """Whether epoch's validation line reaches the console (logger.log_every_epochs): every `every`-th epoch, the
    first and the last; vae-run.log has them all."""
    return epoch % every == 0 or epoch in (1, epochs)


def in_notebook() -> bool:
    """Whether this is a Jupyter kernel (IPython's ZMQ shell), where stderr is no terminal but a bar shows."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def progress_bar(**settings):
    """tqdm's bar for where the run is: the notebook widget in a kernel with ipywidgets, else the text bar."""
    if in_notebook():
        with contextlib.suppress(ImportError):
            import ipywidgets  # noqa: F401 - tqdm's notebook bar needs it, and only warns without it
            from tqdm.notebook import tqdm as notebook_tqdm

            return notebook_tqdm(**settings)
    return tqdm(**settings)


class Console:
    """The progress bar (steps over the whole run; resumes where a resumed run is) and the validation lines."""

    def __init__(self, epochs: int, steps_per_epoch: int, done_steps: int, enabled: bool, every: int):
        self.epochs = epochs
        self.every = every  # logger.log_every_epochs: the console's validation lines
        self.bar = progress_bar(
            total=epochs * steps_per_epoch,
            initial=done_steps,
            desc="training",
            unit="step",
            disable=not (enabled and (sys.stderr.isatty() or in_notebook())),
            dynamic_ncols=True,
        )

    def step(self) -> None:
        self.bar.update()

    def loss(self, value: float) -> None:
        self.bar.set_postfix(loss=f"{value:.2f}", refresh=False)

    def validation(self, epoch: int, metrics: dict, train_loss: float | None, epoch_times: list[float], d: int):
        seconds = statistics.median(epoch_times[-5:]) if epoch_times else None
        parts = [f"epoch {epoch}/{self.epochs}:"]
        if train_loss is not None:
            parts.append(f"train loss {train_loss:.2f},")
        parts.append(f"val ELBO {metrics['elbo']:.2f} (recon {metrics['recon']:.2f}, KL {metrics['kl']:.2f}),")
        if "imputation_ll" in metrics:  # trainer.monitor=imputation
            parts.append(f"held-out entries {metrics['imputation_ll']:.3f} nats each,")
        if "active_units" in metrics:
            parts.append(f"active units {metrics['active_units']:.0f}/{d},")
        if seconds is not None:
            parts.append(f"{seconds:.1f} s/epoch, {duration(seconds * (self.epochs - epoch))} left")
        shown = shown_on_console(epoch, self.every, self.epochs)  # every line goes to vae-run.log
        self.say(" ".join(parts).rstrip(","), extra=None if shown else FILE_ONLY)

    def say(self, line: str, level: int = logging.INFO, extra: dict | None = None) -> None:
        """A log line that does not break the progress bar."""
        self.bar.clear()
        log.log(level, line, extra=extra)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def summary(metrics: dict, run_dir, latent_dim: int) -> None:
    """The end-of-run lines: the numbers a researcher looks at first, where the run is, and a warning when the
    posterior collapsed (no active unit: the decoder ignores z)."""
    parts = [
        f"test ELBO {metrics['test/elbo']:.3f} nats (recon {metrics['test/recon']:.3f}, KL {metrics['test/kl']:.3f})"
    ]
    if "test/log_likelihood" in metrics:
        stderr, k = metrics["test/log_likelihood_stderr"], metrics["test/iw_samples"]
        parts.append(f"log-likelihood {metrics['test/log_likelihood']:.3f} +- {stderr:.3f} (K={k})")
    if "test/active_units" in metrics:
        parts.append(f"active units {metrics['test/active_units']}/{latent_dim}")
    if "test/mutual_information" in metrics:
        parts.append(f"mutual information {metrics['test/mutual_information']:.3f} nats")
    log.info("%s; val ELBO %.3f", "; ".join(parts), metrics["val/elbo"])
    for line in imputation_table(metrics):
        log.info(line)
    log.info("run directory: %s", run_dir)
    if metrics.get("test/active_units", 1) == 0:
        log.warning(
            "Posterior collapse: no latent dimension is active (KL %.3f nats): the decoder models the data "
            "without z, and samples and reconstructions ignore the input. Try a smaller beta, a KL warm-up "
            "(objective.warmup_epochs=10), free bits (objective.free_bits=0.5) or a smaller decoder.",
            metrics["test/kl"],
        )


IMPUTERS = ("", "_mice", "_mice_norm", "_missforest", "_knn", "_mean")  # metric suffixes: the VAE's, then baselines'


def imputation_table(metrics: dict) -> list[str]:
    """The imputation scores of the hidden test entries, the VAE beside each baseline, as console lines (nothing
    where the run imputed nothing)."""
    if "test/impute_rmse" not in metrics:
        return []
    entries, rows, draws = (metrics.get(f"test/impute_{k}", "?") for k in ("entries", "rows", "draws"))
    lines = [
        f"imputation of {entries} hidden test entries in {rows} rows (standardised units; M = {draws} draws; "
        f"metrics.json test/impute_*):",
        f"  {'imputer':<11}{'RMSE':>8}{'90% cover':>11}{'CRPS':>8}",
    ]
    for suffix in IMPUTERS:
        if f"test/impute_rmse{suffix}" not in metrics:
            continue
        cells = [metrics.get(f"test/impute_{k}{suffix}") for k in ("rmse", "coverage", "crps")]
        shown = [f"{v:>{w}.3f}" if v is not None else f"{'-':>{w}}" for v, w in zip(cells, (8, 11, 8))]
        lines.append(f"  {suffix.lstrip('_') or 'VAE':<11}{''.join(shown)}")
    return lines
