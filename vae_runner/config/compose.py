"""The run config composed from Python as `vae-run` composes it from the command line (`compose_config`), and one
group option built on its own with its yaml defaults (`build_option`): for notebooks, scripts and tests; and
`construct`, hydra's instantiate with a component's own UserError passed on as itself (build.py builds every piece of a
run with it). The yaml files are the only place a default is written; constructors take what they are given.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from vae_runner.config.keys import RUN_KEYS
from vae_runner.config.schema import register_configs
from vae_runner.errors import UserError


def compose_config(overrides: Sequence[str] = ()) -> DictConfig:
    """configs/train.yaml with command-line style `overrides` (e.g. ["prior=mog", "beta=4"]), validated against the
    schemas; works inside or outside a running Hydra app. A fresh copy each call (composing is ~0.3 s: cached)."""
    return copy.deepcopy(_composed(tuple(overrides)))


@functools.lru_cache(maxsize=64)
def _composed(overrides: tuple[str, ...]) -> DictConfig:
    register_configs()  # the resolvers of train.yaml's hydra: section are not needed: it is not resolved here
    hydra = GlobalHydra.instance()
    outer = hydra.hydra if hydra.is_initialized() else None
    hydra.clear()
    try:
        with initialize_config_module("vae_runner.configs", version_base="1.3"):
            return compose("train", overrides=list(overrides))
    finally:
        if outer is not None:
            GlobalHydra.instance().hydra = outer


def option_config(group: str, option: str, **settings) -> DictConfig:
    """configs/<group>/<option>.yaml as composed into a run, with `settings` replacing its values (checked against
    the option's schema; a setting the option does not have is refused), interpolations such as `beta: ${beta}`
    and `hidden: ${..hidden}` then resolved."""
    node = compose_config([f"{group}={option}"])[group]
    unknown = sorted(set(settings) - set(node))
    if unknown:
        raise KeyError(f"{group}={option} has no setting {', '.join(unknown)}; it has {', '.join(node)}")
    for key, value in settings.items():
        node[key] = value
    return OmegaConf.create(OmegaConf.to_container(node, resolve=True))


def build_option(group: str, option: str, part: str | None = None, **kwargs):
    """Instantiate `<group>=<option>` (or its `part`, e.g. the architecture's "encoder") with its yaml defaults.
    Keyword arguments the option's yaml holds replace its values; the others (`latent_dim`, `data_shape`, live
    objects such as `encoder` and `data`) go to the constructor as they are.

        build_option("prior", "mog", latent_dim=2, n_components=3)
        build_option("architecture", "mlp", "encoder", hidden=[8], input_shape=(1, 4, 4), latent_dim=2)
    """
    held = set(compose_config([f"{group}={option}"])[group])
    node = option_config(group, option, **{k: v for k, v in kwargs.items() if k in held})
    if part is not None:
        node = node[part]
    for key in RUN_KEYS if group == "dataset" else ():
        node.pop(key)
    # _partial_: live objects (an encoder, the data) must not pass through Hydra's config conversion
    return construct(node, _partial_=True)(**{k: v for k, v in kwargs.items() if k not in held})


def construct(node, *args, **kwargs):
    """hydra.utils.instantiate, with a UserError raised by the component passed on as itself (instantiate wraps
    everything a `_target_` raises in an InstantiationException)."""
    try:
        return instantiate(node, *args, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        while cause is not None and not isinstance(cause, UserError):
            cause = cause.__cause__
        if cause is None:
            raise
        raise cause from None
