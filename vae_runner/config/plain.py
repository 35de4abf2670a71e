"""A composed config as plain Python: containers with enums as strings (`plain`), and nested dicts as
{dotted key: leaf} (`flatten`). Checkpoints store the first; run-identity checks and TensorBoard HParams use both."""

from __future__ import annotations

from enum import Enum

from omegaconf import OmegaConf


def plain(v):
    """A config node (or leaf) as plain containers, resolved, enums as their string values."""
    if OmegaConf.is_config(v):
        return OmegaConf.to_container(v, resolve=True, enum_to_str=True)
    return v.value if isinstance(v, Enum) else v


def flatten(node: dict, prefix: str = "") -> dict:
    """A nested plain config as {dotted key: leaf value}."""
    out = {}
    for k, v in node.items():
        out.update(flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out
