"""The config's shape: every default is written once, in the option's yaml (the schema dataclasses carry types
only), every option composes to a config with nothing missing, and the yaml files agree with their schemas."""

import dataclasses
import inspect

import pytest
from conftest import make_cfg, options
from hydra._internal.utils import _locate
from omegaconf import MISSING, OmegaConf

from vae_runner.config import schema
from vae_runner.config.compose import build_option, option_config

GROUPS = ["dataset", "architecture", "prior", "likelihood", "objective", "optimizer", "trainer", "evaluation", "logger"]
REQUIRED = {("dataset", "image_folder"): {"dataset.root"}}  # the user's own input: no default on purpose
NESTED = {
    schema.TrainerConfig,
    schema.EvaluationConfig,
    schema.DisentanglementConfig,
    schema.ImputationConfig,
    schema.MissingConfig,
    schema.ModalitiesConfig,
}


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


def targets(node, path=""):
    """(dotted path, node) for every `_target_` node in a composed config."""
    if isinstance(node, dict):
        if "_target_" in node:
            yield path, node
        for key, value in node.items():
            yield from targets(value, f"{path}.{key}" if path else key)


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_constructors_take_what_the_yaml_gives_them(group, option):
    """A constructor default for a value the yaml sets would be a second copy of the default that drifts silently."""
    node = OmegaConf.to_container(make_cfg(f"{group}={option}", shrink=False)[group])
    for path, spec in targets(node, group):
        target = _locate(spec["_target_"])
        if target.__module__.split(".")[0] != "vae_runner":  # torch.optim.Adam: torch's defaults, not ours
            continue
        doubled = [
            name
            for name, p in inspect.signature(target).parameters.items()
            if name in spec and p.default is not inspect.Parameter.empty
        ]
        assert not doubled, f"{spec['_target_']} ({path}) repeats the yaml's default for {doubled} in its signature"


def test_build_option_uses_the_yaml_defaults_and_refuses_unknown_settings():
    mog = build_option("prior", "mog", latent_dim=3, n_components=4)
    assert mog.means.shape == (4, 3)  # the setting given
    assert mog.logvars.detach().eq(make_cfg("prior=mog", shrink=False).prior.init_logvar).all()  # the yaml's value
    iwae = build_option("objective", "iwae", beta=4.0)
    assert (iwae.k, iwae.beta) == (5, 4.0)  # iwae.yaml's k, and a setting that replaced `beta: ${beta}`
    with pytest.raises(KeyError, match="n_componets"):
        option_config("prior", "mog", n_componets=5)
