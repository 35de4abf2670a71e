"""A run's hyper-parameters as one flat dictionary, for a logger's HParams view (TensorBoard's HParams tab)."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from vae_runner.config.keys import HPARAMS_LEFT_OUT
from vae_runner.config.plain import flatten, plain


def hparams_of(cfg) -> dict:
    """The run's hyper-parameters as flat key -> int/float/str/bool (HParams plugin). A key whose config value
    interpolates another (`objective.beta: ${beta}`) is left out: it would be a second column of the same value."""
    values = plain(cfg)
    for k in HPARAMS_LEFT_OUT:
        values.pop(k, None)
    hparams = {}
    for key, v in flatten(values).items():
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(cfg, parent) if parent else cfg
        if isinstance(node, DictConfig) and leaf in node and OmegaConf.is_interpolation(node, leaf):
            continue
        if key.rsplit(".", 1)[-1] == "_target_":  # prior._target_ -> prior: the class name
            hparams[key.rsplit(".", 1)[0]] = str(v).rsplit(".", 1)[-1]
        else:
            hparams[key] = v if isinstance(v, (int, float, str, bool)) else str(v)
    return hparams
