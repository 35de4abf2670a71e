"""`vae-run` as a subprocess, as a researcher runs it: one run, a multirun sweep, resume, eval, and bad input that
must end in one clear message and a non-zero exit, never a traceback."""

import json
from pathlib import Path

import pytest
from conftest import FAST, vae_run
from omegaconf import OmegaConf


def run_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.glob("outputs/**/metrics.json"))


def test_one_run_then_resume_then_eval(tmp_path):
    done = vae_run(*FAST, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (run_dir,) = run_dirs(tmp_path)
    assert {"metrics.json", "samples.png", "reconstructions.png", "checkpoints"} <= {p.name for p in run_dir.iterdir()}
    first = json.loads((run_dir / "metrics.json").read_text())

    more = vae_run(f"resume={run_dir}", "trainer.epochs=3", cwd=tmp_path)
    assert more.returncode == 0, more.stderr
    assert run_dirs(tmp_path) == [run_dir]  # it went on in the same run directory
    assert json.loads((run_dir / "metrics.json").read_text())["epochs"] == 3 > first["epochs"]
    assert (run_dir / ".hydra" / "config.yaml").is_file() and list((run_dir / ".hydra").glob("resume-*"))

    ev = vae_run(
        "mode=eval",
        f"ckpt={run_dir / 'checkpoints' / 'best.pt'}",
        "logger.progress_bar=false",
        "evaluation.iw_samples=16",
        cwd=tmp_path,
    )
    assert ev.returncode == 0, ev.stderr
    evaluated = [d for d in run_dirs(tmp_path) if d != run_dir]
    assert len(evaluated) == 1 and "test/elbo" in json.loads((evaluated[0] / "metrics.json").read_text())


def test_multirun_sweep_makes_one_run_per_value(tmp_path):
    done = vae_run("-m", "beta=1,4", *FAST, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    dirs = run_dirs(tmp_path)
    assert len(dirs) == 2 and all("multirun" in str(d) for d in dirs)
    betas = sorted(OmegaConf.load(d / ".hydra" / "config.yaml").beta for d in dirs)
    assert betas == [1.0, 4.0]
    # the sweep ends with its table of runs (only beta varies) and where it is
    sweep = dirs[0].parent
    assert f"sweep directory: {sweep}" in done.stdout and "2 runs (2 finished)" in done.stdout
    assert (sweep / "report.md").read_text().startswith("| run | beta | status |")


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["beta=-1"], "beta=-1.0 (must be a finite number >= 0)"),
        pytest.param(["latent_dim=0"], "latent_dim=0", marks=pytest.mark.slow),
        # The in-process tests (test_run.py) check these messages; through the CLI they run with -m slow.
        pytest.param(["beta=abc"], "beta=abc", marks=pytest.mark.slow),
        pytest.param(["prior=nope"], "prior=nope: no such option in the prior group", marks=pytest.mark.slow),
        pytest.param(
            ["dataset=mnist", "dataset.root=/nonexistent/data"], "dataset.download=true", marks=pytest.mark.slow
        ),
        (["mode=eval", "ckpt=/nonexistent/best.pt"], "Checkpoint not found"),
        pytest.param(["resume=/nonexistent/run"], "Checkpoint not found", marks=pytest.mark.slow),
    ],
)
def test_bad_input_is_one_clear_message(args, fragment, tmp_path):
    done = vae_run(*args, "logger.progress_bar=false", cwd=tmp_path)
    assert done.returncode == 2
    out = done.stdout + done.stderr
    assert fragment in out, out
    assert "Traceback" not in out, out
    assert run_dirs(tmp_path) == []


@pytest.mark.slow  # every prior trains in-process (test_run.py); sweeps from the CLI: the tests above
def test_every_prior_from_the_cli_in_one_sweep(tmp_path):
    priors = ["gaussian", "mog", "vamp", "gtm", "gtm_vamp", "flow"]
    done = vae_run("-m", f"prior={','.join(priors)}", "latent_dim=2", *FAST, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    dirs = run_dirs(tmp_path)
    assert sorted(
        OmegaConf.load(d / ".hydra" / "config.yaml").prior._target_.rsplit(".", 1)[-1] for d in dirs
    ) == sorted(["GaussianPrior", "MoGPrior", "VampPrior", "GTMPrior", "GTMVampPrior", "FlowPrior"])
    assert all((d / "latent_density.png").is_file() for d in dirs)


def test_help_names_each_group_what_it_chooses_its_options_and_its_default(tmp_path):
    from vae_runner.config.command_line import groups

    done = vae_run("--help", cwd=tmp_path)
    assert done.returncode == 0 and not list(tmp_path.iterdir())  # nothing run, nothing written
    text = done.stdout
    for group, options in groups().items():
        assert f"\n  {group} " in text, group
        for option in options:
            assert option in text, (group, option)
    assert "  prior           p(z)\n" in text and "gaussian*" in text and "tensorboard*" in text
    assert "vae-run --cfg job" in text and "--hydra-help" in text
