"""Checkpoints: atomic writes, `weights_only=True` loads, and one clear message for every way a file can be bad.

A checkpoint holds the model and optimizer state, the epoch and step reached, the best validation ELBO, torch's RNG
states and the resolved config (plain containers only, so `torch.load(..., weights_only=True)` accepts it).
`CheckpointWriter` writes them on a background thread from a copy taken between steps, so the loop does not wait
for the disk.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import threading
from pathlib import Path

import torch

from vae_runner.errors import UserError
from vae_runner.runs.directory import LAST, checkpoint_path

KEYS = ("model", "optimizer", "epoch", "global_step", "best_val_elbo", "rng", "config")


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, **state) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `path`: a reader (or a crash) only ever
    sees the old file or the complete new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; checkpoints are shared like any result
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def training_state(
    model: dict,
    optimizer: dict,
    position: tuple[int, int, int],
    best: tuple[float, int],
    rng: dict,
    perm,
    timing: dict,
    config: dict,
    **extra,
) -> dict:
    """A training run's state in the one checkpoint format (a stack's member writes it too, so it resumes alone):
    the weights and optimizer state, `position` (epochs done, global step, batches done in the current epoch, whose
    order is `perm`), `best` (validation ELBO and its epoch), torch's RNG state, `timing` (train_time_s,
    train_steps_s, ...), the run's `config` ({"config": ..., "config_source": ...}) and `extra` keys, as a snapshot."""
    epoch, global_step, batch_index = position
    best_val_elbo, best_epoch = best
    return snapshot(
        dict(
            model=model,
            optimizer=optimizer,
            epoch=epoch,
            global_step=global_step,
            best_val_elbo=best_val_elbo,
            best_epoch=best_epoch,
            rng=rng,
            perm=perm,
            batch_index=batch_index,
            **timing,
            **extra,
            **config,
        )
    )


def snapshot(obj):
    """A copy of a (nested) state whose tensors are new CPU tensors: what is saved no longer changes with training."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: snapshot(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(snapshot(v) for v in obj)
    return obj


class CheckpointWriter:
    """Writes checkpoints one batch at a time on a background thread. `write` waits for the previous batch first, so
    files land in the order written (best.pt before the last.pt that refers to it); `wait` returns once everything
    is on disk and raises what a write raised (a full disk stops the run at its next checkpoint, not silently)."""

    def __init__(self):
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def write(self, files: list[tuple[Path, dict]]) -> None:
        """files: (path, state) pairs whose states are snapshots (nothing else may change them)."""
        self.wait()
        self.thread = threading.Thread(target=self._write, args=(files,), name="vae-run checkpoints")
        self.thread.start()

    def _write(self, files) -> None:
        try:
            for path, state in files:
                save_checkpoint(path, **state)
        except BaseException as err:  # raised in the training thread by wait()
            self.error = err

    def wait(self) -> None:
        if self.thread is not None:
            self.thread.join()
            self.thread = None
        if self.error is not None:
            err, self.error = self.error, None
            raise err


def resolve_checkpoint(path: str | os.PathLike, default_name: str = LAST) -> Path:
    """A checkpoint file, or a run directory (-> <dir>/checkpoints/<default_name>)."""
    p = Path(os.path.expanduser(str(path)))
    if p.is_dir():
        p = checkpoint_path(p, default_name)
    if not p.is_file():
        raise UserError(
            f"Checkpoint not found: {p}. Pass a run directory (it must contain checkpoints/"
            f"{default_name}) or the path of a .pt file written by vae-run."
        )
    return p


def sweep_runs(path: str | os.PathLike) -> list[Path]:
    """The run directories inside a sweep directory (a folder without checkpoints/ of its own whose runs have
    theirs), in order; [] for a run directory, a checkpoint file or a folder with no runs."""
    p = Path(os.path.expanduser(str(path)))
    if not p.is_dir() or (p / "checkpoints").is_dir():
        return []
    return sorted({c.parent.parent for c in p.rglob("checkpoints/*.pt")})


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise UserError(
            f"{path} holds objects that safe loading (weights_only=True) refuses ({err}). vae-run "
            f"never writes such files; load only checkpoints written by vae-run."
        ) from err
    except Exception as err:  # a damaged file can fail inside torch's reader in many ways (KeyError, EOFError, ...)
        raise UserError(
            f"{path} is not a readable checkpoint (truncated or corrupt: {err}). Use another "
            f"checkpoint of the run (checkpoints/best.pt or checkpoints/last.pt)."
        ) from err
    if not isinstance(state, dict) or not all(k in state for k in KEYS):
        raise UserError(
            f"{path} is a torch file but not a vae-run checkpoint (it lacks "
            f"{', '.join(k for k in KEYS if not isinstance(state, dict) or k not in state)}). "
            f"Pass a checkpoint written by vae-run."
        )
    return state


def load_weights(model, state: dict, path: Path) -> None:
    """The checkpoint's weights into `model`, or one message when they do not fit it."""
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        first = str(err).strip().splitlines()[1:3]
        raise UserError(
            f"The weights in {path} do not fit the model built from its config ({' '.join(first)}). "
            f"The checkpoint was written by a different model definition; train a new run."
        ) from err
