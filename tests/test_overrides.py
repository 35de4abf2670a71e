"""Overrides that parse back to the value they were given (config/overrides.py): the paths a sweep names its runs
by (`=`, `,`), quotes, backslashes and `${`, through Hydra's grammar and through a shell; a sweep member's printed
hint run as printed, and its directory typed as it is on vae-run's command line."""

import os
import re
import shlex
import subprocess

import pytest
from conftest import FAST, VAE_RUN, vae_run

from vae_runner.config.compose import compose_config
from vae_runner.config.overrides import override, shell_override, typed_paths

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


def test_a_sweep_members_printed_hint_and_its_directory_typed_as_it_is_both_run(tmp_path):
    swept = vae_run("-m", *FAST, "seed=0,1", "hydra.sweep.dir=sweep", cwd=tmp_path)
    assert swept.returncode == 0, swept.stderr[-2000:]
    member = "sweep/0_seed=0"
    assert (tmp_path / member / "metrics.json").is_file()
    again = vae_run(f"resume={member}", *FAST, cwd=tmp_path)  # typed as it is: = and , in the path
    message = again.stdout + again.stderr
    assert again.returncode != 0 and "has finished its" in message, message[-2000:]
    printed = re.search(r"use (vae-run mode=eval \S+);", message).group(1)
    assert printed == "vae-run mode=eval \"ckpt='sweep/0_seed=0'\""
    hint = subprocess.run(
        ["bash", "-c", printed.replace("vae-run", shlex.quote(VAE_RUN), 1) + " " + " ".join(FAST)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    assert hint.returncode == 0, hint.stderr[-2000:]
    typed = vae_run("mode=eval", f"ckpt={member}", *FAST, cwd=tmp_path)
    assert typed.returncode == 0, typed.stderr[-2000:]


def test_only_existing_paths_of_path_keys_are_requoted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "0_seed=0").mkdir()
    argv = ["-m", "ckpt=0_seed=0", "resume='0_seed=0'", "seed=0,1", "dataset.table=missing,file.csv", "beta=4"]
    assert typed_paths(argv) == ["-m", "ckpt='0_seed=0'", "resume='0_seed=0'", *argv[3:]]
