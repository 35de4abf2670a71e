"""The default number of torch threads (host/threads.py): the cores this process may use (affinity, cgroup quota,
Slurm), less those other processes keep busy, and one thread for a small model; OMP_NUM_THREADS and
trainer.num_threads win; the choice is logged. Speed itself is measured by benchmarks/bench_threads.py, not here."""

import logging

import pytest
from conftest import make_cfg, tiny_data, tiny_vae

from vae_runner import build
from vae_runner.config.compose import build_option
from vae_runner.host import threads

BIG = 10 * threads.SMALL_STEP_MACS


@pytest.fixture
def machine(monkeypatch):
    """A 16-core machine with nothing else running and no limits, unless a test sets them."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 16)
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    monkeypatch.setattr(threads, "cgroup_quota", lambda: None)
    monkeypatch.setattr(threads, "busy_cores", lambda: 0.0)
    return monkeypatch


def test_every_limit_on_the_cores_is_respected(machine):
    assert threads.choose(BIG) == (16, "16 usable cores (machine)")
    machine.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})  # taskset / cpuset
    assert threads.choose(BIG)[0] == 4 and "CPU affinity" in threads.choose(BIG)[1]
    machine.setattr(threads, "cgroup_quota", lambda: 3)  # docker --cpus=2.5, rounded up
    assert threads.choose(BIG)[0] == 3 and "cgroup" in threads.choose(BIG)[1]
    machine.setenv("SLURM_CPUS_PER_TASK", "2")
    assert threads.choose(BIG) == (2, "2 usable cores (SLURM_CPUS_PER_TASK)")
    assert threads.choose(BIG, runs_at_once=2)[0] == 1


def test_busy_cores_and_small_models_get_fewer_threads(machine):
    machine.setattr(threads, "busy_cores", lambda: 13.7)
    n, why = threads.choose(BIG)
    assert n == 2 and "13.7 of them busy" in why
    n, why = threads.choose(threads.SMALL_STEP_MACS / 2)
    assert n == 1 and "small model" in why
    machine.setenv("OMP_NUM_THREADS", "5")
    assert threads.choose(BIG) == (5, "OMP_NUM_THREADS")


def test_cgroup_v2_quota_is_read_in_whole_cores(tmp_path, monkeypatch):
    real_path = threads.Path
    files = {"/sys/fs/cgroup/cpu.max": "250000 100000\n"}
    monkeypatch.setattr(threads, "Path", lambda p: real_path(tmp_path / "x") if p not in files else _Text(files[p]))
    assert threads.cgroup_quota() == 3
    files["/sys/fs/cgroup/cpu.max"] = "max 100000\n"
    assert threads.cgroup_quota() is None


class _Text:
    def __init__(self, text):
        self.text = text

    def read_text(self):
        return self.text


def test_busy_cores_counts_running_processes_but_not_this_one():
    assert 0.0 <= threads.busy_cores(samples=3, interval=0.0) < 1000


def test_step_work_is_counted_without_touching_the_random_state():
    import torch

    model, data = tiny_vae("mog", "bernoulli"), tiny_data(32)
    torch.manual_seed(3)
    before = torch.get_rng_state()
    macs = threads.step_macs(model, build_option("objective", "elbo"), data.train.floats(slice(0, 32)))
    assert torch.equal(before, torch.get_rng_state())
    # the decoder alone is (latent 2 -> 8 -> 16) per row: 32 rows x (2*8 + 8*16) multiply-adds at least
    assert macs >= 32 * (2 * 8 + 8 * 16)


def test_a_run_logs_its_choice(machine, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="vae_runner")
    trainer = build.make_trainer(make_cfg(), tmp_path)
    trainer.logger.close()
    assert "torch threads for training: 1 (a small model" in caplog.text
    trainer = build.make_trainer(make_cfg("trainer.num_threads=1"), tmp_path / "b")
    trainer.logger.close()
    assert "torch threads for training: 1 (trainer.num_threads)" in caplog.text


@pytest.mark.parametrize("prior", ["gaussian", "vamp"])
def test_step_work_equals_torch_s_flop_counter(prior):
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model, data = tiny_vae(prior, "bernoulli"), tiny_data(32)
    objective, x = build_option("objective", "elbo"), data.train.floats(slice(0, 32))
    with torch.no_grad(), FlopCounterMode(display=False) as oracle:
        objective(model, x)
    assert threads.step_macs(model, objective, x) == oracle.get_total_flops() / 2 > 0


@pytest.mark.parametrize("transposed", [False, True])
def test_convolution_multiply_adds_equal_torch_s_flop_counter(transposed):
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from vae_runner.host.macs import CountMacs

    conv = torch.nn.ConvTranspose2d if transposed else torch.nn.Conv2d
    net = torch.nn.Sequential(conv(3, 8, 4, stride=2, padding=1, groups=1), conv(8, 4, 3, groups=2), torch.nn.Flatten())
    x = torch.randn(5, 3, 9, 9)
    with torch.no_grad(), FlopCounterMode(display=False) as oracle:
        net(x)
    with torch.no_grad(), CountMacs() as ours:
        net(x)
    assert ours.macs == oracle.get_total_flops() / 2 > 0
