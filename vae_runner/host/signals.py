"""Stopping a run by signal: `Interrupted` (what vae-run turns into one line and exit status 128 + signal) and
`stop_signals_to`, which gives the stop signals to a handler for the length of a block (a training loop's
`StopRequest`, which has it checkpoint first; the final evaluation's, which says how to finish).

The stop signals: SIGINT (Ctrl-C), SIGTERM (a scheduler's stop, a preemption in CANCEL mode, the start of a
partition's GraceTime) and the preemption/timeout signal a scheduler sends ahead of time (SIGUSR2, or what
SUBMITIT_PREEMPT_SIGNAL names). Under submitit (hydra/launcher=submitit_slurm or _local), whose own handler of that
signal requeues the job, the run checkpoints first and then hands the signal over (`requeue_handler`): the job is
requeued, where vae-run alone would have exited and left a FAILED job that nothing restarts."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import threading

log = logging.getLogger("vae_runner")


class Interrupted(Exception):
    """A stop signal stopped the run; the message says what was kept and the command that goes on."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum


class StopRequest:
    """A training loop's stop-signal handler: the first signal is recorded in `signum`, for the loop to act on after
    its current step (checkpoint, then stop); Ctrl-C again stops at once, without the checkpoint. Any other repeat is
    a scheduler repeating itself (a real preemption sends SIGTERM twice within milliseconds): the checkpoint goes on."""

    def __init__(self):
        self.signum: int | None = None

    def __call__(self, signum, frame) -> None:
        if self.signum is None:
            self.signum = signum
        elif signum == signal.SIGINT:
            raise KeyboardInterrupt


def preemption_signal() -> signal.Signals:
    """The signal sent ahead of a timeout or preemption: submitit's SUBMITIT_PREEMPT_SIGNAL (default USR2)."""
    name = os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2").upper()
    return signal.Signals[name if name.startswith("SIG") else "SIG" + name]


def stop_signals() -> tuple[signal.Signals, ...]:
    return tuple(dict.fromkeys((signal.SIGINT, signal.SIGTERM, preemption_signal())))


@contextlib.contextmanager
def stop_signals_to(handler):
    """The stop signals go to `handler` inside the block, and back to what they were after it (where signals can be
    handled at all: in the main thread). Yields the handlers that were there before (signal -> handler)."""
    if threading.current_thread() is not threading.main_thread():
        yield {}
        return
    before = {s: signal.signal(s, handler) for s in stop_signals()}
    try:
        yield before
    finally:
        for s, h in before.items():
            signal.signal(s, h)


def requeue_handler(before: dict, signum: int):
    """The handler to hand `signum` over to once the run has checkpointed, or None: whoever handled the preemption
    signal before vae-run took it (submitit: checkpoint_and_try_requeue, which requeues the job and exits). A
    SIGTERM under submitit goes to the same handler (submitit itself only logs a SIGTERM, so a job preempted in
    CANCEL mode, or stopped at the start of a GraceTime, would end FAILED and never come back)."""
    previous = before.get(preemption_signal())
    if not callable(previous):  # SIG_DFL, SIG_IGN, None: nobody to hand over to
        return None
    if signum == preemption_signal() or (signum == signal.SIGTERM and os.environ.get("SUBMITIT_EXECUTOR")):
        return previous
    return None


def requeue_if_launcher_can(before: dict, signum: int, where: str) -> None:
    """Under submitit (`requeue_handler`): say so, naming the signal and `where` the run stopped, and hand over;
    returns only where no requeue happens (not under submitit, or submitit declined)."""
    if requeue := requeue_handler(before, signum):
        name = signal.Signals(signum).name
        log.warning("%s %s handing over to the launcher (submitit) to requeue the job", name, where)
        hand_over(requeue, name)


def hand_over(requeue, name: str) -> None:
    """Give the preemption signal to `requeue` (submitit's handler: requeues the job and exits). Where its requeue
    fails because Slurm has requeued the job already (`scontrol requeue`, a REQUEUE-mode preemption), exit as a
    requeued job does, without recording an end the launcher would take as final. Where submitit declines ("timed-out
    too many times": max_num_timeout) the caller goes on to stop with `Interrupted`, which says how to continue."""
    try:
        requeue(preemption_signal(), None)
    except Exception as err:  # noqa: BLE001 - submitit's UncompletedJobError, or scontrol's CalledProcessError
        if slurm_requeued_already():
            log.warning("%s: Slurm has requeued this job already; the requeued job resumes from the checkpoint", name)
            raise SystemExit(-1) from None
        log.warning("%s: submitit did not requeue the job (%s)", name, err)


def slurm_requeued_already() -> bool:
    """Slurm has requeued this job since this process started: its restart count (`scontrol show job`) is past the
    one the process started with (SLURM_RESTART_COUNT). While a requeued job is being stopped its state reads
    COMPLETING, as a cancelled one's does; the restart count tells them apart."""
    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        return False
    try:
        shown = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    restarts = re.search(r"\bRestarts=(\d+)", shown.stdout)
    return restarts is not None and int(restarts.group(1)) > int(os.environ.get("SLURM_RESTART_COUNT") or 0)
