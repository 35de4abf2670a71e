"""Training speed against torch's thread count, on an idle and on a loaded machine (benchmarks/BENCHMARKS.md "Threads").

For each model (the default digits MLP, the 2-D synthetic model, the Fashion-MNIST protocol's gated MLP with the
Gaussian prior and with the VampPrior, a Fashion-MNIST conv net) it runs `vae-run` with trainer.num_threads = 1, 2
and unset (vae-runner's own choice, host/threads.py), first alone, then beside `--load` busy processes (one spinning
Python loop per core: another user's job), and prints the median training time per epoch of each, with the number
of threads the default chose (from the run's log).

    python benchmarks/bench_threads.py                  # all models, idle then loaded (~10 min on 2 cores)
    python benchmarks/bench_threads.py --models digits --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from machine_load import busy

MODELS = {
    "digits": [],
    "synthetic_2d": ["experiment=synthetic_2d"],
    "fmnist_gated_gaussian": ["experiment=ll_fashion_mnist_gaussian"],
    "fmnist_gated_vamp": ["experiment=ll_fashion_mnist_vamp"],
    "fmnist_conv": ["dataset=fashion_mnist", "architecture=conv", "likelihood=mse"],
}
SHORT = [
    "trainer.epochs=3",
    "evaluation.iw_samples=5",
    "evaluation.test_limit=100",
    "evaluation.surgery_points=50",
    "evaluation.probe_train_points=200",
    "evaluation.triplets=100",
    "logger.progress_bar=false",
    "logger.tensorboard=false",
    "trainer.device=cpu",
]


def vae_run() -> str:
    return shutil.which("vae-run") or str(Path(sys.executable).parent / "vae-run")


def one(model: str, threads: str, batches: int, root: Path) -> tuple[float, str]:
    """Median seconds per training epoch of `batches` batches, and the log's line on the thread choice."""
    out = root / f"{model}-{threads}-{os.getpid()}-{len(list(root.iterdir()))}"
    setting = [] if threads == "default" else [f"trainer.num_threads={threads}"]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    done = subprocess.run(
        [vae_run(), *MODELS[model], *SHORT, f"trainer.limit_batches={batches}", *setting, f"hydra.run.dir={out}"],
        capture_output=True,
        text=True,
        env=env,
    )
    if done.returncode != 0:
        raise SystemExit(f"{model} with {threads} threads failed:\n{done.stderr[-2000:]}")
    log = (out / "vae-run.log").read_text()
    chose = re.search(r"torch threads for training: (\d+)", log)
    return json.loads((out / "metrics.json").read_text())["epoch_time_s"], chose.group(1) if chose else threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--threads", nargs="*", default=["1", "2", "default"])
    parser.add_argument("--batches", type=int, default=60, help="training batches per epoch (trainer.limit_batches)")
    parser.add_argument("--load", type=int, default=os.cpu_count(), help="busy processes for the loaded machine")
    parser.add_argument("--machines", nargs="*", default=["idle", "loaded"], choices=["idle", "loaded"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for loaded in [m == "loaded" for m in args.machines]:
            with busy(args.load if loaded else 0):
                for model in args.models:
                    for threads in args.threads:
                        seconds, chose = one(model, threads, args.batches, Path(tmp))
                        rows.append(
                            {
                                "model": model,
                                "load": args.load if loaded else 0,
                                "threads": threads,
                                "chose": chose,
                                "epoch_s": seconds,
                            }
                        )
                        print(f"{model:24s} load {rows[-1]['load']}  threads {threads:8s} ({chose}): {seconds:.2f} s")
    print(f"\n| model | load | {' | '.join(f'{t} thread(s)' for t in args.threads)} |")
    print(f"|---|---|{'---|' * len(args.threads)}")
    for model in args.models:
        for load in sorted({r["load"] for r in rows}):
            cells = [
                next(r for r in rows if (r["model"], r["load"], r["threads"]) == (model, load, t)) for t in args.threads
            ]
            text = [f"{c['epoch_s']:.2f} s" + (f" ({c['chose']})" if c["threads"] == "default" else "") for c in cells]
            print(f"| {model} | {load} | {' | '.join(text)} |")
    if args.json:
        args.json.write_text(json.dumps({"batches": args.batches, "cores": os.cpu_count(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
