"""The run directory: where each file of a run lives (a run met again: runs/saved_config.py). Torch-free: the CLI
resolves `hydra.run.dir` before any heavy import.

    <run dir>/metrics.json                     every final number (written last, atomically)
    <run dir>/checkpoints/last.pt, best.pt     resume point and the best-validation model
    <run dir>/events.out.tfevents.*, *.png     TensorBoard and the pictures
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

CHECKPOINTS = "checkpoints"
LAST, BEST = "last.pt", "best.pt"
METRICS = "metrics.json"

log = logging.getLogger("vae_runner")


def checkpoint_path(run_dir: Path, name: str = LAST) -> Path:
    return run_dir / CHECKPOINTS / name


def continues_in_place(path: str | os.PathLike) -> bool:
    """Whether resuming from `path` goes on in its run directory: a run directory or its last.pt does; any other
    checkpoint (best.pt, a copy) would overwrite a later last.pt there, so that run branches into a new directory."""
    p = Path(os.path.expanduser(str(path)))
    return p.is_dir() or p.name == LAST


def run_dir_of(path: str | os.PathLike) -> Path:
    """The run directory a checkpoint (or run directory) belongs to."""
    p = Path(os.path.expanduser(str(path)))
    if p.is_file():
        return p.parent.parent if p.parent.name == CHECKPOINTS else p.parent
    return p


def write_metrics(run_dir: Path, metrics: dict) -> None:
    """metrics.json, atomically; an earlier evaluation's metrics.json is kept as metrics.<n>.json (n = 1, 2, ...)."""
    if (run_dir / METRICS).is_file():
        kept = [p.name.split(".")[1] for p in run_dir.glob("metrics.*.json")]
        n = 1 + max((int(k) for k in kept if k.isdigit()), default=0)
        os.replace(run_dir / METRICS, run_dir / f"metrics.{n}.json")
        log.info("the earlier metrics.json of %s is kept as metrics.%d.json", run_dir, n)
    tmp = run_dir / (METRICS + ".tmp")
    tmp.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, run_dir / METRICS)


def read_metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / METRICS).read_text())
