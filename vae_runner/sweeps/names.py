"""The names of a sweep's runs. A job's directory (`hydra.sweep.subdir`), which is also its run name in TensorBoard,
is the job number and what that job changed: `3_prior=mog,beta=4`, not `3`.

What a job "changed" is its overrides less the sweep's constants (the command line's single-valued overrides,
recorded by the RecordConstants callback when the sweep starts) and less execution keys (`trainer.epochs=3`,
`dataset.root=...`: config/keys.py), so a sweep re-launched with more epochs finds its runs again."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import OmegaConf

from vae_runner.config.keys import is_execution_key, override_keys

CONSTANTS_ENV = "VAE_RUNNER_SWEEP_CONSTANTS"  # read by the sweep's jobs, in this process or launched from it
MAX_LEN = 120
UNSAFE = set('/\\:*?"<>|')


def name_of(num, overrides: Sequence[str], constants: Sequence[str] = ()) -> str:
    """`3_prior=mog,beta=4`: the job number, then the overrides that say what this job computes, in command-line
    order. Characters a path cannot hold become `_`; a long name is cut (the job number keeps it unique)."""
    changed = [
        o.lstrip("+~")
        for o in overrides
        if (key := override_keys([o])) and not is_execution_key(key[0]) and key[0] not in constants  # [] for hydra.*
    ]
    name = "".join("_" if c in UNSAFE or c.isspace() or not c.isprintable() else c for c in ",".join(changed))
    return f"{num}_{name[:MAX_LEN]}" if name else str(num)


def job_name(num, *, _root_) -> str:
    """The `vae_job_name` resolver of configs/train.yaml: `hydra.sweep.subdir: ${vae_job_name:${hydra.job.num}}`.
    A sweep started before jobs had names (its job directories are `0`, `1`, ...) keeps the bare number, so
    re-launching it still skips and resumes its runs."""
    sweep_dir = OmegaConf.select(_root_, "hydra.sweep.dir", default=None)
    if sweep_dir and (Path(str(sweep_dir)) / str(num) / ".hydra").is_dir():
        return str(num)
    overrides = list(OmegaConf.select(_root_, "hydra.overrides.task", default=None) or [])
    constants = [k for k in os.environ.get(CONSTANTS_ENV, "").split(",") if k]
    return name_of(num, overrides, constants)


class RecordConstants(Callback):
    """At the start of a sweep: the keys of the command line's overrides that are not swept (`dataset=digits` in
    `vae-run -m beta=1,4 dataset=digits`), for job_name to leave out. A key that a sweeper sets from its own config
    (hparams_search=...) is not among them, so it stays in the names."""

    def on_multirun_start(self, config, **kwargs) -> None:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        parsed = OverridesParser.create().parse_overrides(list(config.hydra.overrides.task))
        os.environ[CONSTANTS_ENV] = ",".join(o.key_or_group for o in parsed if not o.is_sweep_override())

    def on_multirun_end(self, config, **kwargs) -> None:
        os.environ.pop(CONSTANTS_ENV, None)
