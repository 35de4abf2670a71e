"""The run directory: where each file of a run lives, and what happens when a run meets a directory that already
holds one (finished: skipped; interrupted: resumed; a different run: refused; resume=/ckpt=: the saved config with
the command line's execution overrides). Torch-free: the CLI resolves `hydra.run.dir` before any heavy import.

    <run dir>/metrics.json                     every final number (written last, atomically)
    <run dir>/checkpoints/last.pt, best.pt     resume point and the best-validation model
    <run dir>/events.out.tfevents.*, *.png     TensorBoard and the pictures
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from vae_runner.config.plain import flatten, plain
from vae_runner.errors import UserError

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


# Keys that define the model (and the data it was fitted to): a checkpoint can only be used with the same values.
MODEL_KEYS = ("dataset", "architecture", "prior", "likelihood", "latent_dim")


# ... except where the data lives on this machine.
LOCATION_KEYS = ("dataset.root", "dataset.download", "dataset.system_dirs")


def _model_part(key: str, value):
    """What of an override must match the checkpoint: for a group choice (`prior=mog`) the `_target_`s it builds,
    for a single key (`latent_dim=8`, `prior.n_components=5`) its value."""
    value = plain(value)
    if "." in key or not isinstance(value, dict):
        return value
    return [v for k, v in flatten(value).items() if k.rsplit(".", 1)[-1] == "_target_"]


def _add_new_settings(saved: DictConfig, current: DictConfig, root: bool = True) -> None:
    """Settings added to vae-runner after a run was saved take today's value, which reproduces the old behaviour:
    keys the saved config lacks or leaves missing (the optimizer group: it was Adam; `objective.analytic_kl`; the
    top-level `n`). Inside a group only where its node builds the same `_target_`s today (a saved prior=mog gets no
    key of today's prior=gaussian)."""
    if not root and _model_part("group", saved) != _model_part("group", current):
        return
    for key in current:
        if OmegaConf.is_missing(current, key):
            continue
        if key not in saved or OmegaConf.is_missing(saved, key):
            with open_dict(saved):
                saved[key] = OmegaConf.select(current, key)
        elif isinstance(saved[key], DictConfig) and isinstance(current[key], DictConfig):
            _add_new_settings(saved[key], current[key], root=False)


def _add_new_dataset_settings(saved: DictConfig) -> None:
    """The saved dataset gains the keys its option (configs/dataset/<name>.yaml) has today, at today's values, which
    reproduce the old behaviour (`_add_new_settings` cannot: today's default dataset is another option)."""
    from hydra.errors import HydraException

    from vae_runner.config.compose import compose_config

    try:
        today = compose_config([f"dataset={saved.dataset.name}"]).dataset
    except HydraException:  # an option renamed or removed since: nothing to add
        return
    if str(today.get("_target_")) == str(saved.dataset.get("_target_")):
        with open_dict(saved.dataset):
            for key in today:
                if key not in saved.dataset:
                    saved.dataset[key] = today[key]


def override_keys(overrides: Sequence[str]) -> list[str]:
    keys = [o.split("=", 1)[0].lstrip("+~") for o in overrides]
    return [k for k in keys if k != "hydra" and not k.startswith("hydra.") and not k.startswith("hydra/")]


def merge_saved(
    state: dict, current: DictConfig, overrides: Sequence[str], purpose: str, other_data: bool = False
) -> DictConfig:
    """The checkpoint's config with the command line's explicit overrides applied; an override that would change the
    model (MODEL_KEYS) is refused with a list of the differences. `other_data`: the `dataset` may change (scoring
    a model on another dataset of the same shape)."""
    from vae_runner.config.schema import VAEConfig  # here: vae-report uses the layout above without loading Hydra

    merged = OmegaConf.merge(OmegaConf.structured(VAEConfig), state.get("config_source", state["config"]))
    _add_new_settings(merged, current)
    _add_new_dataset_settings(merged)
    clashes = []
    for key in override_keys(overrides):
        if key in ("mode", "ckpt", "resume"):
            continue
        if key == "experiment":
            clashes.append("experiment= (a preset cannot be applied to a saved run)")
            continue
        new = OmegaConf.select(current, key, default=None)
        if key.split(".")[0] in MODEL_KEYS and key not in LOCATION_KEYS:
            old, requested = _model_part(key, OmegaConf.select(merged, key, default=None)), _model_part(key, new)
            if old == requested:  # e.g. dataset=<the run's own dataset>: the saved settings stay
                continue
            if other_data and key.split(".")[0] == "dataset":
                OmegaConf.update(merged, key, new, merge=False)
            else:
                clashes.append(f"{key} (checkpoint: {old!r}, requested: {requested!r})")
        else:
            OmegaConf.update(merged, key, new, merge=False)
    if clashes:
        raise UserError(
            f"The checkpoint's model config differs from the requested one in: {'; '.join(clashes)}. "
            f"{purpose} uses the checkpoint's own model config: drop these overrides, or train a new "
            f"run with them."
        )
    for key in ("mode", "ckpt", "resume"):
        merged[key] = current[key]
    return merged


# Keys that say where and how a run executes, not what it computes: they may differ when a run is taken up again.
EXECUTION_KEYS = (
    "mode",
    "ckpt",
    "resume",
    "n",
    "optimized_metric",
    "logger",
    "trainer.device",
    "trainer.num_threads",
    "trainer.compile",
    "trainer.flush_denormal",
    "trainer.epochs",
    "evaluation",
) + LOCATION_KEYS


def is_execution_key(key: str) -> bool:
    return any(key == e or key.startswith(e + ".") for e in EXECUTION_KEYS)


def same_run_or_refuse(cfg: DictConfig, state: dict, run_dir: Path) -> None:
    """A run directory holding a checkpoint is taken up again only by the same run (same config but for
    EXECUTION_KEYS and settings added to vae-runner since it was saved); anything else would overwrite it."""

    def flat(node):
        return {k: v for k, v in flatten(node).items() if not is_execution_key(k)}

    saved = OmegaConf.create(state["config"])
    _add_new_settings(saved, cfg)  # a setting added since the run was saved is no difference
    old, new = flat(plain(saved)), flat(plain(cfg))
    differ = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    if differ:
        raise UserError(
            f"{run_dir} already holds a different run (its config differs in: {', '.join(differ[:8])}). "
            f"Nothing was changed there. Give this run its own directory (hydra.run.dir=... or "
            f"hydra.sweep.dir=...), or continue that run with resume={run_dir}."
        )


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
