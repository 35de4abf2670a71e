"""A run directory that already holds a run, met again: `merge_saved` (resume=, ckpt=: the checkpoint's config with
the command line's execution overrides, a model override refused) and `same_run_or_refuse` (a directory holding a
checkpoint is taken up again only by the same run, on the same table file), and what a checkpoint keeps of the
config (`config_record`). Which keys are which: config/keys.py. Torch-free.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from vae_runner.config.keys import LOCATION_KEYS, MODEL_KEYS, is_execution_key, override_keys
from vae_runner.config.overrides import shell_override
from vae_runner.config.plain import flatten, plain
from vae_runner.errors import UserError


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
    built = _model_part("group", saved)  # none: a node that built nothing then (the logger before it had a _target_)
    if not root and built and built != _model_part("group", current):
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
            f"hydra.sweep.dir=...), or continue that run with vae-run {shell_override('resume', run_dir)}."
        )
    same_table_or_refuse(cfg, state, run_dir)


def config_record(cfg: DictConfig) -> dict:
    """What a checkpoint keeps of the run's config: the resolved config, its source, and the digest of the table
    file it trained on (`table_digest`), so that a changed file is never taken for the run's own."""
    return {
        "config": plain(cfg),
        "config_source": OmegaConf.to_container(cfg, enum_to_str=True),
        "table_digest": table_digest(cfg),
        "working_dir": str(Path.cwd()),  # where a relative dataset.table was found (located)
    }


def located(cfg: DictConfig, state: dict) -> DictConfig:
    """A saved run's config with a relative `dataset.table` made absolute against the directory the run was
    trained from, where the file is found there and not from here: a run imputes from any working directory."""
    table = OmegaConf.select(cfg, "dataset.table", default=None)
    origin = state.get("working_dir")
    if table is None or origin is None or Path(str(table)).expanduser().is_absolute():
        return cfg
    there = Path(origin) / str(table)
    if there.is_file() and not Path(str(table)).is_file():
        cfg = cfg.copy()
        cfg.dataset.table = str(there)
    return cfg


def table_digest(cfg: DictConfig) -> str | None:
    """The SHA-256 of the file `dataset.table` names (a user's table); None for a bundled table or another dataset."""
    table = OmegaConf.select(cfg, "dataset.table", default=None)
    file = Path(str(table)).expanduser() if table is not None else None
    return hashlib.sha256(file.read_bytes()).hexdigest() if file is not None and file.is_file() else None


def same_table_or_refuse(cfg: DictConfig, state: dict, run_dir: Path | str) -> None:
    """A run trained on a table file is taken up again (resumed, skipped as finished, evaluated, imputing) only
    while the file holds what it trained on: a file changed under the same path is another table."""
    saved, now = state.get("table_digest"), table_digest(cfg)
    if saved is not None and now is not None and saved != now:
        raise UserError(
            f"{run_dir} was trained on dataset.table={cfg.dataset.table} as it was then (SHA-256 {saved[:12]}...), "
            f"and the file has changed since ({now[:12]}...). Nothing was changed there. To fit the new contents, "
            f"train a new run (its own hydra.run.dir=...); to use this run, restore the file it trained on."
        )
