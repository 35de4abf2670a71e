"""Sweeps on a real Slurm: a single-node cluster (Debian's slurm-wlm and munge, daemons on loopback ports, run as
root) started for this module and stopped by PID. One 4-job `hydra/launcher=submitit_slurm` sweep has each job
interrupted the way clusters do it, once it has trained an epoch:

- job 0: `scontrol requeue` (an admin, or a preemption in REQUEUE mode),
- job 1: SIGTERM twice within milliseconds (a real preemption in CANCEL mode),
- job 2: one SIGTERM (the start of a partition's GraceTime),
- job 3: USR2 (submitit's timeout warning, `--signal=USR2@...`; with timeout_min=10 submitit takes every signal
  for a timeout, so this is the timeout path, requeued because max_num_timeout=3).

Every job must checkpoint where it stopped (mid-epoch), come back (requeued by Slurm or by submitit) and finish with
the metrics of the same sweep run uninterrupted; the sweep must end (no launcher waiting forever on a job that
will never report). Marked slow (~7 min: Slurm holds a requeued job ~2 minutes before it starts again); skipped
where Slurm is not installed or this is not root. `bash .ci/run` does not run it; `python -m pytest -m slow
tests/test_slurm.py` does.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import VAE_RUN

DAEMONS = ("slurmctld", "slurmd", "munged", "munge", "scontrol", "scancel", "squeue", "sinfo")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not all(shutil.which(d) or Path("/usr/sbin", d).exists() for d in DAEMONS) or os.geteuid() != 0,
        reason="needs Debian's slurm-wlm and munge, run as root (apt-get install -y slurm-wlm munge)",
    ),
]
SWEEP = [
    "-m",
    "beta=1,2,3,4",
    "dataset=digits",
    "trainer.epochs=100",
    "trainer.limit_batches=10",
    "trainer.num_threads=1",
    "logger.progress_bar=false",
    "evaluation.iw_samples=8",
    "evaluation.surgery_points=50",
    "evaluation.probe_train_points=200",
    "evaluation.triplets=100",
]
SAME = ("test/elbo", "test/kl", "test/log_likelihood", "val/elbo", "steps", "best_epoch")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sbin(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """SLURM_CONF of a running single-node cluster (2 CPUs, no accounting: the case where a job that never reports
    would hang submitit's launcher)."""
    root = tmp_path_factory.mktemp("slurm")
    host = socket.gethostname()
    (root / "state").mkdir()
    (root / "spool").mkdir()
    conf = root / "slurm.conf"
    conf.write_text(
        f"""ClusterName=vaetest
SlurmctldHost={host}
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
NodeName={host} NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""
    )
    env = dict(os.environ, SLURM_CONF=str(conf))
    started = []
    if subprocess.run(["munge", "-n"], capture_output=True).returncode != 0:  # no munged running: start one
        Path("/run/munge").mkdir(exist_ok=True)
        subprocess.run([_sbin("munged"), "--force"], check=True)
        started.append(Path("/run/munge/munged.pid"))
    try:
        for daemon in ("slurmctld", "slurmd"):
            subprocess.run([_sbin(daemon), "-f", str(conf)], env=env, check=True)
            started.append(root / f"{daemon}.pid")
        deadline = time.time() + 60
        while time.time() < deadline:
            state = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True).stdout
            if state.strip() == "idle":
                break
            time.sleep(1)
        else:
            pytest.fail(f"the Slurm node did not come up: sinfo says {state!r}; see {root}/slurmctld.log")
        yield env
    finally:
        for pid_file in reversed(started):
            if pid_file.is_file():
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)


def _job_of(run_dir: Path, env: dict) -> str:
    """The Slurm id (`<array>_<task>`) of the sweep job that writes run_dir (its name starts with the job number)."""
    task = run_dir.name.split("_")[0]
    jobs = subprocess.run(
        ["squeue", "-h", "-t", "RUNNING", "-o", "%i"], env=env, capture_output=True, text=True
    ).stdout.split()
    (job,) = [j for j in jobs if j.endswith(f"_{task}")]
    return job


def _send(commands: list[list[str]], job: str, env: dict, failures: list) -> None:
    """Run `commands` on `job` at once (a double SIGTERM lands within milliseconds). Slurm answers "Job can not be
    altered now, try again later" while it requeues another task of the same array, and scancel may report that
    even when the signal landed, so try again for up to 30 s, but only while this run of the job still runs: a
    signal sent again after it has stopped would hit the requeued run as it starts."""
    deadline = time.time() + 30
    while time.time() < deadline:
        sent = [subprocess.Popen([*command, job], env=env, stderr=subprocess.DEVNULL) for command in commands]
        if 0 in [p.wait() for p in sent]:  # the second of two may find the job leaving already
            return
        time.sleep(1)
        state = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], env=env, capture_output=True, text=True)
        if state.stdout.strip() != "RUNNING":  # it reacted (requeued, completing) or left
            return
    failures.append(f"Slurm refused {commands} on {job} for 30 s")


def test_requeue_preemption_gracetime_and_timeout_all_resume_to_the_uninterrupted_metrics(slurm, tmp_path):
    reference = subprocess.run(
        [VAE_RUN, *SWEEP, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={tmp_path / 'ref'}"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert reference.returncode == 0, reference.stderr[-3000:]

    sweep = tmp_path / "slurm"
    launcher = [
        "hydra/launcher=submitit_slurm",
        "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.timeout_min=10",  # <= 10: every signal is a timeout to submitit (requeued 3 times at most)
        "hydra.launcher.max_num_timeout=3",
        f'hydra.launcher.setup=["touch {tmp_path}/setup-ran-$SLURM_JOB_ID"]',  # shell lines before each job
    ]
    log = (tmp_path / "launcher.log").open("w")  # a file, not a pipe: submitit's polling fills a pipe's buffer
    proc = subprocess.Popen(
        [VAE_RUN, *SWEEP, *launcher, f"hydra.sweep.dir={sweep}"], env=slurm, stdout=log, stderr=subprocess.STDOUT
    )
    actions = {
        "0": [["scontrol", "requeue"]],
        "1": [["scancel", "--signal=TERM"], ["scancel", "--signal=TERM"]],
        "2": [["scancel", "--signal=TERM"]],
        "3": [["scancel", "--signal=USR2"]],
    }
    senders, failures = [], []
    try:
        deadline = time.time() + 600
        while actions and time.time() < deadline and proc.poll() is None:
            for task in list(actions):
                ckpt = next(sweep.glob(f"{task}_*/checkpoints/last.pt"), None)
                if ckpt is not None:  # it has trained an epoch: interrupt it, mid-epoch
                    time.sleep(0.5)
                    job = _job_of(ckpt.parent.parent, slurm)
                    sender = threading.Thread(target=_send, args=(actions.pop(task), job, slurm, failures))
                    sender.start()  # in the background: the other jobs are watched meanwhile
                    senders.append(sender)
            time.sleep(0.2)
        for sender in senders:
            sender.join()
        assert not actions, f"jobs never reached their first checkpoint: {sorted(actions)}"
        assert not failures, failures
        proc.wait(timeout=900)  # bounded: a launcher waiting forever fails here
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    assert proc.returncode == 0, (tmp_path / "launcher.log").read_text()[-5000:]
    assert len(list(tmp_path.glob("setup-ran-*"))) >= 4  # every job (and every requeued start) ran the setup

    for ref in sorted((tmp_path / "ref").glob("*/metrics.json")):
        name = ref.parent.name
        logs = "".join(p.read_text() for p in (sweep / ".submitit").glob(f"*_{name.split('_')[0]}/*.out"))
        assert "resuming" in logs, name  # it was interrupted and came back
        assert "checkpoint written; handing over" in logs or "requeued this job already" in logs, name
        got, want = json.loads((sweep / name / "metrics.json").read_text()), json.loads(ref.read_text())
        for key in SAME:
            assert got[key] == want[key], (name, key)  # bit for bit: the resumed run is the uninterrupted one


def test_a_job_killed_outright_is_reported_not_waited_for(slurm, tmp_path):
    """kill -9 (the OOM killer) leaves no result file and, without accounting, submitit's launcher would wait
    forever; the watcher (sweeps/slurm_watch.py) records the failure once squeue has stopped listing the job."""
    sweep = tmp_path / "killed"
    log = (tmp_path / "launcher.log").open("w")
    proc = subprocess.Popen(
        [
            VAE_RUN,
            "-m",
            "beta=1",
            "dataset=digits",
            "trainer.epochs=1000",
            "trainer.num_threads=1",
            "hydra/launcher=submitit_slurm",
            "hydra.launcher.timeout_min=60",
            "hydra.callbacks.watch_slurm_jobs.interval_s=2",
            "hydra.callbacks.watch_slurm_jobs.misses=2",
            f"hydra.sweep.dir={sweep}",
        ],
        env=slurm,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.time() + 300
        while not next(sweep.glob("0*/checkpoints/last.pt"), None) and time.time() < deadline:
            time.sleep(0.5)
        (job,) = subprocess.run(  # the sweep's one job (not an array: its id has no _<task>)
            ["squeue", "-h", "-t", "RUNNING", "-o", "%i"], env=slurm, capture_output=True, text=True
        ).stdout.split()
        # kill -9 of the job's process, as the kernel's OOM killer does (scancel would send SIGTERM first)
        subprocess.run(["pkill", "-9", "-f", f"submitit.core._submit {sweep}"], check=True)
        killed = time.time()
        proc.wait(timeout=180)  # bounded
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    out = (tmp_path / "launcher.log").read_text()
    assert proc.returncode != 0 and f"Slurm job {job} left the queue without a result" in out, out[-3000:]
    assert "re-launch the sweep" in out and time.time() - killed < 180
