"""Train a stack of sweep members (batched_training.Stack) and write each member's run directory as its own run
would: TensorBoard scalars (train/ every `log_every` steps, val/ every `eval_every` epochs), pictures every
`images_every` epochs, HParams, a log line per validation in its vae-run.log, and checkpoints (`last.pt`, `best.pt`,
every `checkpoint_every_s` seconds and at the end) in the standalone format, so `resume`, `mode=eval` and the final
evaluation treat a member exactly as a run that trained alone. Early stopping is per member, and a member whose
loss or gradient goes non-finite leaves the stack at once (its last good checkpoint stays; the final pass then
reports the divergence as for any run). The final evaluation is not done here: the launcher runs each member's own
job afterwards, which finds the trained run and evaluates it (stacking/launcher.py).
"""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path

import torch

from vae_runner import build
from vae_runner.errors import UserError
from vae_runner.evaluation.pictures import log_pictures
from vae_runner.host import threads
from vae_runner.host.signals import Interrupted, StopRequest, stop_signals_to
from vae_runner.loggers.console import FILE_ONLY, shown_on_console
from vae_runner.runs.checkpoint import training_state
from vae_runner.runs.directory import CHECKPOINTS
from vae_runner.runs.saved_config import config_record
from vae_runner.stacking.metrics import evaluate_members
from vae_runner.stacking.model import member_state_dict
from vae_runner.stacking.stack import Stack
from vae_runner.training.cadence import RunCheckpoints
from vae_runner.training.trainer import patience_exhausted, warmup_outlasts_training

log = logging.getLogger("vae_runner")


class Member:
    """One member's run: its config, directory, logger, checkpoints and best validation ELBO."""

    def __init__(self, cfg, run_dir: Path, steps_per_epoch: int, objective):
        self.cfg = cfg
        self.run_dir = run_dir
        if cfg.trainer.monitor != "elbo":
            raise UserError(
                f"{run_dir}: hydra/launcher=batched keeps best.pt by the validation ELBO only; a sweep with "
                f"trainer.monitor={cfg.trainer.monitor} runs with the basic or joblib launcher (hydra/launcher=joblib)."
            )
        run_dir.mkdir(parents=True, exist_ok=True)
        self.logger = build.make_logger(cfg, run_dir)
        self.checkpoints = RunCheckpoints(run_dir / CHECKPOINTS, cfg.trainer.checkpoint_every_s)
        self.best_val_elbo = -float("inf")
        self.best_epoch = 0
        self.full_weight_epoch = objective.first_full_weight_epoch(steps_per_epoch)
        if warning := warmup_outlasts_training(self.full_weight_epoch, cfg.trainer.epochs):
            log.warning("%s: %s", run_dir, warning)
        self.config = config_record(cfg)
        self.file_log = logging.getLogger(f"vae_runner.member.{run_dir}")
        self.file_log.propagate = False
        handler = logging.FileHandler(run_dir / "vae-run.log")
        handler.setFormatter(logging.Formatter("[%(asctime)s][vae_runner][%(levelname)s] - %(message)s"))
        self.file_log.addHandler(handler)

    def patience_exhausted(self, epoch: int) -> bool:
        return patience_exhausted(self.cfg.trainer.early_stopping, epoch, self.best_epoch, self.full_weight_epoch)

    def close(self) -> None:
        self.checkpoints.wait()
        self.logger.close()
        for handler in self.file_log.handlers:
            handler.close()
        self.file_log.handlers.clear()


def train_stack(cfgs, run_dirs: list[Path]) -> None:
    """Train the members `cfgs` (one stack_key) together, each writing into its run directory."""
    stack = Stack(cfgs)
    cfg = cfgs[0]
    set_stack_threads(stack, cfg)
    steps = len(stack.batches.batches)
    members = [Member(c, d, steps, o) for c, d, o in zip(cfgs, run_dirs, stack.objectives)]
    log.info("training %d runs as one stack (%s)", len(members), ", ".join(str(d) for d in run_dirs))
    for member in members:
        member.file_log.info("training as one of a stack of %d runs (hydra/launcher=batched)", len(members))
    start, stop = time.perf_counter(), StopRequest()
    try:
        with stop_signals_to(stop):
            train_epochs(stack, members, stop, start)
    finally:
        for member in members:
            member.close()


