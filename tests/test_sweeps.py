"""Sweeps through Hydra's launchers and sweepers, as a researcher runs them: a 2-run joblib sweep, a 2-run
submitit_local sweep, Optuna trials (a failed trial does not abort the study), sweep resume, `vae-report`, and
TensorBoard serving a sweep's runs, scalars and hyper-parameters over HTTP."""

import csv
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import torch
from conftest import FAST, vae_run
from PIL import Image

from vae_runner.report import plots as report_plots
from vae_runner.report import table as runs_table

BIN = Path(sys.executable).parent


def run_dirs(sweep: Path) -> list[Path]:
    """The sweep's finished runs (job sub-directories with metrics.json), in job order."""
    return sorted((p.parent for p in sweep.glob("*/metrics.json")), key=lambda d: int(d.name.split("_")[0]))


def test_joblib_sweep_runs_two_at_a_time_with_one_thread_each(tmp_path):
    fast = [o for o in FAST if not o.startswith("trainer.num_threads")]
    done = vae_run(
        "-m",
        "beta=1,4",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        *fast,
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    dirs = run_dirs(tmp_path / "sweep")
    assert len(dirs) == 2
    for d in dirs:
        config = torch.load(d / "checkpoints" / "last.pt", weights_only=True)["config"]
        assert config["trainer"]["num_threads"] == max(1, (os.cpu_count() or 1) // 2)


def test_submitit_local_sweep(tmp_path):
    done = vae_run(
        "-m", "beta=1,4", "hydra/launcher=submitit_local", *FAST, f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert len(run_dirs(tmp_path / "sweep")) == 2


def test_optuna_trials_and_a_failed_trial_does_not_abort_the_study(tmp_path):
    sweep = tmp_path / "optuna"
    done = vae_run(
        "-m",
        "hparams_search=digits_optuna",
        "hydra.sweeper.n_trials=4",
        "beta=choice(-1.0,1.0)",
        "hydra.sweeper.max_failure_rate=1.0",
        *FAST,
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    result = (sweep / "optimization_results.yaml").read_text()
    assert "best_params" in result and "best_value" in result
    trials = [d for d in sweep.iterdir() if d.is_dir() and d.name.split("_")[0].isdigit()]
    finished = [d for d in trials if (d / "metrics.json").is_file()]
    assert len(trials) == 4 and 0 < len(finished) < 4  # beta = -1 trials failed, the others ran
    assert "beta=-1.0 (must be a finite number >= 0)" in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_sweep_resume_skips_finished_runs_and_resumes_interrupted_ones(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", "beta=1,4", *FAST, f"hydra.sweep.dir={sweep}"]
    assert vae_run(*args, cwd=tmp_path).returncode == 0
    finished, interrupted = run_dirs(sweep)
    (interrupted / "metrics.json").unlink()  # as if killed after its last checkpoint
    stamp = (finished / "metrics.json").stat().st_mtime_ns
    again = vae_run(*args[:-2], "trainer.epochs=3", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert (finished / "metrics.json").stat().st_mtime_ns == stamp  # skipped, untouched
    assert "finished already" in again.stdout + again.stderr
    resumed = json.loads((interrupted / "metrics.json").read_text())
    assert resumed["epochs"] == 3  # went on from epoch 2

    other = vae_run(*args[:-2], "latent_dim=3", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert other.returncode != 0 and "already holds a different run" in other.stdout + other.stderr
    assert (finished / "metrics.json").stat().st_mtime_ns == stamp  # never overwritten

    # a sweep started before jobs had names (job directories 0, 1) is still found when re-launched
    finished.rename(sweep / "0")
    (interrupted / "metrics.json").unlink()
    interrupted.rename(sweep / "1")
    again = vae_run(*args[:-2], "trainer.epochs=4", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]
    assert json.loads((sweep / "1" / "metrics.json").read_text())["epochs"] == 4


def test_vae_report_on_a_sweep(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    assert (
        vae_run("-m", "beta=1,4", "prior=gaussian,mog", *FAST, f"hydra.sweep.dir={sweep}", cwd=tmp_path).returncode == 0
    )
    (run_dirs(sweep)[-1] / "metrics.json").unlink()  # a partly finished sweep
    assert runs_table.main([str(sweep), "--x", "beta", "--group", "prior"]) == 0
    printed = capsys.readouterr().out
    assert "4 runs (3 finished)" in printed and "unfinished (has checkpoint)" in printed
    md = (sweep / "report.md").read_text()
    assert md.startswith("| run | beta | prior |") and "test/elbo" in md
    rows = (sweep / "report.csv").read_text().splitlines()
    assert len(rows) == 5 and rows[0].startswith("run,beta,prior")
    assert (sweep / "report_test_log_likelihood_vs_beta.png").stat().st_size > 1000
    out = subprocess.run([str(BIN / "vae-report"), str(tmp_path / "empty")], capture_output=True, text=True)
    assert out.returncode == 2 and "not a directory" in out.stderr and "Traceback" not in out.stderr
    (tmp_path / "empty").mkdir()
    out = subprocess.run([str(BIN / "vae-report"), str(tmp_path / "empty")], capture_output=True, text=True)
    assert out.returncode == 2 and "no vae-run runs" in out.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, body: dict | None = None):
    req = urllib.request.Request(
        url, data=None if body is None else json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def test_tensorboard_serves_every_run_scalar_and_hyperparameter_of_a_sweep(tmp_path):
    """Runs are named by what they changed (not 0, 1), and the HParams tab lists the swept key first."""
    sweep = tmp_path / "sweep"
    assert vae_run("-m", "latent_dim=3", "beta=1,4", *FAST, f"hydra.sweep.dir={sweep}", cwd=tmp_path).returncode == 0
    port = _free_port()
    server = subprocess.Popen(
        [str(BIN / "tensorboard"), "--logdir", str(sweep), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        tags, deadline = {}, time.time() + 90
        while time.time() < deadline and len(tags) < 2:  # the server starts, then loads the event files
            try:
                tags = _get(f"{base}/data/plugin/scalars/tags")
            except OSError:
                pass
            time.sleep(1)
        assert set(tags) == {"0_beta=1", "1_beta=4"}  # latent_dim=3 and FAST's settings: the same in both
        for run in tags.values():
            assert {"train/elbo", "val/elbo", "test/elbo", "test/log_likelihood", "train/beta"} <= set(run)
            assert not {"test/iw_samples", "test/log_likelihood_images", "test/surgery_points"} & set(run)  # counts
        groups = _get(
            f"{base}/data/plugin/hparams/session_groups",
            {
                "experimentName": "",
                "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
                "colParams": [],
                "startIndex": 0,
                "sliceSize": 100,
            },
        )["sessionGroups"]
        assert sorted(g["name"] for g in groups) == ["0_beta=1", "1_beta=4"]
        assert sorted(g["hparams"]["beta"] for g in groups) == [1.0, 4.0]
        assert all(g["hparams"]["prior"] == "GaussianPrior" for g in groups)
        experiment = _get(f"{base}/data/plugin/hparams/experiment", {"experimentName": ""})
        metric_tags = {m["name"]["tag"] for m in experiment["metricInfos"]}
        assert "test/log_likelihood" in metric_tags and "test/iw_samples" not in metric_tags
        infos = experiment["hparamInfos"]
        assert infos[0]["name"] == "beta" and infos[0].get("differs")  # the HParams tab shows it first
        assert not any(i.get("differs") for i in infos[1:])  # constants: after it, shown only when asked for
        layout = _get(f"{base}/data/plugin/custom_scalars/layout")  # the Custom Scalars tab, merged over the runs
        charts = [chart["title"] for category in layout["category"] for chart in category["chart"]]
        assert charts.count("ELBO") == 1 and "active units (val)" in charts
    finally:
        server.terminate()  # stopped by its PID
        server.wait(timeout=30)
    assert server.returncode is not None


def test_vae_report_groups_seeds_with_mean_and_std(tmp_path, capsys):
    """Runs that differ only in seed (and threads) are one setting: mean ± sample std over the finished ones."""
    values = {
        ("gaussian", 1): -100.0,
        ("gaussian", 2): -102.0,
        ("gaussian", 3): -104.0,
        ("vamp", 1): -98.0,
        ("vamp", 2): None,
    }
    for i, ((prior, seed), ll) in enumerate(values.items()):
        run_dir = tmp_path / str(i)
        (run_dir / ".hydra").mkdir(parents=True)
        overrides = [f"prior={prior}", f"seed={seed}", f"trainer.num_threads={1 + i % 2}"]
        (run_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
        if ll is not None:
            (run_dir / "metrics.json").write_text(json.dumps({"test/log_likelihood": ll, "best_epoch": 10 * seed}))
    assert runs_table.main([str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "5 runs (4 finished), 2 settings" in printed
    assert "-102 ± 2" in printed and "-98" in printed
    rows = list(csv.DictReader((tmp_path / "report.csv").open()))
    gauss = next(r for r in rows if r["prior"] == "gaussian")
    assert (gauss["n"], gauss["seeds"]) == ("3", "1 2 3")
    assert float(gauss["test/log_likelihood"]) == -102.0 and float(gauss["test/log_likelihood std"]) == 2.0
    vamp = next(r for r in rows if r["prior"] == "vamp")
    assert (vamp["n"], vamp["runs"], vamp["test/log_likelihood std"]) == ("1", "2", "")
    assert len(list(csv.DictReader((tmp_path / "runs.csv").open()))) == 5
    assert (tmp_path / "report_test_log_likelihood_vs_prior.png").stat().st_size > 1000


def test_vae_report_orders_seed_groups_by_their_values_and_joins_sweeps(tmp_path):
    """Grouped rows follow the settings' values (beta=1, 4, 16), not the order the run directories sort in; several
    sweeps (a beta sweep and a beta-TCVAE sweep) make one table, written in their parent, each run counted once."""
    runs = {"betas/beta16_s0": "beta=16", "betas/beta16_s1": "beta=16", "betas/beta1_s0": "beta=1"}
    runs.update({"betas/beta4_s0": "beta=4", "tcvae/0": "objective.tc_weight=5"})
    for name, setting in runs.items():
        (tmp_path / name / ".hydra").mkdir(parents=True)
        (tmp_path / name / ".hydra" / "overrides.yaml").write_text(f"- {setting}\n- seed={name[-1]}\n")
        (tmp_path / name / "metrics.json").write_text(json.dumps({"test/elbo": -90.0 - len(setting)}))
    assert runs_table.main([str(tmp_path / "betas")]) == 0
    rows = list(csv.DictReader((tmp_path / "betas" / "report.csv").open()))
    assert [r["beta"] for r in rows] == ["1", "4", "16"]
    assert runs_table.main([str(tmp_path / "betas"), str(tmp_path / "tcvae"), str(tmp_path / "betas/beta1_s0")]) == 0
    rows = list(csv.DictReader((tmp_path / "report.csv").open()))
    assert [(r["beta"], r["objective.tc_weight"], r["n"]) for r in rows] == [
        ("1", "", "1"),
        ("4", "", "1"),
        ("16", "", "2"),
        ("", "5", "1"),
    ]
    per_run = list(csv.DictReader((tmp_path / "runs.csv").open()))
    assert len(per_run) == 5 and per_run[0]["run"] == "betas/beta16_s0"
    assert runs_table._by_value("16") < runs_table._by_value("b") < runs_table._by_value("")


def test_vae_report_shows_only_what_varies(tmp_path, capsys):
    """Settings every run shares are said once under the table, not repeated in a column of every row."""
    for i, beta in enumerate((1, 4)):
        run_dir = tmp_path / str(i)
        (run_dir / ".hydra").mkdir(parents=True)
        overrides = [f"beta={beta}", "trainer.epochs=7", "dataset=digits"]
        (run_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
        (run_dir / "metrics.json").write_text(json.dumps({"test/elbo": -90.0 - beta}))
    assert runs_table.main([str(tmp_path)]) == 0
    md = (tmp_path / "report.md").read_text()
    assert md.startswith("| run | beta | status | test/elbo |")
    assert "Same in every run: trainer.epochs=7, dataset=digits." in md
    assert "Same in every run" in capsys.readouterr().out
    header = (tmp_path / "report.csv").read_text().splitlines()[0]
    assert "trainer.epochs" in header  # the CSV keeps every column


def test_vae_report_puts_a_metrics_companions_beside_it(tmp_path):
    """--metric test/impute_rmse tabulates test/impute_rmse_mice (ours and the baselines' side by side), not timings."""
    for i, rate in enumerate((0.1, 0.3)):
        run_dir = tmp_path / str(i)
        (run_dir / ".hydra").mkdir(parents=True)
        (run_dir / ".hydra" / "overrides.yaml").write_text(f"- missing.rate={rate}\n")
        metrics = {"test/impute_rmse": 0.5 + rate, "test/impute_rmse_mice": 0.4 + rate, "test/impute_rmse_time_s": 1.0}
        (run_dir / "metrics.json").write_text(json.dumps(metrics))
    assert runs_table.main([str(tmp_path), "--metric", "test/impute_rmse"]) == 0
    header = (tmp_path / "report.md").read_text().splitlines()[0]
    assert header == "| run | missing.rate | status | test/impute_rmse | test/impute_rmse_mice |"


def test_vae_report_error_bars_categorical_points_and_a_montage(tmp_path, capsys, monkeypatch):
    """Error bars are standard errors (a run's own: <metric>_stderr; a seed group's: std / sqrt(n)); a categorical
    x gets points, not a line through unordered categories; --images puts one picture of every run side by side."""
    runs = {"0_prior=gaussian": ("gaussian", -100.0, 0.5), "1_prior=mog": ("mog", -98.0, 0.25)}
    for name, (prior, ll, se) in runs.items():
        run_dir = tmp_path / name
        (run_dir / ".hydra").mkdir(parents=True)
        (run_dir / ".hydra" / "overrides.yaml").write_text(f"- prior={prior}\n")
        (run_dir / "metrics.json").write_text(json.dumps({"test/log_likelihood": ll, "test/log_likelihood_stderr": se}))
        Image.new("RGB", (28, 28), (40, 80, 160)).save(run_dir / "samples.png")
    elsewhere = tmp_path.parent / f"{tmp_path.name}-cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert runs_table.main([str(tmp_path), "--images", "samples,latent_density"]) == 0
    assert list(elsewhere.iterdir()) == []  # everything went into the directory it was given
    printed = capsys.readouterr().out
    assert "-100 ± 0.5" in printed and "-98 ± 0.25" in printed
    assert "montage of samples.png from 2 runs" in printed and "no run has latent_density.png" in printed
    assert (tmp_path / "montage_samples.png").stat().st_size > 1000
    assert not (tmp_path / "montage_latent_density.png").exists()

    rows = [runs_table.read_run(tmp_path / name, tmp_path) for name in runs]
    fig = report_plots.figure(rows, "test/log_likelihood", "prior", None)
    (line,) = fig.axes[0].lines[:1]
    assert line.get_linestyle() == "None" and list(line.get_xdata()) == [0, 1]  # points at the categories
    (bars,) = fig.axes[0].collections
    assert [seg[1][1] - seg[0][1] for seg in bars.get_segments()] == [1.0, 0.5]  # ± one standard error
    grouped = [{"beta": "1", "test/elbo": -90.0, "test/elbo std": 2.0, "n": 4}]
    assert report_plots.error_of(grouped[0], "test/elbo") == (1.0, "standard error of the mean over seeds")
    assert report_plots.figure(grouped, "test/elbo", "beta", None).axes[0].lines[0].get_linestyle() == "-"


def test_submitit_settings_that_lose_work_are_refused_or_warned_at_launch(tmp_path):
    """timeout_min x 60 <= signal_delay_s (USR2 at the start of every job) is refused before anything is queued;
    max_num_timeout=0 (timeouts never requeued) is warned."""
    from omegaconf import OmegaConf

    from vae_runner.sweeps.launcher_checks import launcher_problems

    slurm = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    errors, warnings = launcher_problems(
        OmegaConf.create({"_target_": slurm, "timeout_min": 1, "signal_delay_s": 120, "max_num_timeout": 0})
    )
    assert len(errors) == 1 and "timeout_min=1" in errors[0] and "signal_delay_s=120" in errors[0]
    assert len(warnings) == 1 and "max_num_timeout=0" in warnings[0]
    assert launcher_problems(
        OmegaConf.create({"_target_": slurm, "timeout_min": 240, "signal_delay_s": 120, "max_num_timeout": 5})
    ) == ([], [])
    assert launcher_problems(OmegaConf.create({"_target_": "hydra._internal.core_plugins.BasicLauncher"})) == ([], [])
    sweep = tmp_path / "sweep"
    done = vae_run(
        "-m",
        "beta=1,4",
        "hydra/launcher=submitit_slurm",
        "hydra.launcher.timeout_min=1",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert done.returncode == 2 and "signal_delay_s=120" in done.stderr and "Traceback" not in done.stderr
    assert not sweep.exists()  # nothing queued, nothing written
