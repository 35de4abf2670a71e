"""Start-up against torch's own import: `vae-run --help` and a 1-epoch digits run, each timed as a whole process
and divided by a bare `python -c "import torch"` timed in the same round (rounds interleave the commands, so a
drift in machine speed hits them alike; the ratios are per round, then the median).

    python benchmarks/time_startup.py --rounds 7
    python benchmarks/time_startup.py --rounds 7 --tree /path/to/another/checkout   # the same for that tree too

`--tree`: also time the commands with that checkout first on PYTHONPATH (git worktree add <dir> <commit>; its
package must find its configs: ln -s <dir>/configs <dir>/vae_runner/configs), interleaved with this tree's.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = {
    "import torch": ["-c", "import torch"],
    "vae-run --help": ["-m", "vae_runner", "--help"],
    "1-epoch digits run": ["-m", "vae_runner", "trainer.epochs=1"],
}


def timed(args: list[str], tree: str | None) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    if tree:
        env["PYTHONPATH"] = tree
    with tempfile.TemporaryDirectory() as work:
        run_dir = [f"hydra.run.dir={work}/run"] if "trainer.epochs=1" in args else []
        start = time.perf_counter()
        subprocess.run([sys.executable, *args, *run_dir], cwd=work, env=env, check=True, capture_output=True)
        return time.perf_counter() - start


def cpu_model() -> str:
    try:
        line = next(x for x in Path("/proc/cpuinfo").read_text().splitlines() if x.startswith("model name"))
        return line.split(":", 1)[1].strip()
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tree", help="another checkout to time beside this one")
    args = parser.parse_args()
    trees = {"this tree": None, **({f"tree {args.tree}": args.tree} if args.tree else {})}
    seconds = {(t, c): [] for t in trees for c in COMMANDS}
    for _ in range(args.rounds + 1):  # the first round warms the file cache and is dropped
        for t, path in trees.items():
            for c, command in COMMANDS.items():
                seconds[t, c].append(timed(command, path))
    print(f"{cpu_model()}, {os.cpu_count()} cores, {args.rounds} rounds, median wall seconds (ratio to import torch)")
    for t in trees:
        base = seconds[t, "import torch"][1:]
        for c in COMMANDS:
            runs = seconds[t, c][1:]
            ratio = statistics.median(r / b for r, b in zip(runs, base))
            print(f"  {t:>12}  {c:<20} {statistics.median(runs):6.2f} s   {ratio:5.2f}x")


if __name__ == "__main__":
    main()
