"""Epoch time and test ELBO of each prior under the same budget (issue: priors), one `vae-run` process per run.

    python benchmarks/bench_priors.py                        # Fashion-MNIST, MLP, batch 128, 3 epochs, 3 repeats
    python benchmarks/bench_priors.py --epochs 1 --repeats 1 --json bench_priors.json

Runs alternate between the priors within each repeat, so drifts in machine speed hit all of them alike. The epoch
time is the run's own median training time per epoch (metrics.json: epoch_time_s, no validation); the script prints
the median over repeats, its ratio to the Gaussian prior's, and the test ELBO (nats) after the budget.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PRIORS = {
    "gaussian": ["prior=gaussian"],
    "mog K=1000": ["prior=mog", "prior.n_components=1000"],
    "vamp K=500": ["prior=vamp", "prior.n_components=500"],
    "gtm 10x10": ["prior=gtm"],
    "gtm_vamp 10x10": ["prior=gtm_vamp"],
    "flow depth 4": ["prior=flow"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--only", nargs="*", help="a subset of: " + ", ".join(PRIORS))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    exe = shutil.which("vae-run") or str(Path(sys.executable).parent / "vae-run")
    common = [
        f"dataset={args.dataset}",
        "architecture=mlp",
        "trainer.batch_size=128",
        f"trainer.epochs={args.epochs}",
        f"trainer.num_threads={args.threads}",
        "trainer.device=cpu",
        "logger.progress_bar=false",
        "seed=0",
        "evaluation.iw_samples=10",
    ]  # the final log-likelihood is not what is compared here
    names = args.only or list(PRIORS)
    results = {name: [] for name in names}
    for r in range(args.repeats):
        for name in names:
            with tempfile.TemporaryDirectory() as tmp:
                done = subprocess.run(
                    [exe, *common, *PRIORS[name], f"hydra.run.dir={tmp}/run"], capture_output=True, text=True
                )
                if done.returncode != 0:
                    sys.exit(f"{name} failed:\n{done.stderr[-3000:]}")
                m = json.loads((Path(tmp) / "run" / "metrics.json").read_text())
            results[name].append({"epoch_time_s": m["epoch_time_s"], "test/elbo": m["test/elbo"]})
            print(
                f"repeat {r + 1} {name:>15}: {m['epoch_time_s']:.2f} s/epoch, test ELBO {m['test/elbo']:.2f}",
                flush=True,
            )
    base = statistics.median(x["epoch_time_s"] for x in results[names[0]])
    summary = []
    print(
        f"\n| prior | s/epoch (median of {args.repeats}) | x {names[0]} | test ELBO (nats) after {args.epochs} "
        f"epochs |\n|---|---|---|---|"
    )
    for name in names:
        t = statistics.median(x["epoch_time_s"] for x in results[name])
        elbo = statistics.median(x["test/elbo"] for x in results[name])
        summary.append({"prior": name, "epoch_time_s": t, "ratio": t / base, "test/elbo": elbo})
        print(f"| {name} | {t:.2f} | {t / base:.2f} | {elbo:.2f} |")
    if args.json:
        args.json.write_text(
            json.dumps({"args": vars(args) | {"json": str(args.json)}, "runs": results, "summary": summary}, indent=2)
            + "\n"
        )


if __name__ == "__main__":
    main()
