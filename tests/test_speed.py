"""The speed features keep the numbers: exact fast binarisation, bf16 autocast confined to the networks (likelihood,
KL and sums in fp32), subnormal flushing, fused Adam, torch.compile with its fallback, and the benchmark script
itself run end to end on a few real steps. (Speed is measured by benchmarks/bench.py, never by a timed test.)"""

import json
import logging
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import make_cfg

from vae_runner import build, run
from vae_runner.config.compose import build_option
from vae_runner.data import resample_binary
from vae_runner.model.vae import autocast
from vae_runner.optimizers import Adam

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_fast_binarisation_is_exactly_bernoulli_of_the_grey_level(dtype):
    """Every grey level 0..255 is drawn 20000 times: the frequencies of ones match level / 255 (their z-scores look
    standard normal: none beyond 5, mean ~0, mean square ~1), 0 and 255 are deterministic, the output float32."""
    levels = torch.arange(256, dtype=torch.uint8).repeat(20000, 1)  # (20000, 256)
    x = levels if dtype == torch.uint8 else levels.float() / 255
    torch.manual_seed(0)
    draws = resample_binary(x)
    assert draws.dtype == torch.float32 and set(draws.unique().tolist()) <= {0.0, 1.0}
    p = torch.arange(256, dtype=torch.float64) / 255
    freq = draws.double().mean(0)
    z = ((freq - p) / (p * (1 - p) / 20000).sqrt())[1:255]  # standard normal per level if exact
    assert freq[0] == 0 and freq[255] == 1
    assert z.abs().max() < 5 and abs(z.mean()) < 0.2 and 0.8 < z.pow(2).mean() < 1.2, z


def _trained(tmp_path, *overrides):
    cfg = make_cfg(
        "dataset=digits",
        "trainer.epochs=3",
        "trainer.limit_batches=null",
        "trainer.num_threads=1",
        "evaluation.iw_samples=20",
        *overrides,
    )
    return run.train(cfg, tmp_path)


