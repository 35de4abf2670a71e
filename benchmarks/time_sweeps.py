"""Wall time of a whole sweep, `vae-run -m <overrides>`, with Hydra's basic launcher (one run after the other) and with
`hydra/launcher=batched` (the stackable runs as one stack), interleaved, as a researcher runs them.

    python benchmarks/time_sweeps.py --repeats 3 -- beta=1,2,4,8 seed=0,1          # the issue-16 digits sweep
    python benchmarks/time_sweeps.py --repeats 1 --json out.json -- dataset=fashion_mnist seed=0,1,2,3 trainer.epochs=10

Each sweep runs in a fresh temporary directory; per repeat the script prints both wall times and their ratio, then
the medians, and each run's test ELBO under both launchers (the batched runs must agree with the sequential ones
within seed-to-seed noise), with --json written to a file.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LAUNCHERS = {"basic": [], "batched": ["hydra/launcher=batched"]}


def sweep(exe: str, launcher: str, overrides: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as cwd:
        args = [exe, "-m", *LAUNCHERS[launcher], *overrides, "logger.progress_bar=false", "hydra.sweep.dir=sweep"]
        t0 = time.perf_counter()
        done = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if done.returncode != 0:
            sys.exit(f"vae-run -m failed ({launcher}):\n{done.stderr[-3000:]}")
        runs = {}
        for metrics_file in sorted(Path(cwd, "sweep").glob("*/metrics.json")):
            metrics = json.loads(metrics_file.read_text())
            name = metrics_file.parent.name.split("_", 1)[-1]
            runs[name] = {k: metrics[k] for k in ("test/elbo", "test/log_likelihood", "train_time_s")}
    return {"wall_s": round(wall, 2), "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("overrides", nargs="+", help="the sweep's overrides (after --)")
    args = parser.parse_args()
    exe = shutil.which("vae-run") or str(Path(sys.executable).parent / "vae-run")
    repeats = []
    for i in range(args.repeats):
        row = {launcher: sweep(exe, launcher, args.overrides) for launcher in LAUNCHERS}  # interleaved
        row["ratio"] = round(row["batched"]["wall_s"] / row["basic"]["wall_s"], 3)
        repeats.append(row)
        basic, batched = row["basic"]["wall_s"], row["batched"]["wall_s"]
        print(f"repeat {i + 1}: basic {basic} s, batched {batched} s, ratio {row['ratio']}", flush=True)
    result = {
        "command": " ".join(["vae-run -m", *args.overrides]),
        "median_basic_s": statistics.median(r["basic"]["wall_s"] for r in repeats),
        "median_batched_s": statistics.median(r["batched"]["wall_s"] for r in repeats),
        "median_ratio": statistics.median(r["ratio"] for r in repeats),
        "test_elbo": {
            name: {launcher: repeats[0][launcher]["runs"][name]["test/elbo"] for launcher in LAUNCHERS}
            for name in repeats[0]["basic"]["runs"]
        },
        "repeats": repeats,
    }
    print(json.dumps({k: v for k, v in result.items() if k != "repeats"}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
