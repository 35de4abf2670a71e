"""Training throughput of a sweep's members trained one after another vs as one stack (issue 16), in one process.

    python benchmarks/bench_batched.py                        # both workloads, 1 and 2 threads, 3 interleaved repeats
    python benchmarks/bench_batched.py --workloads digits8 --threads 2 --json out.json
    python benchmarks/bench_batched.py --device cuda --threads 1                  # on a GPU

Workloads: `digits8`, the 8-run digits sweep `beta=1,2,4,8 seed=0,1` (the default MLP 64-512-256-16); `fmnist4`, 4
Fashion-MNIST runs (MLP 784-512-256-16, seeds 0-3). Variants, each timed over the same number of training steps per
member after a warm-up, repeats interleaved, medians reported as images per second summed over the members:
- `sequential`: each member's own Trainer.train_epoch, one member after the other (what M runs spend in steps);
- `stacked`: batched_training.Stack, all members in one step (batched layers, baddbmm);
- `vmap`: torch.func.stack_module_state + functional_call under vmap over the members' own modules (the
  alternative design, kept here to show why the stacked layers were chosen).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.func import functional_call, stack_module_state, vmap

from vae_runner import build
from vae_runner.config.compose import compose_config
from vae_runner.stacking.stack import Stack

COMMON = ["logger.tensorboard=false", "logger.progress_bar=false"]
WORKLOADS = {
    "digits8": [["dataset=digits", f"beta={b}", f"seed={s}"] for s in (0, 1) for b in (1, 2, 4, 8)],
    "fmnist4": [
        ["dataset=fashion_mnist", "architecture.hidden=[512,256]", "latent_dim=16", f"seed={s}"] for s in range(4)
    ],
}


def configs(runs: list[list[str]], steps: int, threads: int, device: str):
    return [
        compose_config(
            [
                *COMMON,
                *run,
                f"trainer.device={device}",
                f"trainer.limit_batches={steps}",
                f"trainer.num_threads={threads}",
            ],
        )
        for run in runs
    ]


def sequential(cfgs, tmp: Path):
    trainers = [build.make_trainer(cfg, tmp / str(i)) for i, cfg in enumerate(cfgs)]

    def run():
        for trainer in trainers:
            trainer.train_epoch()

    return run


def stacked(cfgs, tmp: Path):
    stack = Stack(cfgs)

    def run():
        for x, noise in stack.batches.epoch():
            stack.step(x, noise)

    return run


class MemberLoss(torch.nn.Module):
    """One member's mean loss as a module's forward, for functional_call."""

    def __init__(self, vae, objective):
        super().__init__()
        self.vae, self.objective = vae, objective

    def forward(self, x, noise, weight):
        return self.objective(self.vae, x, noise=lambda k, d: noise, weight=weight)["loss"].mean()


def vmapped(cfgs, tmp: Path):
    stack = Stack(cfgs)  # for its data and per-member batches
    members = []
    for cfg in cfgs:
        device = build.setup(cfg)
        members.append(build.build_model(cfg, stack.data, device))
    params, buffers = stack_module_state([MemberLoss(m, stack.objectives[0]) for m in members])
    template = MemberLoss(copy.deepcopy(members[0]).to("meta"), stack.objectives[0])
    optimizer = torch.optim.Adam(params.values(), lr=cfgs[0].trainer.lr, fused=True)
    weights = torch.tensor([o.kl_weight(None) for o in stack.objectives], device=stack.device)

    def member_loss(p, b, x, noise, weight):
        return functional_call(template, {**p, **b}, (x, noise, weight))

    def run():
        for x, noise in stack.batches.epoch():
            loss = vmap(member_loss, in_dims=(0, 0, 0, 1, 0))(params, buffers, x, noise, weights)
            optimizer.zero_grad(set_to_none=True)
            loss.sum().backward()
            optimizer.step()

    return run


def runs_of_images(cfgs) -> range:
    """The training images one member sees in one timed run: `steps` batches, or the whole (smaller) train split."""
    cfg = cfgs[0]
    n_train = len(build.load_data(cfg, torch.device("cpu")).train)
    return range(min(n_train, cfg.trainer.limit_batches * cfg.trainer.batch_size))


VARIANTS = {"sequential": sequential, "stacked": stacked, "vmap": vmapped}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="cuda: times include a synchronize")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per member per repeat (at most an epoch)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--members", type=int, help="only the workload's first N runs (a quick check)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for workload in args.workloads:
            for threads in args.threads:
                torch.set_num_threads(threads)
                cfgs = configs(WORKLOADS[workload][: args.members], args.steps, threads, args.device)
                sync = torch.cuda.synchronize if args.device == "cuda" else lambda: None
                runs = {v: VARIANTS[v](cfgs, Path(tmp) / workload / v) for v in args.variants}
                for run in runs.values():
                    run()  # warm-up
                sync()
                seconds = {v: [] for v in runs}
                for _ in range(args.repeats):
                    for v, run in runs.items():
                        t0 = time.perf_counter()
                        run()
                        sync()
                        seconds[v].append(time.perf_counter() - t0)
                images = len(cfgs) * len(runs_of_images(cfgs))  # per member per timed run
                row = {"workload": workload, "members": len(cfgs), "threads": threads, "device": args.device}
                for v, times in seconds.items():
                    row[f"{v}_images_per_s"] = round(images / statistics.median(times))
                if "sequential" in runs:
                    for v in runs:
                        row[f"{v}_vs_sequential"] = round(row[f"{v}_images_per_s"] / row["sequential_images_per_s"], 2)
                results.append(row)
                print(json.dumps(row), flush=True)
    out = {"torch": torch.__version__, "python": sys.version.split()[0], "steps": args.steps, "rows": results}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
