"""The training loop: Adam over index batches, running metrics read from the device every `log_every` steps,
validation every `eval_every` epochs (pictures every `images_every`), and checkpoints when training/cadence.py
says (every `checkpoint_every_s` seconds of training, at the end, on a stop signal; written on a background thread).
The step runs the networks in `trainer.precision` (`VAE.precision`: bf16 autocast for the encoder and decoder only)
and never waits for the device: loss terms, gradient norm and their non-finite checks stay there between reads.

Faults: a loss term or the gradient norm that goes non-finite is caught on the device (no per-step sync) and stops
the run at the next sync with the step and the term, before any checkpoint is written from the bad state. A stop
signal (SIGINT, SIGTERM, the preemption signal USR2: host/signals.py) finishes the current step, writes `last.pt` (with
the position inside the epoch, so the resumed run is the uninterrupted one, bit for bit on CPU) and stops with
`Interrupted`, or under submitit hands over to its requeue; only a second Ctrl-C stops without the checkpoint.
"""

from __future__ import annotations

import logging
import math
import signal
import time
from collections.abc import Callable
from pathlib import Path

import torch

from vae_runner.config.overrides import shell_override
from vae_runner.data import TrainBatches
from vae_runner.errors import UserError
from vae_runner.host.cpu_features import chosen_precision
from vae_runner.host.signals import Interrupted, StopRequest, requeue_if_launcher_can, stop_signals_to
from vae_runner.loggers.console import Console
from vae_runner.runs.checkpoint import rng_state, training_state
from vae_runner.runs.directory import CHECKPOINTS, LAST
from vae_runner.training.cadence import RunCheckpoints
from vae_runner.training.step_metrics import RunningWindow, grad_norm

CAUSES = (
    "Usual causes: a learning rate too high (lower trainer.lr or set trainer.grad_clip), a likelihood sigma "
    "too small (likelihood.sigma / likelihood.min_sigma), or data outside the likelihood's range."
)
log = logging.getLogger("vae_runner")


def warmup_outlasts_training(full_weight_epoch: int, epochs: int) -> str | None:
    """The warning for a KL warm-up that ends after the last epoch (None where it ends in time)."""
    if full_weight_epoch <= epochs:
        return None
    return (
        f"The KL warm-up reaches the full KL weight only in epoch {full_weight_epoch}, after the last of "
        f"trainer.epochs={epochs}: the whole run trains on a down-weighted KL, so its model is not the one the "
        f"objective describes, and early stopping never starts counting. Train "
        f"longer (trainer.epochs={full_weight_epoch} or more) or warm up for less (objective.warmup_epochs)."
    )


# trainer.monitor -> the validation metric it reads
MONITORED = {"elbo": "elbo", "iwae": "iwae", "imputation": "imputation_ll"}


def patience_exhausted(patience: int | None, epoch: int, best_epoch: int, full_weight_epoch: int) -> bool:
    """`patience` (trainer.early_stopping) epochs without a better validation score (trainer.monitor) than
    `best_epoch`'s, not counting epochs before the first one trained at the full KL weight; never with patience None."""
    return bool(patience) and epoch - max(best_epoch, full_weight_epoch - 1) >= patience


