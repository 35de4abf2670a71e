"""Checks of a sweep's launcher settings at launch, before any job is queued (a Hydra callback, registered in
configs/train.yaml): the submitit settings whose combination silently loses work on a cluster.

- USR2 (`signal_delay_s` before the time limit) must come after the job starts: `timeout_min` * 60 must exceed
  `signal_delay_s`, else every job is warned at its start and times out over and over (refused).
- submitit counts a USR2 as a timeout once the job has run min(0.8 x timeout_min, timeout_min - 10) minutes, and
  requeues timeouts only `max_num_timeout` times (default 0): a run longer than `timeout_min` with
  max_num_timeout=0 stops at its first timeout (warned, with the fix)."""

from __future__ import annotations

import logging
import sys

from hydra.experimental.callback import Callback

log = logging.getLogger("vae_runner")


def is_slurm_launcher(launcher) -> bool:
    """hydra/launcher=submitit_slurm (a launcher config node, hydra.launcher)."""
    return str(launcher.get("_target_", "")).endswith("submitit_launcher.SlurmLauncher")


def launcher_problems(launcher) -> tuple[list[str], list[str]]:
    """(errors, warnings) for a launcher config node (hydra.launcher)."""
    if not is_slurm_launcher(launcher):
        return [], []
    errors, warnings = [], []
    timeout_min, delay = launcher.get("timeout_min"), launcher.get("signal_delay_s")
    if timeout_min is not None and delay is not None and timeout_min * 60 <= delay:
        errors.append(
            f"hydra.launcher.timeout_min={timeout_min} gives {timeout_min * 60} s, not more than "
            f"hydra.launcher.signal_delay_s={delay}: Slurm would send the timeout warning (USR2) at the start of every "
            f"job, and each would be stopped and requeued until it runs out of requeues. Raise timeout_min (the "
            f"job's time limit, minutes) or lower signal_delay_s (seconds before the limit that USR2 comes)."
        )
    if launcher.get("max_num_timeout", 0) == 0:
        warnings.append(
            f"hydra.launcher.max_num_timeout=0: a run still training when its {timeout_min}-minute limit nears is "
            f"checkpointed but not requeued (submitit requeues preemptions always, timeouts only max_num_timeout "
            f"times); set it to about (training time / timeout_min) + 1, or re-launch the sweep to resume."
        )
    return errors, warnings


class CheckLauncher(Callback):
    def on_multirun_start(self, config, **kwargs) -> None:
        errors, warnings = launcher_problems(config.hydra.launcher)
        for warning in warnings:
            log.warning(warning)
        if errors:
            print(f"vae-run: error: {' '.join(errors)}", file=sys.stderr)
            sys.exit(2)