def test_bf16_autocasts_the_networks_only(tmp_path):
    """Inside precision("bf16") the networks' matrix products run in bfloat16 (outputs differ from fp32 by
    bf16 rounding), while q(z|x), p(x|z), the KL and every term come out float32."""
    cfg = make_cfg("dataset=digits")
    device = build.setup(cfg)
    data = build.load_data(cfg, device)
    model = build.build_model(cfg, data, device)
    x = data.test.floats(slice(0, 64))
    torch.manual_seed(0)
    fp32 = build_option("objective", "elbo")(model, x)
    with model.precision("bf16"):
        q = model.posterior(x)
        px = model.decode(q.mean)
        torch.manual_seed(0)
        terms = build_option("objective", "elbo")(model, x)
    assert model.network_precision == "fp32"  # restored on exit
    assert q.mean.dtype == torch.float32 and px.base_dist.logits.dtype == torch.float32
    assert all(t.dtype == torch.float32 for t in terms.values())
    mu32 = model.posterior(x).mean
    assert not torch.equal(q.mean, mu32) and torch.allclose(q.mean, mu32, atol=0.05, rtol=0.05)
    assert torch.equal(terms["kl"], model.prior.analytic_kl(q))  # the KL: the fp32 formula on the bf16 posterior
    assert (fp32["elbo"] - terms["elbo"]).abs().max() < 1.0
    with autocast(device, "fp32"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


def test_bf16_training_is_within_a_fraction_of_a_nat_of_fp32(tmp_path, no_threads):
    fp32 = _trained(tmp_path / "fp32")
    bf16 = _trained(tmp_path / "bf16", "trainer.precision=bf16")
    assert math.isfinite(bf16["test/elbo"])
    assert abs(bf16["test/elbo"] - fp32["test/elbo"]) < 0.5, (bf16["test/elbo"], fp32["test/elbo"])


def test_flush_denormal_is_on_by_default_and_can_be_turned_off():
    try:
        build.setup(make_cfg())
        assert (torch.tensor([1e-39]) * 1.0).item() == 0.0  # a float32 subnormal, flushed
        build.setup(make_cfg("trainer.flush_denormal=false"))
        assert (torch.tensor([1e-39]) * 1.0).item() != 0.0
    finally:
        torch.set_flush_denormal(False)


def test_flushing_subnormals_leaves_the_metrics_unchanged(tmp_path, no_threads):
    try:
        flushed = _trained(tmp_path / "on")
        kept = _trained(tmp_path / "off", "trainer.flush_denormal=false")
    finally:
        torch.set_flush_denormal(False)
    for key in ("test/elbo", "test/recon", "test/kl", "test/log_likelihood", "val/elbo"):
        assert abs(flushed[key] - kept[key]) < 1e-3, key


def test_the_optimizer_is_fused_adam(tmp_path):
    trainer = build.make_trainer(make_cfg("dataset=digits"), tmp_path)
    assert isinstance(trainer.optimizer, Adam) and trainer.optimizer.defaults["fused"]
    trainer.logger.close()


def test_compile_falls_back_to_eager_with_a_message(tmp_path, monkeypatch, caplog, no_threads):
    def broken(*args, **kwargs):
        raise RuntimeError("Compiler: cc is not found")

    monkeypatch.setattr(torch, "compile", broken)
    with caplog.at_level(logging.WARNING, logger="vae_runner"):
        metrics = run.train(make_cfg("dataset=digits", "trainer.compile=true"), tmp_path)
    assert math.isfinite(metrics["test/elbo"])
    assert "torch.compile does not work on this machine (RuntimeError: Compiler: cc is not found)" in caplog.text
    assert "eager mode" in caplog.text


def test_compiled_networks_keep_their_checkpoint_keys(tmp_path, no_threads):
    """nn.Module.compile in place: the compiled run's checkpoint loads into a plain model."""
    torch._dynamo.reset()  # where torch.compile does not work, the run falls back to eager mode by itself
    metrics = run.train(make_cfg("dataset=digits", "trainer.compile=true", "trainer.limit_batches=2"), tmp_path)
    assert math.isfinite(metrics["test/elbo"])
    state = torch.load(tmp_path / "checkpoints" / "best.pt", weights_only=True)
    assert not any("_orig_mod" in k for k in state["model"])
    cfg = make_cfg("dataset=digits")
    model = build.build_model(cfg, build.load_data(cfg, torch.device("cpu")), torch.device("cpu"))
    model.load_state_dict(state["model"])


def test_bench_script_runs_every_implementation(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench.py"),
            "--dataset",
            "digits",
            "--epochs",
            "2",
            "--limit-batches",
            "3",
            "--batch-size",
            "64",
            "--hidden",
            "32",
            "--latent-dim",
            "4",
            "--threads",
            "1",
            "--ll-images",
            "10",
            "--ll-k",
            "20",
            "--json",
            str(out),
            "--impls",
            "plain",
            "plain-flush",
            "runner",
            "runner-bf16",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert set(result["results"]) == {"plain", "plain-flush", "runner", "runner-bf16"}
    for r in result["results"].values():
        assert len(r["epoch_s"]) == 2 and r["images_per_s"] > 0 and math.isfinite(r["test_elbo"])
    # the floor: forward and two backward products of each Linear (64-32-8 encoder, 4-32-64 decoder) at batch 64
    flops = 3 * 2 * 64 * (64 * 32 + 32 * 8 + 4 * 32 + 32 * 64)
    for precision in ("fp32", "bf16"):
        assert result["floor"][precision]["gflop_per_step"] == round(flops / 1e9, 6)
        assert result["floor"][precision]["epoch_s"] > 0
    assert all(r["share_of_floor"] > 0 for name, r in result["results"].items() if name.startswith("runner"))
    assert result["images_per_epoch"] == 3 * 64
    assert {"runner / plain", "runner / plain-flush", "runner-bf16 / runner"} <= set(result["ratios"])
    assert result["log_likelihood"]["fp32"]["images_per_s"] > 0
    assert abs(result["log_likelihood"]["fp32"]["mean_nats"] - result["log_likelihood"]["bf16"]["mean_nats"]) < 1
    assert result["machine"]["torch"] == torch.__version__


def test_conv_nets_run_channels_last_with_the_same_numbers():
    cfg = make_cfg("dataset=digits", "architecture=conv")
    data = build.load_data(cfg, torch.device("cpu"))
    model = build.build_model(cfg, data, torch.device("cpu"))
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d)]
    assert convs and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    x = data.test.floats(slice(0, 32))
    torch.manual_seed(0)
    nhwc = build_option("objective", "elbo")(model, x)
    model.to(memory_format=torch.contiguous_format)
    torch.manual_seed(0)
    nchw = build_option("objective", "elbo")(model, x)
    for key in nhwc:
        assert torch.allclose(nhwc[key], nchw[key], rtol=1e-4, atol=1e-3), key


def test_training_reads_the_device_only_every_log_every_steps(tmp_path, monkeypatch):
    """Host synchronisation points (item, tolist, bool, float, int, numpy) during a 40-step epoch with
    log_every=20: only the two windows' reads, nothing per step (what keeps a GPU busy)."""
    cfg = make_cfg(
        "dataset=digits",
        "trainer.limit_batches=40",
        "trainer.batch_size=16",
        "trainer.log_every=20",
        "trainer.grad_clip=5",
    )
    trainer = build.make_trainer(cfg, tmp_path)
    reads = []
    for name in ("item", "tolist", "__bool__", "__float__", "__int__", "numpy"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            reads.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    trainer.train_epoch()
    monkeypatch.undo()
    trainer.logger.close()
    assert trainer.global_step == 40
    assert 2 <= len(reads) <= 4, reads  # two windows x (running sums, first-bad steps)
