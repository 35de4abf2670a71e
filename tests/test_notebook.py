"""examples/tour.ipynb runs from top to bottom in a fresh Jupyter kernel (nbclient, headless), as a reader runs it:
train, load, sample, encode, log-likelihood, impute, pool."""

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "tour.ipynb"


def test_the_example_notebook_runs_and_shows_its_numbers(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    ).execute()
    printed = "".join(
        out.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs
    )
    assert "nats per image (16 test images, K = 200)" in printed
    assert "pooled mean" in printed and "95 % interval" in printed
    assert "epoch 2/30" not in printed  # the console's cadence: every 10th epoch's line, not every epoch's
    assert not [
        out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs if out.output_type == "error"
    ]
