"""How many torch threads a CPU run uses when `trainer.num_threads` is not set (`choose`): the cores this process
may use (CPU affinity, the cgroup's CPU quota, `SLURM_CPUS_PER_TASK`), less the cores other processes keep busy
(running now), shared among the runs Hydra's joblib launcher starts at once; and 1 for a model whose training
step is a few small matrix products, where more threads only add synchronisation. torch's own default (one thread
per core of the machine) is what made runs on a shared machine or Slurm node several times slower
(benchmarks/BENCHMARKS.md "Threads"). An OMP_NUM_THREADS in the environment is the user's choice and is kept.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path

# Multiply-adds per training step (forward, one direction) below which one thread is fastest: measured with
# benchmarks/bench_threads.py (benchmarks/BENCHMARKS.md "Threads").
SMALL_STEP_MACS = 50e6


def usable_cores() -> tuple[int, str]:
    """The cores this process may use, and what limited them."""
    limits = {"machine": os.cpu_count() or 1}
    if hasattr(os, "sched_getaffinity"):
        limits["CPU affinity"] = len(os.sched_getaffinity(0))
    if (quota := cgroup_quota()) is not None:
        limits["cgroup CPU quota"] = quota
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if slurm.isdigit() and int(slurm) > 0:
        limits["SLURM_CPUS_PER_TASK"] = int(slurm)
    name = min(limits, key=lambda k: (limits[k], k != "machine"))
    return limits[name], name


def cgroup_quota() -> int | None:
    """The cgroup's CPU quota in whole cores (rounded up), or None when there is none (v2: cpu.max, v1: cfs)."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if quota == "max" else max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return None if quota <= 0 else max(1, math.ceil(quota / period))
    except (OSError, ValueError):
        return None


def busy_cores(samples: int = 20, interval: float = 0.005) -> float:
    """Cores other processes keep busy now: the mean number of running threads other than this one over ~0.1 s
    (Linux's procs_running; the load average would still count a sweep's previous, finished run). 0 elsewhere."""
    counts = []
    for _ in range(samples):
        try:
            text = Path("/proc/stat").read_text()
        except OSError:
            return 0.0
        counts.append(next((int(line.split()[1]) for line in text.splitlines() if line.startswith("procs_running")), 1))
        time.sleep(interval)
    return max(0.0, sum(counts) / len(counts) - 1)


def step_macs(model, objective, x, y=None) -> float:
    """Multiply-adds of the matrix products and convolutions of one forward pass of the loss on the batch `x`
    (labels `y`: encoder, prior, decoder, likelihood), as torch's FlopCounterMode counts them (tests/test_threads.py)
    without its import of torch._dynamo (1.8 s); the global RNG is left as it was, so the run's numbers do not
    change."""
    import torch

    from vae_runner.host.macs import CountMacs

    with torch.random.fork_rng(devices=[]), torch.no_grad(), CountMacs() as counter:
        objective(model, x, y)
    return float(counter.macs)


def choose(step_macs: float, runs_at_once: int = 1) -> tuple[int, str]:
    """Threads for a run whose training step costs `step_macs` multiply-adds, and why (for the log)."""
    if os.environ.get("OMP_NUM_THREADS", "").isdigit() and int(os.environ["OMP_NUM_THREADS"]) > 0:
        return int(os.environ["OMP_NUM_THREADS"]), "OMP_NUM_THREADS"  # the user's own choice
    cores, limit = usable_cores()
    if step_macs < SMALL_STEP_MACS:
        return 1, f"a small model ({step_macs / 1e6:.0f}M multiply-adds per step): one thread is fastest"
    share = max(1, cores // max(1, runs_at_once))
    busy = busy_cores()
    free = max(1, math.floor(cores - busy + 0.5))
    n = min(share, free)
    why = f"{cores} usable cores ({limit})"
    if runs_at_once > 1:
        why += f" shared by {runs_at_once} runs at once"
    if free < share:
        why += f", {busy:.1f} of them busy with other processes"
    return n, why


def use_threads(num_threads: int | None, device, step_macs_of: Callable[[], float], stage: str) -> str | None:
    """Set torch's CPU threads for `stage` (a run's training or evaluation, a stack's step): `num_threads`
    (trainer.num_threads) when set, else `choose`'s pick for the work of one step (`step_macs_of()`, counted only
    then); returns the line that says so, for the caller's log. On a GPU nothing (None)."""
    if device.type != "cpu":
        return None
    if num_threads:
        n, why = num_threads, "trainer.num_threads"
    else:
        n, why = choose(step_macs_of())
    import torch

    torch.set_num_threads(n)
    return f"torch threads for {stage}: {n} ({why})"
