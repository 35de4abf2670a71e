"""`vae-run`: the thin Hydra entry point. It composes `configs/train.yaml` (shipped as package data), hands the
config to `run.run`, and returns the validation ELBO so Hydra sweepers can optimise it. Bad input (`UserError`)
is printed as one paragraph with exit status 2, never as a traceback; so is a command line that does not compose
(config/command_line.py checks it before Hydra starts)."""

from __future__ import annotations

import logging
import os
import shutil
import sys
from datetime import datetime
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException, InstantiationException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from vae_runner.config.schema import register_configs
from vae_runner.errors import UserError
from vae_runner.runs.directory import continues_in_place, run_dir_of
from vae_runner.sweeps.names import job_name


def _resume_run_dir(resume, default: str) -> str:
    """hydra.run.dir: a resumed run goes on in its own run directory (from best.pt or another checkpoint than the
    last: a new one, see rundir.continues_in_place)."""
    if resume and Path(str(resume)).expanduser().exists() and continues_in_place(resume):
        return str(run_dir_of(resume))
    return default


def _hydra_subdir(resume) -> str:
    """hydra.output_subdir: a resumed run keeps the original .hydra/ files and adds its own beside them."""
    return f".hydra/resume-{datetime.now():%Y%m%d-%H%M%S}" if resume else ".hydra"


def register_resolvers() -> None:
    OmegaConf.register_new_resolver("vae_run_dir", _resume_run_dir, replace=True)
    OmegaConf.register_new_resolver("vae_hydra_subdir", _hydra_subdir, replace=True)
    OmegaConf.register_new_resolver("vae_job_name", job_name, replace=True)


class RunFailed(CompactHydraException):
    """A sweep job that stopped on bad input: the sweep records it as failed and goes on with the other jobs; at
    the end Hydra prints this one paragraph (a CompactHydraException: no traceback) and exits 1."""


def shared_cpu_threads(hc) -> int | None:
    """Torch threads per run when Hydra's joblib launcher runs several runs at once on this machine's cores."""
    launcher = str(hc.launcher.get("_target_", ""))
    if "joblib" not in launcher.lower():
        return None
    n_jobs = hc.launcher.get("n_jobs") or -1
    cores = os.cpu_count() or 1
    return 1 if n_jobs < 0 else max(1, cores // n_jobs)


def task(cfg: DictConfig) -> float:
    from vae_runner import run  # heavy imports (torch) after Hydra has parsed the command line

    hc = HydraConfig.get()
    if cfg.trainer.num_threads is None and (threads := shared_cpu_threads(hc)):
        cfg.trainer.num_threads = threads
    from vae_runner.host.signals import Interrupted

    try:
        return run.run(cfg, Path(hc.runtime.output_dir), list(hc.overrides.task))
    except Interrupted as stop:
        print(f"vae-run: {stop}", file=sys.stderr)
        if os.environ.get("SUBMITIT_EXECUTOR"):  # an exception, so submitit records the job's end: its launcher
            raise RunFailed(f"vae-run: {stop}") from None  # waits for that record, forever without accounting
        sys.exit(128 + stop.signum)
    except Exception as err:
        message = user_message(err)
        if message is None:
            raise
        print(f"vae-run: error: {message}", file=sys.stderr)
        if hc.mode == RunMode.MULTIRUN:
            raise RunFailed(
                f"vae-run: sweep job {hc.job.num} stopped on bad input (every failed job's error is printed above): "
                f"{message} The sweep's other jobs ran; "
                f"after fixing the command, re-launch it: finished runs are skipped. vae-report "
                f"{Path(hc.sweep.dir).resolve()} lists which finished."
            ) from None
        remove_if_unused(Path(hc.runtime.output_dir))
        sys.exit(2)


def remove_if_unused(run_dir: Path) -> None:
    """A run refused before it wrote anything leaves no directory behind: only Hydra's .hydra/ and the log, which
    holds the message just printed (a resumed run's directory holds its checkpoints, and stays)."""
    if not run_dir.is_dir() or any(p.name not in (".hydra", "vae-run.log") for p in run_dir.iterdir()):
        return
    logging.shutdown()  # close the log file before it goes
    shutil.rmtree(run_dir, ignore_errors=True)
    for parent in run_dir.parents:  # outputs/<date>/ and outputs/, when this run was all they held
        if parent == Path.cwd() or not parent.is_relative_to(Path.cwd()) or any(parent.iterdir()):
            break
        parent.rmdir()


def user_message(err: BaseException) -> str | None:
    """The paragraph to show for bad input: a UserError anywhere in the exception chain (instantiate wraps what a
    `_target_` raises), or Hydra's own message when a `_target_` cannot be located or called; None for bugs."""
    seen = err
    while seen is not None:
        if isinstance(seen, UserError):
            return str(seen)
        seen = seen.__cause__
    if isinstance(err, InstantiationException):
        return f"{err}\nCheck the _target_ and its arguments in the config (or the override that set them)."
    return None


# At import, so that launcher worker processes (joblib, submitit) that unpickle `task` have them too.
register_configs()
register_resolvers()


def main() -> None:
    from vae_runner.config.command_line import problem
    from vae_runner.config.overrides import typed_paths

    if {"--help", "-h"} & set(sys.argv[1:]):  # ours: each group, what it chooses and its options (config/help.py)
        from vae_runner.config.help import help_text

        print(help_text())
        sys.exit(0)
    sys.argv[1:] = typed_paths(sys.argv[1:])  # a sweep member's directory, typed as it is
    if message := problem(sys.argv[1:]):
        print(f"vae-run: error: {message}", file=sys.stderr)
        sys.exit(2)
    from hydra_plugins.vae_runner_batched import register

    register()  # hydra/launcher=batched
    hydra.main(config_path="pkg://vae_runner.configs", config_name="train", version_base="1.3")(task)()


if __name__ == "__main__":
    main()
