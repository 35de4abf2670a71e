"""Overrides that parse back to the value they were given (config/overrides.py): the paths a sweep names its runs
by (`=`, `,`), quotes, backslashes and `${`, through Hydra's grammar and through a shell."""

import shlex
import subprocess

import pytest

from vae_runner.config.compose import compose_config
from vae_runner.config.overrides import override, shell_override

VALUES = [
    "outputs/multirun/0_dataset.table=wine,missing.kind=mar,seed=0",
    "plain/path-1.2",
    "with space/it's here",
    "back\\slash and end\\",
    "quote\\'d",
    "x${seed}y",
    "[1,2]",
]


@pytest.mark.parametrize("value", VALUES)
def test_an_override_composes_back_to_its_value(value):
    assert compose_config([override("ckpt", value)]).ckpt == value


def test_plain_values_stay_as_they_are():
    assert override("ckpt", "outputs/2026-12-02/run-1") == "ckpt=outputs/2026-12-02/run-1"
    assert shell_override("resume", "outputs/run") == "resume=outputs/run"
    assert shell_override("resume", "outputs/0_seed=0") == "\"resume='outputs/0_seed=0'\""


@pytest.mark.parametrize("value", VALUES)
def test_a_printed_override_reaches_hydra_through_a_shell_unchanged(value):
    printed = shell_override("resume", value)
    (argument,) = shlex.split(printed)
    echoed = subprocess.run(["bash", "-c", f"printf %s {printed}"], capture_output=True, text=True, check=True)
    assert echoed.stdout == argument == override("resume", value)
    assert compose_config([argument]).resume == value
