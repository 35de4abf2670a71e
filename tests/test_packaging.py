"""The configs ship as package data: a non-editable install (`pip install .`) finds them from any directory."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_non_editable_install_finds_its_configs(tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    shipped = {
        p.relative_to(target / "vae_runner" / "configs") for p in (target / "vae_runner" / "configs").rglob("*.yaml")
    }
    assert shipped == {p.relative_to(REPO / "configs") for p in (REPO / "configs").rglob("*.yaml")}
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = dict(os.environ, PYTHONPATH=str(target))
    where = subprocess.run(
        [sys.executable, "-c", "import vae_runner; print(vae_runner.__file__)"],
        env=env,
        cwd=work,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(target))
    shown = subprocess.run(
        [sys.executable, "-m", "vae_runner.cli", "dataset=synthetic", "prior=gaussian", "--cfg", "job"],
        env=env,
        cwd=work,
        capture_output=True,
        text=True,
    )
    assert shown.returncode == 0, shown.stderr
    assert "vae_runner.data.synthetic.load_synthetic" in shown.stdout
