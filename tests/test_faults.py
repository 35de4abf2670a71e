"""Faults and bad input, by injection: non-finite losses and gradients, gradient clipping, SIGINT/SIGTERM sent to a
real `vae-run`, kill -9 at random moments (checkpoint writes included), config fuzzing with hypothesis, and writes
outside the run directory. Nothing may be lost and every failure must be one clear message."""

import itertools
import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from conftest import VAE_RUN, make_cfg, shrink
from hydra.errors import ConfigCompositionException, MissingConfigException
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from vae_runner import build, run
from vae_runner.errors import UserError
from vae_runner.host.signals import Interrupted
from vae_runner.objectives import Objective
from vae_runner.optimizers import Adam
from vae_runner.runs.checkpoint import load_checkpoint

ENV = dict(os.environ, OMP_NUM_THREADS="1")
# Many short epochs, each checkpointed: most of the time goes to validation and checkpoint writes, where kills and
# signals must be safe.
SHORT = shrink(
    "dataset=digits",
    "trainer.limit_batches=3",
    "trainer.num_threads=1",
    "trainer.checkpoint_every_s=0",
    "evaluation.iw_samples=16",
)


def start(*args, cwd) -> subprocess.Popen:
    return subprocess.Popen(
        [VAE_RUN, *args], cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(*args, cwd) -> dict:
    done = subprocess.run([VAE_RUN, *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done


def wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.05)


# ------------------------------------------------------------------------------------ non-finite values
def test_a_nan_loss_stops_with_the_step_and_the_term_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    real = Objective.__call__
    calls = {"n": 0}

    def poisoned(self, model, x, y=None, progress=None):
        terms = real(self, model, x, y, progress)
        if progress is not None:  # training steps only
            calls["n"] += 1
            if calls["n"] == 5:
                terms["kl"] = terms["kl"] * float("nan")
                terms["loss"] = terms["loss"] * float("nan")
        return terms

    monkeypatch.setattr(Objective, "__call__", poisoned)
    with pytest.raises(UserError) as err:
        run.train(make_cfg("trainer.epochs=4", "trainer.limit_batches=2"), tmp_path)
    msg = str(err.value)
    assert "step 5" in msg and "kl, loss" in msg and "learning rate" in msg and "last.pt (epoch 2," in msg
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert state["epoch"] == 2 and all(torch.isfinite(v).all() for v in state["model"].values())
    assert not (tmp_path / "metrics.json").exists()


def test_a_nan_gradient_is_named(tmp_path, monkeypatch):
    real_backward = torch.Tensor.backward
    calls = {"n": 0}

    def backward(self, *a, **k):
        real_backward(self, *a, **k)
        calls["n"] += 1
        if calls["n"] == 3:
            next(p for p in run_model["m"].parameters()).grad.fill_(float("inf"))

    run_model = {}
    real_build = build.build_model
    monkeypatch.setattr(build, "build_model", lambda *a: run_model.setdefault("m", real_build(*a)))
    monkeypatch.setattr(torch.Tensor, "backward", backward)
    with pytest.raises(UserError, match=r"step 3 \(epoch 2\): grad_norm became non-finite"):
        run.train(make_cfg("trainer.epochs=3", "trainer.limit_batches=2"), tmp_path)


def test_diverging_learning_rate_from_the_cli(tmp_path):
    done = subprocess.run(
        [VAE_RUN, "trainer.lr=1e30", *SHORT, "trainer.epochs=3"], cwd=tmp_path, env=ENV, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "Training diverged at step" in done.stderr and "Traceback" not in done.stdout + done.stderr


def test_grad_clip_bounds_the_update(tmp_path, monkeypatch):
    seen = []
    real_step = Adam.step

    def step(self, *a, **k):
        grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
        seen.append(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item())
        return real_step(self, *a, **k)

    monkeypatch.setattr(Adam, "step", step)
    run.train(make_cfg("trainer.grad_clip=0.5", "trainer.limit_batches=4"), tmp_path)
    assert seen and max(seen) <= 0.5 + 1e-4


# -------------------------------------------------------------------------------------------- signals
SIGNALS = [
    pytest.param(signal.SIGINT, marks=pytest.mark.slow, id="SIGINT"),
    pytest.param(signal.SIGTERM, marks=pytest.mark.slow, id="SIGTERM"),
]


# Both with -m slow: the default suite sends real SIGTERMs and USR2 in-process (test_a_scheduler_signal_...) and
# the final evaluation's Ctrl-C/SIGTERM through run.run; this one adds the CLI's exit status and message.
@pytest.mark.parametrize("sig", SIGNALS)
def test_a_signal_checkpoints_and_resume_equals_the_uninterrupted_run(sig, tmp_path):
    args = [*SHORT, "trainer.epochs=40", "seed=3"]
    finish(*args, "hydra.run.dir=full", cwd=tmp_path)
    proc = start(*args, "hydra.run.dir=cut", cwd=tmp_path)
    wait_for(tmp_path / "cut" / "checkpoints" / "last.pt")
    time.sleep(random.uniform(0.2, 1.0))
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    assert "Continue with: vae-run resume=" in err and "Traceback" not in out + err
    state = load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")
    assert 0 < state["global_step"] < 120
    finish(f"resume={tmp_path / 'cut'}", cwd=tmp_path)
    full = json.loads((tmp_path / "full" / "metrics.json").read_text())
    resumed = json.loads((tmp_path / "cut" / "metrics.json").read_text())
    for key in ("test/elbo", "test/recon", "test/kl", "val/elbo", "test/log_likelihood", "steps", "best_epoch"):
        assert resumed[key] == full[key], key  # bit for bit


# ------------------------------------------------------------- schedulers: repeated signals, USR2, submitit's requeue
OVERRIDES = ["trainer.epochs=4", "trainer.limit_batches=3", "trainer.log_every=2"]


def signal_at_step(monkeypatch, step: int, *signums) -> None:
    """Send `signums` to this process, one right after the other, during training step `step` (as a scheduler's
    preemption does: SIGTERM twice within milliseconds)."""
    from vae_runner.training import trainer

    real, count = trainer.Console.step, itertools.count(1)

    def step_then_signal(self):
        real(self)
        if next(count) == step:
            for s in signums:
                os.kill(os.getpid(), s)

    monkeypatch.setattr(trainer.Console, "step", step_then_signal)


def resumes_to_the_uninterrupted_run(tmp_path, monkeypatch) -> None:
    state = load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")
    assert (state["epoch"], state["batch_index"]) == (1, 2)  # mid-epoch: step 5 = epoch 2, batch 2
    monkeypatch.undo()
    full = run.train(make_cfg(*OVERRIDES), tmp_path / "full")
    resumed = run.train(make_cfg(f"resume={tmp_path / 'cut'}"), tmp_path / "x", [f"resume={tmp_path / 'cut'}"])
    for k in ("test/elbo", "test/kl", "val/elbo", "steps", "best_epoch"):
        assert resumed[k] == full[k], k  # bit for bit


@pytest.mark.parametrize("signums", [(signal.SIGTERM, signal.SIGTERM), (signal.SIGUSR2,)], ids=["SIGTERMx2", "USR2"])
def test_a_scheduler_signal_checkpoints_mid_epoch_even_when_repeated(signums, tmp_path, monkeypatch, no_threads):
    """A real preemption's double SIGTERM must not skip the checkpoint (only a second Ctrl-C does); USR2, the
    timeout/preemption warning, checkpoints like SIGTERM."""
    signal_at_step(monkeypatch, 5, *signums)
    with pytest.raises(Interrupted, match=f"Stopped by {signums[0].name} after step 5") as stop:
        run.train(make_cfg(*OVERRIDES), tmp_path / "cut")
    assert stop.value.signum == signums[0]
    assert signal.getsignal(signal.SIGUSR2) is signal.SIG_DFL  # handlers restored
    resumes_to_the_uninterrupted_run(tmp_path, monkeypatch)


@pytest.mark.parametrize(
    "signums, executor",
    [((signal.SIGUSR2,), None), ((signal.SIGTERM, signal.SIGTERM), "slurm")],
    ids=["USR2 (timeout)", "SIGTERMx2 (CANCEL-mode preemption, GraceTime)"],
)
def test_under_submitit_the_run_checkpoints_then_hands_over_to_its_requeue(
    signums, executor, tmp_path, monkeypatch, no_threads
):
    """submitit's USR2 handler requeues the job and exits; vae-run checkpoints mid-epoch first, then calls it, for
    USR2 and for a SIGTERM (which submitit alone would only log, leaving a FAILED job that nothing restarts)."""
    calls = []

    def submitit_requeue(signum, frame):  # what submitit's checkpoint_and_try_requeue does, minus scontrol
        calls.append(signum)
        raise SystemExit(-1)

    if executor:
        monkeypatch.setenv("SUBMITIT_EXECUTOR", executor)
    previous = signal.signal(signal.SIGUSR2, submitit_requeue)
    try:
        signal_at_step(monkeypatch, 5, *signums)
        with pytest.raises(SystemExit):
            run.train(make_cfg(*OVERRIDES), tmp_path / "cut")
        assert calls == [signal.SIGUSR2]  # once, after the checkpoint
        assert signal.getsignal(signal.SIGUSR2) is submitit_requeue  # given back
    finally:
        signal.signal(signal.SIGUSR2, previous)
    resumes_to_the_uninterrupted_run(tmp_path, monkeypatch)


def test_a_preemption_during_the_final_evaluation_is_handed_to_submitit(tmp_path, monkeypatch, no_threads):
    """Training is checkpointed already; the requeued job finds last.pt without metrics.json and evaluates again."""
    calls = []

    def submitit_requeue(signum, frame):
        calls.append(signum)
        raise SystemExit(-1)

    def preempted(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends
        raise AssertionError("the signal was not handled")

    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    monkeypatch.setattr(run, "final_report", preempted)
    previous = signal.signal(signal.SIGUSR2, submitit_requeue)
    try:
        with pytest.raises(SystemExit):
            run.run(make_cfg(), tmp_path)
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert calls == [signal.SIGUSR2] and not (tmp_path / "metrics.json").exists()
    assert (tmp_path / "checkpoints" / "last.pt").is_file()


@pytest.mark.parametrize("started_with, shown, requeued", [(None, 1, True), ("1", 1, False), (None, 0, False)])
def test_a_job_slurm_requeued_already_exits_as_requeued(started_with, shown, requeued, tmp_path, monkeypatch):
    """`scontrol requeue` from outside: submitit's own requeue then fails ("Job is pending execution"); the job's
    restart count, past the one it started with, says Slurm is bringing it back, so it exits as a requeued job
    (no failure recorded for the launcher); otherwise the caller stops with the usual message."""
    from vae_runner.host import signals

    fake = tmp_path / "scontrol"
    fake.write_text(f"#!/bin/sh\necho 'JobId=7 JobName=vae-run JobState=COMPLETING Reason=None Restarts={shown}'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    if started_with:
        monkeypatch.setenv("SLURM_RESTART_COUNT", started_with)
    else:
        monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    assert signals.slurm_requeued_already() is requeued

    def failing_requeue(signum, frame):
        raise subprocess.CalledProcessError(1, ["scontrol", "requeue", "7"])

    if requeued:
        with pytest.raises(SystemExit):
            signals.hand_over(failing_requeue, "SIGTERM")
    else:
        signals.hand_over(failing_requeue, "SIGTERM")  # returns: the caller raises Interrupted


# -------------------------------------------------------------------------------------------- kill -9
def kill_repeatedly(tmp_path: Path, kills: int, seed: int) -> list[float]:
    """Start (then resume) a run and SIGKILL it at random moments; after every kill the last checkpoint must load."""
    rng = random.Random(seed)
    args = [*SHORT, "trainer.epochs=60", "seed=1"]
    run_dir = tmp_path / "killed"
    moments = []
    for i in range(kills):
        ckpt = run_dir / "checkpoints" / "last.pt"
        proc = start(
            *(args + ["hydra.run.dir=killed"] if i == 0 or not ckpt.exists() else [f"resume={run_dir}"]), cwd=tmp_path
        )
        if not ckpt.exists():
            wait_for(ckpt)
        moments.append(rng.uniform(0.0, 2.5))
        time.sleep(moments[-1])
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        state = load_checkpoint(ckpt)  # never corrupt
        assert state["epoch"] <= 60
    return moments


@pytest.mark.parametrize(
    "kills", [pytest.param(4, id="4-kills"), pytest.param(25, id="25-kills", marks=pytest.mark.slow)]
)
def test_kill_9_never_corrupts_the_checkpoint_and_resume_finishes_the_run(kills, tmp_path):
    kill_repeatedly(tmp_path, kills, seed=kills)
    finish(f"resume={tmp_path / 'killed'}", cwd=tmp_path)
    finish(*SHORT, "trainer.epochs=60", "seed=1", "hydra.run.dir=clean", cwd=tmp_path)
    killed = json.loads((tmp_path / "killed" / "metrics.json").read_text())
    clean = json.loads((tmp_path / "clean" / "metrics.json").read_text())
    assert killed["epochs"] == 60 and killed["test/elbo"] == clean["test/elbo"]
    assert not list((tmp_path / "killed" / "checkpoints").glob("*.tmp"))


# ------------------------------------------------------------------------------------------ fuzzing
NUMERIC = [
    "beta",
    "latent_dim",
    "seed",
    "trainer.lr",
    "trainer.batch_size",
    "trainer.eval_batch_size",
    "trainer.eval_every",
    "trainer.log_every",
    "trainer.grad_clip",
    "trainer.early_stopping",
    "objective.k",
    "objective.free_bits",
    "objective.warmup_epochs",
    "objective.triplet_weight",
    "likelihood.sigma",
    "prior.n_components",
    "evaluation.iw_samples",
    "evaluation.chunk_rows",
    "evaluation.active_threshold",
    "architecture.hidden",
    "dataset.val_fraction",
    "logger.n_images",
]
BAD_VALUES = ["-1", "0", "-0.5", "1e12", "1000000000", "nan", "inf", "-inf", "abc", "''", "[1,2]", "null", "true"]
GOOD_VALUES = ["1", "2", "0.5", "3"]
CHOICES = {
    "dataset": ["digits", "synthetic"],
    "architecture": ["mlp", "conv"],
    "prior": ["gaussian", "mog", "vamp", "gtm", "gtm_vamp", "flow", "nope"],
    "likelihood": ["bernoulli", "mse", "gaussian"],
    "objective": ["elbo", "iwae"],
}
# On top of conftest's SHRINK (the fuzzed overrides come last, so a fuzzed key wins).
FUZZ_SHRINK = [
    "logger.tensorboard=false",
    "evaluation.iw_samples=4",
    "evaluation.surgery_points=20",
    "evaluation.probe_train_points=50",
    "evaluation.triplets=20",
]
SYNTHETIC_SMALL = ["dataset.n_train=100", "dataset.n_val=20", "dataset.n_test=20"]

overrides_strategy = st.tuples(
    st.fixed_dictionaries({g: st.sampled_from(opts) for g, opts in CHOICES.items()}),
    st.lists(
        st.tuples(st.sampled_from(NUMERIC), st.sampled_from(BAD_VALUES + GOOD_VALUES)),
        max_size=3,
        unique_by=lambda t: t[0],
    ),
)
CASE_NUMBER = itertools.count()


def fuzz_one(choices: dict, numeric: list, tmp_path: Path) -> None:
    """Compose the shrunk config with the fuzzed overrides last and run it: the run must train, or stop with
    Hydra's composition message or one UserError paragraph; anything else fails the test. How each case ended is
    a Hypothesis event (`pytest --hypothesis-show-statistics` shows the counts)."""
    fuzzed = [f"{g}={o}" for g, o in choices.items()] + [f"{k}={v}" for k, v in numeric]
    small = SYNTHETIC_SMALL if choices["dataset"] == "synthetic" else []
    try:
        cfg = make_cfg(*FUZZ_SHRINK, *small, *fuzzed)
    except (ConfigCompositionException, MissingConfigException):
        event("refused by Hydra at composition")  # printed without a traceback by the CLI
        return
    try:
        assert isinstance(run.run(cfg, tmp_path / f"case{next(CASE_NUMBER)}", fuzzed), float)
        event("trained")
    except UserError as err:
        assert str(err) and "\n\n" not in str(err) and "Traceback" not in str(err)
        event("refused with one paragraph")


@settings(
    max_examples=int(os.environ.get("VAE_FUZZ_EXAMPLES", 20)),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=overrides_strategy)
def test_config_fuzzing_trains_or_refuses_clearly(case, tmp_path, no_threads):
    fuzz_one(*case, tmp_path)


@pytest.mark.slow
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(case=overrides_strategy)
def test_config_fuzzing_large_budget(case, tmp_path, no_threads):
    fuzz_one(*case, tmp_path)


# -------------------------------------------------------------------------------- writes and overwrites
def test_a_run_writes_only_inside_its_run_directory(tmp_path):
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    env = dict(ENV, HOME=str(home), MPLCONFIGDIR=str(tmp_path / "mpl"))
    done = subprocess.run([VAE_RUN, *SHORT, "trainer.epochs=2"], cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    written = [p for p in cwd.rglob("*") if p.is_file()]
    (run_dir,) = {p.parent for p in cwd.rglob("metrics.json")}
    assert all(run_dir in p.parents for p in written)
    assert [p for p in home.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_the_final_evaluation_says_how_to_finish(tmp_path, monkeypatch, sig, no_threads):
    """Ctrl-C (or a scheduler's SIGTERM) while the final evaluation runs: one message naming the command that
    finishes the run, not a KeyboardInterrupt traceback; that command then writes metrics.json without training."""
    real = run.final_report

    def interrupted(*args, **kwargs):
        os.kill(os.getpid(), sig)
        time.sleep(5)  # the handler raises before this ends
        raise AssertionError("the signal was not handled")

    monkeypatch.setattr(run, "final_report", interrupted)
    with pytest.raises(Interrupted, match=f"Stopped by {sig.name} during the final evaluation.*vae-run resume=") as e:
        run.run(make_cfg(), tmp_path)
    assert e.value.signum == sig and not (tmp_path / "metrics.json").exists()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored
    monkeypatch.setattr(run, "final_report", real)
    finished = run.run(make_cfg(f"resume={tmp_path}"), tmp_path / "ignored", [f"resume={tmp_path}"])
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["val/elbo"] == finished and metrics["epochs"] == 1
