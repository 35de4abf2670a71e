"""Wall-clock timings of whole `vae-run` invocations, as a researcher runs them.

    python benchmarks/time_runs.py --repeats 3                                  # `vae-run` with no arguments
    python benchmarks/time_runs.py --repeats 3 -- dataset=fashion_mnist trainer.epochs=1
    python benchmarks/time_runs.py --repeats 3 --load 2                         # beside 2 busy processes

Each repeat runs in a fresh temporary working directory; the script prints, per repeat, the process wall time and
the training time the run itself recorded (metrics.json: train_time_s, which excludes start-up, data loading and
the final evaluation; train_steps_s, the part of it inside training epochs, i.e. without validation, pictures and
checkpoints, and their ratio, steps_share; epoch_time_s, the median training time per epoch), then the medians,
and writes them as JSON with --json.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine_load import busy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the result here")
    parser.add_argument("--load", type=int, default=0, help="busy processes beside the runs (a loaded machine)")
    parser.add_argument("overrides", nargs="*", help="vae-run overrides (after --)")
    args = parser.parse_args()
    exe = shutil.which("vae-run") or str(Path(sys.executable).parent / "vae-run")
    rows = []
    with busy(args.load):
        for i in range(args.repeats):
            rows.append(one(exe, args.overrides))
            print(f"repeat {i + 1}: {rows[-1]}")
    result = {
        "command": " ".join(["vae-run", *args.overrides]),
        "machine": platform.processor() or platform.machine(),
        "load": args.load,
        "repeats": rows,
        "median_wall_s": statistics.median(r["wall_s"] for r in rows),
        "median_train_time_s": statistics.median(r["train_time_s"] for r in rows),
        "median_epoch_time_s": statistics.median(r["epoch_time_s"] for r in rows),
        "median_steps_share": statistics.median(r["steps_share"] for r in rows if r["steps_share"] is not None)
        if all(r["steps_share"] is not None for r in rows)
        else None,
        "threads": sorted({r["threads"] for r in rows}),
    }
    print(json.dumps({k: v for k, v in result.items() if k != "repeats"}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


def one(exe: str, overrides: list[str]) -> dict:
    """One `vae-run` in a fresh temporary directory: its wall time and what its metrics.json and log recorded."""
    with tempfile.TemporaryDirectory() as cwd:
        t0 = time.perf_counter()
        done = subprocess.run([exe, *overrides, "logger.progress_bar=false"], cwd=cwd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if done.returncode != 0:
            sys.exit(f"vae-run failed:\n{done.stderr}")
        (metrics_file,) = Path(cwd).glob("outputs/**/metrics.json")
        metrics = json.loads(metrics_file.read_text())
        chose = re.search(r"torch threads for training: (\d+)", (metrics_file.parent / "vae-run.log").read_text())
    return {
        "wall_s": round(wall, 2),
        "train_time_s": metrics["train_time_s"],
        "epoch_time_s": metrics["epoch_time_s"],
        "train_steps_s": metrics.get("train_steps_s"),  # absent before vae-runner recorded it
        "steps_share": round(metrics["train_steps_s"] / metrics["train_time_s"], 3)
        if "train_steps_s" in metrics
        else None,
        "epochs": metrics["epochs"],
        "steps": metrics["steps"],
        "threads": chose.group(1) if chose else "?",
        "test/elbo": round(metrics["test/elbo"], 3),
    }


if __name__ == "__main__":
    main()
