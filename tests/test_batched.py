"""A sweep's members trained as one stacked model: each member starts from, draws and ends where the standalone run
with its settings does (weights after several steps, to float rounding), stacked layers compute what the members'
nn.Linear layers compute, per-member clipping is clip_grad_norm_ per member, and what cannot stack says why."""

import pytest
import torch
from conftest import make_cfg

from vae_runner import build
from vae_runner.stacking.model import (
    StackedLinear,
    member_state_dict,
    not_stackable,
    stack_vaes,
)
from vae_runner.stacking.optimizer import StackedAdam
from vae_runner.stacking.stack import Stack, member_grad_norms, stack_key

SWEEP = [("seed=0", "beta=1"), ("seed=1", "beta=4"), ("seed=0", "beta=8")]
LRS = ("trainer.lr=0.001", "trainer.lr=0.003", "trainer.lr=0.0003")  # the sweep's members' learning rates, in order
STEPS = 4


def standalone_after(cfg, tmp_path):
    trainer = build.make_trainer(cfg, tmp_path)
    trainer.train_epoch()
    return trainer.model.state_dict(), trainer.optimizer.state_dict()


def batched_after(cfgs) -> Stack:
    stack = Stack(cfgs, limit_batches=STEPS)
    for x, noise in stack.batches.epoch():
        stack.step(x, noise)
    return stack


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param((), id="mlp"),
        pytest.param(("architecture=gated_mlp", "objective.warmup_epochs=2", "objective.free_bits=0.1"), id="gated"),
        pytest.param(("trainer.grad_clip=5",), id="clipped"),
        pytest.param(("prior=mog", "objective.free_bits=0.1"), id="mog"),
        pytest.param(("prior=vamp", "prior.n_components=20"), id="vamp"),
        pytest.param(("prior=gtm", "prior.grid_size=4"), id="gtm"),  # its grid network stacked, the grid shared
        pytest.param(("prior=gtm_vamp", "prior.grid_size=4"), id="gtm_vamp"),
        pytest.param(("prior=flow",), id="flow"),  # the coupling nets stacked
        pytest.param(("optimizer=adam_normgrad",), id="normgrad"),
        pytest.param(("likelihood=gaussian",), id="gaussian-likelihood"),  # a learned sigma per member
        pytest.param(LRS, id="lr"),
        pytest.param(("optimizer=adam_normgrad", *LRS), id="normgrad-lr"),
    ],
)
def test_each_member_follows_its_standalone_run(extra, tmp_path, no_threads):
    lrs = [e.split("=")[1] for e in extra if e.startswith("trainer.lr=")] or [None] * len(SWEEP)
    extra = [e for e in extra if not e.startswith("trainer.lr=")]  # one per member
    base = ("dataset=digits", f"trainer.limit_batches={STEPS}", *extra)
    cfgs = [make_cfg(*base, *run, *([f"trainer.lr={lr}"] if lr else [])) for run, lr in zip(SWEEP, lrs, strict=True)]
    stack = batched_after(cfgs)
    stacked = stack.model
    for m, cfg in enumerate(cfgs):
        alone, alone_adam = standalone_after(cfg, tmp_path / str(m))
        member = member_state_dict(stacked, m)
        assert member.keys() == alone.keys()
        for key in alone:
            # atol 1e-5 = 1 % of one step: Adam divides by sqrt(v) + eps, so a gradient element near eps (a
            # normalised one, AdamNormGrad) turns float rounding into a visible part of its step
            torch.testing.assert_close(member[key], alone[key], rtol=1e-4, atol=1e-5, msg=f"member {m}: {key}")
        adam = stack.optimizer.member_state(stacked, m)
        assert adam["param_groups"] == alone_adam["param_groups"] and adam["state"].keys() == alone_adam["state"].keys()
        for i, moments in alone_adam["state"].items():
            for k, v in moments.items():  # step, exp_avg, exp_avg_sq: loadable into the standalone run's Adam
                atol = 1e-5 * v.abs().max().item()  # rounding relative to the tensor's scale (normalised gradients)
                torch.testing.assert_close(adam["state"][i][k], v, rtol=1e-3, atol=atol, msg=f"member {m}: {i}.{k}")
                assert adam["state"][i][k].is_contiguous()  # fused Adam miscomputes with transposed moments
    # the members differ (their seeds and betas do): a mix-up of streams or weights would not pass the loop above
    first = next(iter(alone))
    assert not torch.equal(member_state_dict(stacked, 0)[first], alone[first])


