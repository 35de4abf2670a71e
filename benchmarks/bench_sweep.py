"""Wall time of a 4-run `digits` sweep: Hydra's basic (sequential) launcher vs the joblib launcher with n_jobs = 2.

    python benchmarks/bench_sweep.py                     # 4 runs (beta=1,2,3,4), default 100 epochs, 3 repeats
    python benchmarks/bench_sweep.py --epochs 30 --repeats 1 --json bench_sweep.json

Each repeat runs both commands, alternating, in fresh sweep directories; the times are whole `vae-run -m`
invocations (start-up, every run's training and final evaluation). The joblib runs get one torch thread each (the
runner's default when runs share the CPU); the sequential runs keep torch's default.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    exe = shutil.which("vae-run") or str(Path(sys.executable).parent / "vae-run")
    sweep = ["-m", "dataset=digits", "beta=1,2,3,4", f"trainer.epochs={args.epochs}", "logger.progress_bar=false"]
    launchers = {"basic": [], "joblib n_jobs=2": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]}
    times: dict[str, list[float]] = {name: [] for name in launchers}
    for r in range(args.repeats):
        for name, extra in launchers.items():
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                done = subprocess.run(
                    [exe, *sweep, *extra, f"hydra.sweep.dir={tmp}/sweep"], capture_output=True, text=True
                )
                wall = time.perf_counter() - t0
                if done.returncode != 0 or len(list(Path(tmp).glob("sweep/*/metrics.json"))) != 4:
                    sys.exit(f"{name} failed:\n{done.stderr[-3000:]}")
            times[name].append(wall)
            print(f"repeat {r + 1} {name}: {wall:.1f} s", flush=True)
    basic, par = statistics.median(times["basic"]), statistics.median(times["joblib n_jobs=2"])
    result = {
        "command": " ".join(["vae-run", *sweep]),
        "repeats": times,
        "basic_s": basic,
        "joblib_s": par,
        "ratio": par / basic,
    }
    print(json.dumps({k: v for k, v in result.items() if k != "repeats"}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
