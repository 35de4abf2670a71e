"""A bounded wait for a sweep's Slurm jobs (a Hydra callback, registered in configs/train.yaml).

submitit's launcher learns that a job ended from the result file the job writes, or from `sacct`. Where the cluster
has no accounting, a job killed outright (kill -9, out of memory, a node failure, `scancel`) writes no result and
the sweep would wait for it forever. While a submitit_slurm sweep runs, a watcher thread looks every `interval_s` at
its jobs that have no result yet; one that `squeue` no longer lists on `misses` looks in a row (a requeued job stays
listed, as PENDING) gets a result file recording the failure, with the last state squeue showed, so the launcher
reports it and the sweep ends. The run directory keeps the job's last checkpoint: re-launching the sweep resumes it.
"""

from __future__ import annotations

import logging
import re
import subprocess
import threading
from pathlib import Path

from hydra.experimental.callback import Callback

from vae_runner.sweeps.launcher_checks import is_slurm_launcher

log = logging.getLogger("vae_runner")
JOB_DIR = re.compile(r"^\d+(_\d+)?$")  # .submitit/<job id>/ or .submitit/<array id>_<task>/


def squeue_state(job: str) -> str | None:
    """The job's state ("RUNNING", "PENDING", ...), "" when squeue no longer lists it, None when squeue fails."""
    try:
        done = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:  # an id Slurm has forgotten is an error too
        return "" if "Invalid job id" in done.stderr else None
    return done.stdout.strip()


class JobWatcher:
    def __init__(self, folder: Path, interval_s: float, misses: int):
        self.folder = folder
        self.interval_s = interval_s
        self.misses = misses
        self.stop = threading.Event()
        self.gone: dict[str, int] = {}
        self.seen: dict[str, str] = {}

    def look(self) -> None:
        """One look at every job of the sweep without a result."""
        for job_dir in sorted(p for p in self.folder.glob("*") if p.is_dir() and JOB_DIR.match(p.name)):
            job = job_dir.name
            result = job_dir / f"{job}_0_result.pkl"
            if result.exists() or not (job_dir / f"{job}_submitted.pkl").exists():
                continue
            state = squeue_state(job)
            if state is None:
                continue
            if state:
                self.seen[job], self.gone[job] = state, 0
                continue
            self.gone[job] = self.gone.get(job, 0) + 1
            if self.gone[job] >= self.misses and not result.exists():
                self.record_failure(job, result)

    def record_failure(self, job: str, result: Path) -> None:
        from submitit.core import utils

        message = (
            f"vae-run: Slurm job {job} left the queue without a result (last state seen: "
            f"{self.seen.get(job, 'none')}): killed outright (kill -9, out of memory), a node failure or scancel. "
            f"Its run directory keeps its last checkpoint; re-launch the sweep into the same directory to resume it."
        )
        log.warning(message)
        with utils.temporary_save_path(result) as tmp:
            utils.cloudpickle_dump(("error", message), tmp)

    def run(self) -> None:
        while not self.stop.wait(self.interval_s):
            self.look()


class WatchSlurmJobs(Callback):
    def __init__(self, interval_s: float, misses: int):
        self.interval_s = interval_s
        self.misses = misses
        self.watcher: JobWatcher | None = None

    def __getstate__(self) -> dict:  # the launcher pickles its callbacks into every job: not the thread's state
        return {"interval_s": self.interval_s, "misses": self.misses, "watcher": None}

    def on_multirun_start(self, config, **kwargs) -> None:
        if not is_slurm_launcher(config.hydra.launcher):
            return  # submitit_local's jobs are processes of this machine: submitit sees them end
        folder = Path(str(config.hydra.launcher.submitit_folder).replace("%j", "")).resolve()
        self.watcher = JobWatcher(folder, self.interval_s, self.misses)
        threading.Thread(target=self.watcher.run, name="vae-run slurm watch", daemon=True).start()

    def on_multirun_end(self, config, **kwargs) -> None:
        if self.watcher:
            self.watcher.stop.set()