def test_stacked_layers_compute_the_members_layers():
    layers = [torch.nn.Linear(5, 3) for _ in range(4)]
    stacked = StackedLinear(layers)
    x = torch.randn(4, 2, 6, 5)  # member axis, then any leading dims
    expected = torch.stack([layer(x[m]) for m, layer in enumerate(layers)])
    torch.testing.assert_close(stacked(x), expected)
    for m, layer in enumerate(layers):
        assert torch.equal(stacked.member(m)["weight"], layer.weight) and torch.equal(
            stacked.member(m)["bias"], layer.bias
        )


def test_member_grad_norms_and_clipping_are_clip_grad_norm_per_member():
    from vae_runner.stacking.stack import clip_members_

    layers = [torch.nn.Linear(5, 3) for _ in range(3)]
    stacked = StackedLinear(layers)
    x = torch.randn(3, 8, 5)
    (stacked(x) * torch.tensor([1.0, 10.0, 100.0])[:, None, None]).pow(2).sum().backward()
    for m, layer in enumerate(layers):
        (layer(x[m]) * [1.0, 10.0, 100.0][m]).pow(2).sum().backward()
    params = list(stacked.parameters())
    norms = member_grad_norms(params)
    for m, layer in enumerate(layers):
        torch.testing.assert_close(norms[m], torch.nn.utils.get_total_norm([p.grad for p in layer.parameters()]))
    clip_members_(params, torch.full((3,), 50.0))
    for m, layer in enumerate(layers):
        torch.nn.utils.clip_grad_norm_(layer.parameters(), 50.0)
        torch.testing.assert_close(stacked.weight.grad[m].t(), layer.weight.grad)


@pytest.mark.parametrize(
    "overrides, reason",
    [
        (("dataset=digits", "architecture=conv"), "Conv2d"),
        (("dataset=tabular", "likelihood=correlated_gaussian"), "its likelihood (CorrelatedGaussian)"),
    ],
)
def test_what_cannot_stack_says_why(overrides, reason, no_threads):
    cfg = make_cfg(*overrides)
    device = build.setup(cfg)
    model = build.build_model(cfg, build.load_data(cfg, device), device)
    assert reason in not_stackable(model)
    with pytest.raises(ValueError, match="cannot stack"):
        stack_vaes([model, model])


def test_configs_stack_when_they_differ_only_in_member_keys():
    base = make_cfg("dataset=digits")
    assert stack_key(base) == stack_key(make_cfg("dataset=digits", "seed=3", "beta=4", "trainer.grad_clip=1"))
    assert stack_key(base) == stack_key(make_cfg("dataset=digits", "objective.warmup_epochs=10"))
    assert stack_key(base) == stack_key(make_cfg("dataset=digits", "trainer.lr=0.01"))
    for other in ("latent_dim=8", "objective.free_bits=0.5", "prior=mog", "optimizer=adam_normgrad"):
        assert stack_key(base) != stack_key(make_cfg("dataset=digits", other)), other
    with pytest.raises(ValueError, match="cannot stack"):
        Stack([base, make_cfg("dataset=digits", "latent_dim=8")])