def train_epochs(stack: Stack, members: list[Member], stop: StopRequest, start: float) -> None:
    cfg, steps_time = members[0].cfg, 0.0
    for epoch in range(1, cfg.trainer.epochs + 1):
        t0 = time.perf_counter()
        train_epoch(stack, members, stop)
        steps_time += time.perf_counter() - t0
        if stop.signum is not None:
            interrupt(
                stack, members, stop.signum, {"train_time_s": time.perf_counter() - start, "train_steps_s": steps_time}
            )
        if not stack.alive:
            break
        if epoch % cfg.trainer.eval_every == 0 or epoch == cfg.trainer.epochs:
            validate(stack, members, epoch)
        timing = {"train_time_s": time.perf_counter() - start, "train_steps_s": steps_time}
        stopping = [i for i, m in enumerate(stack.alive) if members[m].patience_exhausted(epoch)]
        due = members[stack.alive[0]].checkpoints.due()
        for i, m in enumerate(stack.alive):
            if epoch == cfg.trainer.epochs or i in stopping or due:
                members[m].checkpoints.write(member_state(stack, i, members[m], timing))
        for i in stopping:
            members[stack.alive[i]].file_log.info("early stopping after epoch %d (batched)", epoch)
        if stopping:
            stack.drop(stopping)
        if not stack.alive:
            break


def interrupt(stack: Stack, members: list[Member], signum: int, timing: dict) -> None:
    """After the step that followed a stop signal: every member's checkpoint, on disk, then stop. After an epoch's
    last step the checkpoint says so as a standalone run's does (that epoch, all its batches done, its validation
    not), so the run validates it when it goes on."""
    n = len(stack.batches.batches)
    position = (stack.epoch - 1, n) if stack.step_in_epoch == 0 else None
    for i, m in enumerate(stack.alive):
        members[m].checkpoints.write(member_state(stack, i, members[m], timing, position))
    for member in members:
        member.checkpoints.wait()
    name = signal.Signals(signum).name
    raise Interrupted(
        signum,
        f"Stopped by {name} after step {stack.global_step} of the stack (epoch {stack.epoch + 1}, batch "
        f"{stack.step_in_epoch}); each run's checkpoints/last.pt holds it. Re-launch the same sweep to continue: each "
        f"run goes on from its checkpoint (alone, not as a stack) as it would have.",
    )


def train_epoch(stack: Stack, members: list[Member], stop: StopRequest) -> None:
    """One epoch of every member in the stack; the train/ scalars every log_every steps; diverged members out."""
    sums = None
    bad = None
    n = 0
    log_every = members[0].cfg.trainer.log_every
    for x, noise in stack.batches.epoch():
        terms, norms = stack.step(x, noise)
        means = torch.cat([torch.stack([t.detach().mean(-1) for t in terms.values()], 1), norms.detach()[:, None]], 1)
        step_bad = stack.nonfinite(terms, norms)
        sums, bad, n = (means, step_bad, 1) if sums is None else (sums + means, bad | step_bad, n + 1)
        if stack.global_step % log_every == 0:
            flush(stack, members, [*terms, "grad_norm"], sums / n, bad)
            sums = None
            bad = None
            n = 0
            if not stack.alive:
                return
        if stop.signum is not None:  # a stop signal: the caller checkpoints every member here, inside the epoch
            break
    if sums is not None:
        flush(stack, members, [*terms, "grad_norm"], sums / n, bad)


