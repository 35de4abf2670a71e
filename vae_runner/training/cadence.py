"""When the trainer writes its checkpoints, and which: `RunCheckpoints` writes `last.pt` once `every_s` seconds of
training have passed since the last one (and at the end, and on a stop signal), keeps a better model's state in
memory until then and writes it as `best.pt` just before that `last.pt`, all on the background writer
(checkpoint.CheckpointWriter). On divergence, the better model kept in memory is the newest good state and is saved.
"""

from __future__ import annotations

import time
from pathlib import Path

from vae_runner.config.overrides import shell_override
from vae_runner.runs.checkpoint import CheckpointWriter
from vae_runner.runs.directory import BEST, LAST


class RunCheckpoints:
    def __init__(self, ckpt_dir: Path, every_s: float):
        self.dir = ckpt_dir
        self.every_s = every_s
        self.writer = CheckpointWriter()
        self.pending_best: dict | None = None  # a better model's snapshot not written yet (best.pt)
        self.last_write = time.perf_counter()
        self.written_epoch: int | None = None  # the epoch of this session's latest last.pt

    def start(self) -> None:
        """The cadence counts training time: from the start of a session on."""
        self.last_write = time.perf_counter()

    def keep_best(self, state: dict) -> None:
        self.pending_best = state

    def due(self) -> bool:
        return time.perf_counter() - self.last_write >= self.every_s

    def write(self, state: dict) -> None:
        """Hand best.pt (when a better model waits) and last.pt (`state`, a snapshot) to the writer, in that order: a
        kill between the two leaves a best.pt at least as new as the last.pt a resume starts from."""
        files = [(self.dir / BEST, self.pending_best)] if self.pending_best is not None else []
        self.writer.write([*files, (self.dir / LAST, state)])
        self.pending_best = None
        self.last_write = time.perf_counter()
        self.written_epoch = state["epoch"]

    def wait(self) -> None:
        """Until everything handed over is on disk (raises what a write raised)."""
        self.writer.wait()

    def keep_good_state(self) -> None:
        """Before stopping on divergence: a better model kept in memory since the last checkpoint is the newest good
        state (its validation came after that checkpoint); write it as best.pt and as last.pt, which resumes it."""
        self.writer.wait()
        if self.pending_best is not None:
            self.writer.write([(self.dir / BEST, self.pending_best), (self.dir / LAST, self.pending_best)])
            self.writer.wait()
            self.written_epoch, self.pending_best = self.pending_best["epoch"], None

    def last_good(self) -> str:
        """Where a diverged run can resume from, for its error message."""
        last = self.dir / LAST
        if last.is_file():
            epoch = f"epoch {self.written_epoch}, " if self.written_epoch is not None else ""
            again = f"vae-run {shell_override('resume', self.dir.parent)}"
            return f"the last good checkpoint is {last} ({epoch}{again} continues from it)."
        return "no checkpoint had been written yet (it diverged before the first one)."