def test_the_benchmark_script_times_every_variant(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_batched.py"
    out = tmp_path / "bench.json"
    args = ["--workloads", "digits8", "--members", "2", "--threads", "1", "--steps", "2", "--repeats", "1"]
    args += ["--json", str(out)]
    done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    (row,) = json.loads(out.read_text())["rows"]
    assert row["members"] == 2 and row["sequential_vs_sequential"] == 1.0
    assert all(row[f"{v}_images_per_s"] > 0 for v in ("sequential", "stacked", "vmap"))


def test_a_diverged_member_is_dropped_and_the_others_go_on_as_their_standalone_runs(tmp_path, no_threads):
    cfgs = [make_cfg("dataset=digits", f"trainer.limit_batches={STEPS}", *run) for run in SWEEP]
    stack = Stack(cfgs, limit_batches=STEPS)
    for i, (x, noise) in enumerate(stack.batches.epoch()):
        if i == 1:
            with torch.no_grad():
                next(stack.model.parameters())[1].fill_(float("nan"))  # member 1 goes bad
        terms, norms = stack.step(x, noise)
        bad = stack.nonfinite(terms, norms)
        assert bad.tolist() == ([False, True, False] if i == 1 else [False] * len(bad))
        if bad.any():
            stack.drop(bad.nonzero().flatten().tolist())
    assert len(stack.objectives) == 2 and next(stack.model.parameters()).shape[0] == 2
    for m, run in zip((0, 1), (0, 2)):  # the stack's members 0 and 1 are the runs 0 and 2
        alone, _ = standalone_after(cfgs[run], tmp_path / str(run))
        for key, value in member_state_dict(stack.model, m).items():
            torch.testing.assert_close(value, alone[key], rtol=1e-4, atol=2e-6, msg=f"run {run}: {key}")


def test_an_optimizer_that_does_not_step_per_member_does_not_stack():
    params = [torch.zeros(2, 3, requires_grad=True)]
    members = [torch.optim.SGD([torch.zeros(3, requires_grad=True)], lr=0.1) for _ in range(2)]
    with pytest.raises(ValueError, match="SGD: only Adam and AdamNormGrad"):
        StackedAdam.for_members(params, members)
    adams = [torch.optim.Adam([torch.zeros(3, requires_grad=True)], lr=0.1, betas=b) for b in ((0.9, 0.99), (0.5, 0.9))]
    with pytest.raises(ValueError, match="differ in more than the learning rate"):
        StackedAdam.for_members(params, adams)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_each_member_follows_its_standalone_run(tmp_path):
    cfgs = [make_cfg("dataset=digits", f"trainer.limit_batches={STEPS}", "trainer.device=cuda", *run) for run in SWEEP]
    stack = batched_after(cfgs)
    assert next(stack.model.parameters()).is_cuda
    for m, cfg in enumerate(cfgs):
        alone, _ = standalone_after(cfg, tmp_path / str(m))
        for key, value in member_state_dict(stack.model, m).items():
            torch.testing.assert_close(value, alone[key], rtol=1e-3, atol=1e-5, msg=f"member {m}: {key}")


def test_the_stacked_validation_gives_each_member_its_own_runs_numbers(no_threads):
    from vae_runner.evaluation.metrics import evaluate_split
    from vae_runner.stacking.metrics import evaluate_members

    cfgs = [make_cfg("dataset=digits", *run) for run in SWEEP]
    stack = batched_after(cfgs)
    betas = torch.tensor([[o.kl_weight(None)] for o in stack.objectives])
    together = evaluate_members(
        stack.model, stack.objectives[0], betas, stack.data.val, 64, [c.seed for c in cfgs], 0.01
    )
    for i, cfg in enumerate(cfgs):
        model = stack.models[i]
        model.load_state_dict(member_state_dict(stack.model, i))
        alone = evaluate_split(model, stack.objectives[i], stack.data.val, 1000, cfg.seed)
        alone["active_units"] = build.active_units_of(model, stack.data.val, cfg)
        assert together[i].keys() == alone.keys()
        for key, value in alone.items():
            assert together[i][key] == pytest.approx(value, rel=1e-5, abs=1e-6), (i, key)
    assert together[0]["loss"] != together[1]["loss"]  # each member's own beta


@pytest.mark.parametrize("at_step", [5, 6], ids=["inside an epoch", "after an epoch's last step"])
def test_a_stop_signal_checkpoints_every_member_and_each_goes_on_as_its_uninterrupted_run(
    at_step, tmp_path, monkeypatch, no_threads
):
    import itertools
    import json
    import os
    import signal

    from vae_runner import run
    from vae_runner.host.signals import Interrupted
    from vae_runner.stacking.loop import train_stack

    overrides = ["dataset=digits", "trainer.epochs=3", "trainer.limit_batches=3", "trainer.log_every=2"]
    cfgs = [make_cfg(*overrides, *job) for job in SWEEP[:2]]
    dirs = [tmp_path / "stack" / str(i) for i in range(2)]
    real, count = Stack.step, itertools.count(1)

    def step_then_signal(self, x, noise):
        out = real(self, x, noise)
        if next(count) == at_step:
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    monkeypatch.setattr(Stack, "step", step_then_signal)
    with pytest.raises(Interrupted, match=f"after step {at_step} of the stack"):
        train_stack(cfgs, dirs)
    monkeypatch.setattr(Stack, "step", real)
    for i, cfg in enumerate(cfgs):
        run.run(cfg, dirs[i], [*overrides, *SWEEP[i]])  # the same job again: it goes on alone from its checkpoint
        resumed = json.loads((dirs[i] / "metrics.json").read_text())
        full = run.train(make_cfg(*overrides, *SWEEP[i]), tmp_path / f"full{i}")
        for key in ("test/elbo", "val/elbo", "test/log_likelihood", "steps", "best_epoch", "epochs"):
            assert resumed[key] == pytest.approx(full[key], rel=1e-5), (i, key)
