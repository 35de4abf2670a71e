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


@pytest.mark.parametrize(
    "cpuinfo, chosen", [(X86_AVX2, "fp32"), (X86_BF16, "bf16"), (SAPPHIRE, "bf16"), (GRAVITON2, "fp32"), ("", "fp32")]
)
def test_auto_is_bf16_where_it_is_native_and_fp32_elsewhere(cpuinfo, chosen):
    flags = cpu_features.cpu_flags(cpuinfo)
    assert cpu_features.chosen_precision("auto", CPU, flags) == chosen
    assert [cpu_features.chosen_precision(p, CPU, flags) for p in ("fp32", "bf16")] == ["fp32", "bf16"]


@pytest.mark.parametrize("cpuinfo, chosen", [(X86_AVX2, "fp32"), (SAPPHIRE, "bf16")])
def test_an_auto_run_trains_and_evaluates_in_the_chosen_precision_and_says_so(
    cpuinfo, chosen, tmp_path, monkeypatch, caplog, no_threads
):
    from vae_runner.model.vae import VAE

    real, entered = cpu_features.cpu_flags, []
    monkeypatch.setattr(cpu_features, "cpu_flags", lambda: real(cpuinfo))
    real_precision = VAE.precision
    monkeypatch.setattr(VAE, "precision", lambda self, name: entered.append(name) or real_precision(self, name))
    caplog.set_level(logging.INFO, logger="vae_runner")
    run.train(make_cfg("trainer.precision=auto", "evaluation.precision=auto", "trainer.limit_batches=1"), tmp_path)
    assert set(entered) == {chosen}  # every training step's and the log-likelihood's networks
    said = [r.getMessage() for r in caplog.records if "precision=auto:" in r.getMessage()]
    assert [m.split(":")[1].split()[0] for m in said] == [chosen, chosen]
    assert said[0].startswith("trainer.precision=auto") and said[1].startswith("evaluation.precision=auto")


@pytest.mark.parametrize("cpuinfo, alone", [(X86_AVX2, None), (SAPPHIRE, "bf16 or torch.compile")])
def test_the_batched_launcher_stacks_an_auto_run_only_where_it_resolves_to_fp32(cpuinfo, alone, monkeypatch):
    from vae_runner.stacking.launcher import why_alone

    real = cpu_features.cpu_flags
    monkeypatch.setattr(cpu_features, "cpu_flags", lambda: real(cpuinfo))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert why_alone(make_cfg("trainer.precision=auto")) == alone  # a stack trains in fp32 (stacking/loop.py)