def flush(stack: Stack, members: list[Member], names: list[str], means: torch.Tensor, bad: torch.Tensor) -> None:
    """One host sync: each member's running means to its TensorBoard; members gone non-finite leave the stack."""
    progress = (stack.epoch, stack.global_step)
    diverged = [i for i, b in enumerate(bad.tolist()) if b]
    for i, (m, row) in enumerate(zip(list(stack.alive), means.tolist())):
        member = members[m]
        if i in diverged:
            member.file_log.error(
                "training diverged by step %d: a loss term or the gradient became non-finite; the run left the "
                "stack and its last good checkpoint stays (the final pass reports it)",
                stack.global_step,
            )
            continue
        values = {f"train/{k}": v for k, v in zip(names, row)}
        values["train/beta"] = stack.objectives[i].kl_weight(progress)
        member.logger.scalars(values, stack.global_step)
    if diverged:
        stack.drop(diverged)


def validate(stack: Stack, members: list[Member], epoch: int) -> None:
    """Each member's validation split, as its own run validates: val/ scalars, the best model kept, pictures."""
    cfg, alive = members[0].cfg, list(stack.alive)
    betas = torch.tensor([[o.kl_weight(None)] for o in stack.objectives], device=stack.device)
    seeds = [members[m].cfg.seed for m in alive]
    all_metrics = evaluate_members(
        stack.model,
        stack.objectives[0],
        betas,
        stack.data.val,
        cfg.trainer.eval_batch_size,
        seeds,
        cfg.evaluation.active_threshold,
    )
    for i, (m, metrics) in enumerate(zip(alive, all_metrics)):
        member = members[m]
        member.logger.scalars({f"val/{k}": v for k, v in metrics.items()}, stack.global_step)
        member.file_log.info(
            "epoch %d/%d: val ELBO %.2f (recon %.2f, KL %.2f), active units %d (batched)",
            epoch,
            cfg.trainer.epochs,
            metrics["elbo"],
            metrics["recon"],
            metrics["kl"],
            metrics["active_units"],
        )
        if epoch % member.logger.images_every == 0 or epoch == cfg.trainer.epochs:
            model = stack.models[m]
            model.load_state_dict(member_state_dict(stack.model, i))
            log_pictures(model, stack.data, member.logger, member.logger.n_images, stack.global_step, member.cfg.seed)
        if metrics["elbo"] > member.best_val_elbo:
            member.best_val_elbo = metrics["elbo"]
            member.best_epoch = epoch
            member.checkpoints.keep_best(member_state(stack, i, member, {}))
        member.logger.flush()
    line = " | ".join(f"{metrics['elbo']:.2f}" for metrics in all_metrics)
    shown = shown_on_console(epoch, members[0].logger.log_every_epochs, cfg.trainer.epochs)  # as a run's line
    log.info("epoch %d/%d: val ELBO per run %s", epoch, cfg.trainer.epochs, line, extra=None if shown else FILE_ONLY)


def member_state(stack: Stack, i: int, member: Member, timing: dict, position: tuple[int, int] | None = None) -> dict:
    """Member i's checkpoint now (at the end of an epoch, or after a step inside one), in the standalone format
    (Trainer.state): run alone from it, the member goes on as its own run would."""
    epoch, batch_index = position or (stack.epoch, stack.step_in_epoch)  # position: (epochs done, batches done)
    stream = stack.batches.streams.states[i]
    rng = {"torch": stream["cpu"], **({"cuda": [stream["cuda"]]} if "cuda" in stream else {})}
    return training_state(
        member_state_dict(stack.model, i),
        stack.optimizer.member_state(stack.model, i),
        (epoch, stack.global_step, batch_index),
        (member.best_val_elbo, member.best_epoch),
        rng,
        stack.batches.perms[i] if batch_index else None,
        timing,
        member.config,
        stacked=len(stack.models),  # trained as one of this many runs (run.py says so when it finishes the run)
    )


def set_stack_threads(stack: Stack, cfg) -> None:
    """torch's threads for the stack's step (as build.set_threads for one run's, the work the whole stack's)."""

    def step_macs() -> float:
        rows = cfg.trainer.batch_size
        x = stack.data.train.floats(slice(0, rows)).expand(len(stack.alive), rows, *stack.data.shape)
        return threads.step_macs(stack.model, stack.objectives[0], x)

    if line := threads.use_threads(cfg.trainer.num_threads, stack.device, step_macs, "the stack"):
        log.info(line)
