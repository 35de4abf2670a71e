"""`vae-run -m hydra/launcher=batched ...`: a sweep's stackable jobs train as one stack and each still gets an
ordinary run directory (config, log, checkpoints, TensorBoard, metrics) with the numbers its sequential run gets;
jobs that cannot stack train alone; a re-launched sweep skips what finished."""

import json
from pathlib import Path

import torch
from conftest import FAST, vae_run
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from vae_runner.runs.checkpoint import load_checkpoint

SWEEP = ["seed=0,1", "beta=4"]  # per-member betas: test_batched.py


def metrics_of(sweep: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sweep.glob("*/metrics.json")}


def test_a_batched_sweep_writes_the_runs_a_sequential_sweep_writes(tmp_path):
    args = [*FAST, "trainer.limit_batches=3", "logger.images_every=1"]
    batched_sweep = ["-m", "hydra/launcher=batched", *SWEEP, "posterior=gaussian,mixture", *args, "hydra.sweep.dir=b"]
    done = vae_run(*batched_sweep, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout + done.stderr
    assert "training 2 runs as one stack" in out and "trains alone: posterior MixturePosterior" in out
    basic = vae_run("-m", *SWEEP, "posterior=gaussian", *args, "hydra.sweep.dir=s", cwd=tmp_path)
    assert basic.returncode == 0, basic.stderr
    batched, sequential = metrics_of(tmp_path / "b"), metrics_of(tmp_path / "s")
    assert len(batched) == 4 and len(sequential) == 2
    for name, alone in sequential.items():
        settings = name.split("_", 1)[1] + ",posterior=gaussian"  # 1_seed=1 -> *_seed=1,posterior=gaussian
        member = batched[next(n for n in batched if n.split("_", 1)[1] == settings)]
        for key in ("test/elbo", "test/log_likelihood", "val/elbo", "test/kl"):
            assert abs(member[key] - alone[key]) < 1e-3 * abs(alone[key]) + 1e-3, (name, key)
        assert member["epochs"] == alone["epochs"] == 2 and member["steps"] == alone["steps"] == 6
    stacked = next(d for d in (tmp_path / "b").iterdir() if d.name.endswith("seed=1,posterior=gaussian"))
    assert (stacked / ".hydra" / "config.yaml").is_file()
    log = (stacked / "vae-run.log").read_text()
    assert "one of a stack of 2 runs" in log and "epoch 2/2: val ELBO" in log and "test ELBO" in log
    last, best = (load_checkpoint(stacked / "checkpoints" / n) for n in ("last.pt", "best.pt"))
    assert best["stacked"] == 2 and last["config"]["beta"] == 4.0 and last["epoch"] == 2 and best["epoch"] >= 1
    assert all(torch.isfinite(v).all() for v in last["model"].values())
    events = EventAccumulator(str(stacked), size_guidance={"images": 0}).Reload()
    tags = events.Tags()
    assert {"train/loss", "train/kl", "train/grad_norm", "train/beta", "val/elbo", "test/elbo"} <= set(tags["scalars"])
    assert [e.value for e in events.Scalars("train/beta")] == [4.0] * len(events.Scalars("train/beta"))
    assert len(events.Images("samples")) == 2  # one per validation (images_every=1)
    again = vae_run(*batched_sweep, cwd=tmp_path)  # re-launched: nothing stacks or trains again
    assert again.returncode == 0 and (again.stdout + again.stderr).count("has finished already") == 4