class Trainer:
    def __init__(
        self,
        model,
        objective,
        optimizer,
        data,
        cfg,
        logger,
        run_dir: Path,
        config: dict,  # config: saved in checkpoints
        validation: Callable[[], dict[str, float]],  # the validation split's terms (evaluation/metrics.py)
        pictures: Callable[[int], None] | None = None,  # draws the pictures at a step (evaluation/pictures.py)
    ):
        self.model = model
        self.objective = objective
        self.optimizer = optimizer
        self.data = data
        self.cfg = cfg
        self.logger = logger
        self.config = config
        self.ckpt_dir = run_dir / CHECKPOINTS
        self.validation = validation
        self.pictures = pictures
        self.checkpoints = RunCheckpoints(self.ckpt_dir, cfg.checkpoint_every_s)
        self.batches = TrainBatches(
            data.train, cfg.batch_size, dynamic=data.binarize == "dynamic", limit=cfg.limit_batches
        )
        self.params = [p for p in model.parameters() if p.requires_grad]
        # Early stopping counts epochs without a better validation ELBO from the end of KL warm-up on (a warm-up
        # epoch optimises another objective; the reference code holds its counter at zero there too).
        self.full_weight_epoch = objective.first_full_weight_epoch(len(self.batches))
        if warning := warmup_outlasts_training(self.full_weight_epoch, cfg.epochs):
            log.warning(warning)
        self.device = data.train.x.device
        # Read once: per-step reads of a DictConfig cost more than a small step's arithmetic.
        self.precision = chosen_precision(cfg.precision, self.device)  # auto: bf16 where it is native
        self.grad_clip = cfg.grad_clip
        self.log_every = cfg.log_every
        self.epoch = 0
        self.global_step = 0
        self.best_val_elbo = -math.inf
        self.best_epoch = 0
        self.perm = None  # the current epoch's order
        self.batch_index = 0  # and the position in it
        # Training seconds of each whole epoch in every session (checkpointed); not an epoch resumed in its middle.
        self.epoch_times: list[float] = []
        self.stop = StopRequest()  # a stop signal, acted on after the current step
        self.last_train_loss: float | None = None  # the latest logging window's mean loss
        every = logger.log_every_epochs
        self.console = Console(cfg.epochs, len(self.batches), 0, False, every)  # fit() makes the visible one
        self.earlier_train_time = 0.0  # the run's earlier sessions' training time
        self.session = (None, None)  # this session's start and end (perf_counter)
        self.steps_time = 0.0  # seconds inside train_epoch (steps, running metrics; no validation), every session

    @property
    def train_time(self) -> float:
        """Seconds spent in fit() over every session of the run (a resumed run adds to the earlier ones); the clock
        stops before the final checkpoint's snapshot, so the time reported is the time stored."""
        start, stop = self.session
        return self.earlier_train_time + ((stop or time.perf_counter()) - start if start else 0.0)

    def load_state(self, state: dict) -> None:
        self.earlier_train_time = state.get("train_time_s", 0.0)
        self.steps_time = state.get("train_steps_s", 0.0)
        self.epoch_times = list(state.get("epoch_times_s", []))  # a checkpoint older than the key: this session's
        self.epoch = state["epoch"]
        self.global_step = state["global_step"]
        self.best_val_elbo = state["best_val_elbo"]
        self.best_epoch = state.get("best_epoch", self.epoch)
        self.perm = state.get("perm")
        self.batch_index = state.get("batch_index", 0)
        if self.perm is not None:
            self.perm = self.perm.to(self.data.train.x.device)

    def fit(self) -> None:
        steps = len(self.batches)
        done = self.epoch * steps + self.batch_index
        self.console = Console(self.cfg.epochs, steps, done, self.logger.progress_bar, self.logger.log_every_epochs)
        self.session = (time.perf_counter(), None)
        self.checkpoints.start()
        try:
            with stop_signals_to(self.stop) as self.handlers_before:
                self._fit()
                self.session = (self.session[0], time.perf_counter())
                self.checkpoints.write(self.state())  # the end of training (and any better model not written yet)
        finally:
            self.console.close()
            self.checkpoints.wait()  # what was handed to the writer lands, whatever stopped the loop

    def _fit(self) -> None:
        self.model.train()
        while self.epoch < self.cfg.epochs and not self.patience_exhausted():
            t0, whole = time.perf_counter(), self.batch_index == 0
            self.train_epoch()
            seconds = time.perf_counter() - t0  # train_epoch ends with a host sync (log_window)
            self.steps_time += seconds
            self.epoch_times += [seconds] if whole else []
            self.epoch += 1
            if self.epoch % self.cfg.eval_every == 0 or self.epoch == self.cfg.epochs:
                if self.validate():
                    self.checkpoints.keep_best(self.state())
            if self.patience_exhausted():
                log.info(
                    "early stopping after epoch %d: no better validation ELBO for %d epochs",
                    self.epoch,
                    self.cfg.early_stopping,
                )
            elif self.epoch < self.cfg.epochs and self.checkpoints.due():
                self.checkpoints.write(self.state())  # (the last epoch's is written after the loop)

    def patience_exhausted(self) -> bool:
        return patience_exhausted(self.cfg.early_stopping, self.epoch, self.best_epoch, self.full_weight_epoch)

    def train_epoch(self) -> None:
        if self.perm is None:
            self.perm = self.batches.permutation()
            self.batch_index = 0
        batches = self.batches.iterate(self.perm, start=self.batch_index)
        window = RunningWindow()
        for x, y in batches:
            progress = (self.epoch + self.batch_index / len(self.batches), self.global_step)  # for warm-up
            with self.model.precision(self.precision):
                terms = self.objective(self.model, x, y, progress=progress)
            self.optimizer.zero_grad(set_to_none=True)
            terms["loss"].mean().backward()
            if self.grad_clip:
                norm = torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip, foreach=True)
            else:
                norm = grad_norm(self.params)
            self.optimizer.step()
            self.global_step += 1
            self.batch_index += 1
            means = torch.cat([torch.stack([t.detach().mean() for t in terms.values()]), norm.detach()[None]])
            window.add([*terms, "grad_norm"], means, self.global_step, progress)
            self.console.step()
            if self.global_step % self.log_every == 0:
                self.console.loss(self.log_window(window)["train/loss"])
                window.restart()
            if self.stop.signum is not None:
                self.interrupt(window)
        if window.n:
            self.log_window(window)
        self.perm = None
        self.batch_index = 0

    def interrupt(self, window: RunningWindow) -> None:
        """After the step that followed a signal: check, checkpoint, stop."""
        if window.n:
            self.log_window(window)
        self.checkpoints.write(self.state())
        self.checkpoints.wait()
        self.logger.flush()
        name, run_dir = signal.Signals(self.stop.signum).name, self.ckpt_dir.parent
        where = f"after step {self.global_step} (epoch {self.epoch + 1}, batch {self.batch_index})"
        requeue_if_launcher_can(self.handlers_before, self.stop.signum, f"{where}: checkpoint written;")
        raise Interrupted(
            self.stop.signum,
            f"Stopped by {name} {where}; the checkpoint {self.ckpt_dir / LAST} holds it. Continue with: "
            f"vae-run {shell_override('resume', run_dir)}",
        )

    def log_window(self, window: RunningWindow) -> dict[str, float]:
        names, n = window.names, window.n
        values = {f"train/{k}": v / n for k, v in zip(names, window.sums.tolist())}  # one host sync per window
        steps = window.first_bad.tolist()
        if any(s >= 0 for s in steps):
            step = min(s for s in steps if s >= 0)
            culprits = [k for k, s in zip(names, steps) if s == step]
            self.checkpoints.keep_good_state()
            raise UserError(
                f"Training diverged at step {step} (epoch {self.epoch + 1}): {', '.join(culprits)} "
                f"became non-finite (NaN or inf). {CAUSES} Nothing was saved from the diverged state: "
                f"{self.checkpoints.last_good()}"
            )
        values.update({f"train/{k}": v for k, v in self.objective.scalars(window.progress).items()})
        self.logger.scalars(values, self.global_step)
        self.last_train_loss = values["train/loss"]
        return values

    def validate(self) -> bool:
        metrics = self.validation()
        if not math.isfinite(metrics["elbo"]):
            raise UserError(
                f"The validation ELBO is {metrics['elbo']} after epoch {self.epoch}: the model "
                f"diverged. {CAUSES} {self.checkpoints.keep_good_state() or self.checkpoints.last_good()}"
            )
        self.logger.scalars({f"val/{k}": v for k, v in metrics.items()}, self.global_step)
        self.console.validation(
            self.epoch, metrics, self.last_train_loss, self.epoch_times, self.model.prior.latent_dim
        )
        if self.pictures is not None and (self.epoch % self.logger.images_every == 0 or self.epoch == self.cfg.epochs):
            self.pictures(self.global_step)
        self.logger.flush()
        score = metrics[MONITORED[self.cfg.monitor]]  # best_val_elbo: the monitored score's best
        if score > self.best_val_elbo:
            self.best_val_elbo = score
            self.best_epoch = self.epoch
            return True
        return False

    def state(self) -> dict:
        """The run's state now, as a snapshot a checkpoint can be written from later."""
        timing = {"train_time_s": self.train_time, "train_steps_s": self.steps_time, "epoch_times_s": self.epoch_times}
        return training_state(
            self.model.state_dict(),
            self.optimizer.state_dict(),
            (self.epoch, self.global_step, self.batch_index),
            (self.best_val_elbo, self.best_epoch),
            rng_state(),
            self.perm,
            timing,
            self.config,
        )
