"""bf16 only where it pays: the CPU's native bf16 support read from /proc/cpuinfo, and the warning a bf16 run gets on
a CPU that only emulates it (faked capability: the test machine's own CPU may have it or not)."""

import logging

import pytest
import torch
from conftest import make_cfg

from vae_runner import run
from vae_runner.host import cpu_features

X86_AVX2 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx avx2 fma\n"
X86_BF16 = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512bw avx512_bf16\n"
SAPPHIRE = "flags\t\t: avx2 avx512f amx_bf16 amx_tile\n"
GRAVITON3 = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n"
GRAVITON2 = "processor\t: 0\nFeatures\t: fp asimd atomics\n"
CPU = torch.device("cpu")


@pytest.mark.parametrize(
    "cpuinfo, native",
    [(X86_AVX2, False), (X86_BF16, True), (SAPPHIRE, True), (GRAVITON3, True), (GRAVITON2, False), ("", None)],
)
def test_native_bf16_from_cpuinfo(cpuinfo, native):
    assert cpu_features.native_bf16(CPU, cpu_features.cpu_flags(cpuinfo)) is native


@pytest.mark.parametrize("threads, said", [(1, "1 thread)"), (2, "2 threads)")])
def test_the_device_name_gives_the_cpu_model_and_the_thread_count(threads, said, monkeypatch):
    monkeypatch.setattr(cpu_features, "read_cpuinfo", lambda: "processor\t: 0\nmodel name\t: AMD EPYC 7B13\n")
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    assert cpu_features.device_name(CPU) == f"cpu (AMD EPYC 7B13, {said}"


def test_the_warning_names_the_setting_and_the_fix():
    warning = cpu_features.slow_bf16_warning("evaluation.precision", CPU, cpu_features.cpu_flags(X86_AVX2))
    assert "evaluation.precision=bf16" in warning and "Set evaluation.precision=fp32" in warning
    assert cpu_features.slow_bf16_warning("trainer.precision", CPU, cpu_features.cpu_flags(X86_BF16)) is None


@pytest.mark.parametrize("cpuinfo, warned", [(X86_AVX2, True), (X86_BF16, False)])
def test_a_bf16_run_on_a_cpu_without_it_is_warned(cpuinfo, warned, tmp_path, monkeypatch, caplog, no_threads):
    real = cpu_features.cpu_flags
    monkeypatch.setattr(cpu_features, "cpu_flags", lambda: real(cpuinfo))  # this CPU, as the test has it
    caplog.set_level(logging.WARNING, logger="vae_runner")
    run.train(make_cfg("trainer.precision=bf16", "evaluation.precision=bf16", "trainer.limit_batches=1"), tmp_path)
    said = [r.getMessage() for r in caplog.records if "=bf16, but this CPU" in r.getMessage()]
    assert [m.split("=")[0] for m in said] == (["trainer.precision", "evaluation.precision"] if warned else [])
