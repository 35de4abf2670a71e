"""Run-directory paths, without importing torch (the CLI resolves `hydra.run.dir` before any heavy import)."""

from __future__ import annotations

import os
from pathlib import Path


def run_dir_of(path: str | os.PathLike) -> Path:
    """The run directory a checkpoint (or run directory) belongs to."""
    p = Path(os.path.expanduser(str(path)))
    if p.is_file():
        return p.parent.parent if p.parent.name == "checkpoints" else p.parent
    return p
