"""The config's shape: every default is written once, in the option's yaml (the schema dataclasses carry types
only), every option composes to a config with nothing missing, and the yaml files agree with their schemas."""

import dataclasses

import pytest
from conftest import make_cfg, options
from omegaconf import MISSING, OmegaConf

from vae_runner.config import schema

GROUPS = ["dataset", "architecture", "prior", "likelihood", "objective", "optimizer", "trainer", "evaluation", "logger"]
REQUIRED = {("dataset", "image_folder"): {"dataset.root"}}  # the user's own input: no default on purpose
NESTED = {schema.TrainerConfig, schema.EvaluationConfig, schema.LoggerConfig}


def schema_classes():
    return sorted({c for c in vars(schema).values() if dataclasses.is_dataclass(c)}, key=lambda c: c.__name__)


@pytest.mark.parametrize("cls", schema_classes(), ids=lambda c: c.__name__)
def test_schemas_carry_types_only(cls):
    """A value in a schema would be a second copy of the yaml's default (or a default the yaml silently lacks)."""
    for f in dataclasses.fields(cls):
        if f.name == "_partial_":  # how the optimizer is built, not a setting
            continue
        if f.default_factory is not dataclasses.MISSING:
            assert f.default_factory in NESTED, f"{cls.__name__}.{f.name}"
            continue
        interpolation = isinstance(f.default, str) and f.default.startswith("${")
        assert f.default == MISSING or interpolation, f"{cls.__name__}.{f.name} has a default: {f.default!r}"


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_sets_every_field_of_its_schema(group, option):
    cfg = make_cfg(f"{group}={option}", shrink=False)
    missing = OmegaConf.missing_keys(cfg) - REQUIRED.get((group, option), set())
    assert not missing, f"{group}={option} leaves {sorted(missing)} unset: give them a value in its yaml"


def test_a_key_unknown_to_the_schema_is_refused():
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException):
        make_cfg("prior=mog", "prior.n_componets=5", shrink=False)
