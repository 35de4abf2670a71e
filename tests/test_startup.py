"""Start-up: importing the CLI, composing the config and importing the run module pull in nothing a run does not use
(torchvision only for its datasets, scikit-learn for tables, probes and baselines, matplotlib when a picture is drawn,
pandas for typed table files, scipy for pooled intervals); `vae-run --help` does not even import torch. Each is ~0.1-
1.6 s of every run, sweep job and subprocess test (benchmarks/time_startup.py measures it)."""

import subprocess
import sys

HEAVY = ("torchvision", "sklearn", "matplotlib", "pandas", "scipy", "torch._dynamo")


def imported(code: str) -> list[str]:
    probe = f"{code}\nimport sys\nprint(','.join(m for m in {HEAVY!r} + ('torch',) if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return [m for m in out.strip().split(",") if m]


def test_the_cli_and_the_composed_config_import_no_heavy_package_not_even_torch():
    assert imported("import vae_runner.cli\nfrom vae_runner.config.command_line import problem\nproblem([])") == []


def test_the_run_module_imports_torch_and_nothing_heavy_beside_it():
    assert imported("import vae_runner.run, vae_runner.api") == ["torch"]


def test_the_digits_loader_reads_scikit_learn_s_file_without_importing_it():
    from sklearn.datasets import load_digits

    from vae_runner.data.digits import digits_file

    pixels, labels = digits_file()
    bunch = load_digits()
    assert (pixels == bunch.data).all() and (labels == bunch.target).all() and pixels.dtype == bunch.data.dtype
    assert imported("from vae_runner.data.digits import load_digits\nload_digits(0.1, 0.2, 0)") == ["torch"]


def test_a_whole_run_imports_no_torch_dynamo(tmp_path):
    """Training (the optimizer, the thread choice's multiply-add count) and the final evaluation (the probe's solver,
    the pictures) without torch._dynamo, which torch.optim, FlopCounterMode and LBFGS import on first use (1.8 s)."""
    from conftest import FAST

    run = f"import vae_runner\nvae_runner.train({[*FAST, 'trainer.epochs=1']!r}, run_dir={str(tmp_path / 'run')!r})"
    assert "torch._dynamo" not in imported(run)
