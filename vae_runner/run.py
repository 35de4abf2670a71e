"""`train`, `evaluate` and `sample`, top to bottom, and `run`, which picks one (or mode=impute) for the `mode` and
the state of the run directory (runs/). The pieces come from build.py; the loop is training/trainer.py; the final
numbers and pictures are evaluation/final.py.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import statistics
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from vae_runner import build
from vae_runner.config.checks import validate
from vae_runner.config.keys import override_keys
from vae_runner.config.overrides import shell_override
from vae_runner.config.plain import plain
from vae_runner.config.schema import Mode
from vae_runner.data.modalities import as_images
from vae_runner.data.table_file import is_table_file
from vae_runner.errors import UserError
from vae_runner.evaluation.final import final_report
from vae_runner.evaluation.pictures import image_grid, scatter
from vae_runner.host.cpu_features import device_name
from vae_runner.host.signals import Interrupted, requeue_if_launcher_can, stop_signals_to
from vae_runner.imputation.table import impute_table
from vae_runner.loggers.console import summary
from vae_runner.loggers.png import save_png
from vae_runner.runs.checkpoint import load_checkpoint, load_weights, resolve_checkpoint, set_rng_state, sweep_runs
from vae_runner.runs.directory import (
    BEST,
    CHECKPOINTS,
    LAST,
    METRICS,
    checkpoint_path,
    continues_in_place,
    read_metrics,
    run_dir_of,
    write_metrics,
)
from vae_runner.runs.saved_config import located, merge_saved, same_run_or_refuse, same_table_or_refuse

log = logging.getLogger("vae_runner")


def resumed(cfg: DictConfig, run_dir: Path, overrides: Sequence[str]) -> tuple[DictConfig, Path, dict, Path]:
    """`resume=`: the saved run's config (with the command line's execution overrides), the directory training goes
    on in (the run's own, or a new one when it branches from another checkpoint than last.pt), its state and path."""
    path = resolve_checkpoint(cfg.resume, LAST)
    state = load_checkpoint(path)
    cfg = located(merge_saved(state, cfg, overrides, "resume"), state)
    origin = run_dir_of(path)
    same_table_or_refuse(cfg, state, origin)
    if continues_in_place(cfg.resume):
        run_dir = origin
        log.info("resuming %s from epoch %d", run_dir, state["epoch"])
    else:
        log.info(
            "resuming %s from %s (epoch %d) in a new run directory, %s: the run's own last.pt stays as it is",
            origin,
            path.name,
            state["epoch"],
            run_dir,
        )
    if (origin / METRICS).is_file() and state["epoch"] >= cfg.trainer.epochs and run_dir == origin:
        raise UserError(
            f"{origin} has finished its {state['epoch']} epochs (metrics.json): resuming it would train "
            f"nothing. To train longer, add trainer.epochs=<more than {state['epoch']}>; to evaluate it "
            f"again, use vae-run mode=eval {shell_override('ckpt', origin)}; to train with other settings, start a "
            f"new run."
        )
    return cfg, run_dir, state, path


def train(cfg: DictConfig, run_dir: Path, overrides: Sequence[str] = ()) -> dict[str, float]:
    """Train (or, with `resume=`, continue) a run; evaluate its best checkpoint; return the metrics."""
    state = None
    if cfg.resume:
        cfg, run_dir, state, path = resumed(cfg, run_dir, overrides)
    validate(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in (run_dir / CHECKPOINTS).glob("*.tmp"):  # half-written by a process that was killed
        stale.unlink()
    # TensorBoard hides the earlier events at steps >= purge_step: those logged after the checkpoint, not the
    # validation and pictures logged at its own step before it was written
    trainer = build.make_trainer(
        cfg, run_dir, purge_step=state["global_step"] + 1 if state else None, fresh=state is None
    )
    model = trainer.model
    optimizer = trainer.optimizer
    logger = trainer.logger
    device = trainer.device
    objective, data = trainer.objective, trainer.data
    if state is not None:
        load_weights(model, state, path)
        optimizer.load_state_dict(state["optimizer"])
        trainer.load_state(state)
        set_rng_state(state["rng"])
    log.info("run dir %s; %d parameters on %s", run_dir, sum(p.numel() for p in model.parameters()), device)
    try:
        trainer.fit()
        train_time = trainer.train_time
        best_path = checkpoint_path(run_dir, BEST)
        best = load_checkpoint(best_path, map_location=device)
        load_weights(model, best, best_path)
        build.set_threads(cfg, model, objective, data, device, "evaluation")
        with stop_on_signal(
            f"training had finished; run the final evaluation again with: vae-run {shell_override('resume', run_dir)}"
        ):
            metrics = final_report(model, objective, data, cfg, logger, trainer.global_step)
        metrics.update(training_record(trainer, best["epoch"], train_time))
        write_metrics(run_dir, metrics)
        logger.artifact(run_dir / METRICS)
    finally:
        logger.close()
    summary(metrics, run_dir, cfg.latent_dim)
    return metrics


def training_record(trainer, best_epoch: int, train_time: float) -> dict:
    """What metrics.json says of the training itself: epochs, steps, times, the device."""
    record = {
        "best_epoch": best_epoch,
        "epochs": trainer.epoch,
        "steps": trainer.global_step,
        "train_time_s": round(train_time, 3),
        "train_steps_s": round(trainer.steps_time, 3),  # the part of train_time_s inside training epochs
        "device": device_name(trainer.device),
    }
    if trainer.epoch_times:
        record["epoch_time_s"] = round(statistics.median(trainer.epoch_times), 3)
    return record


def evaluate(cfg: DictConfig, run_dir: Path, overrides: Sequence[str] = ()) -> dict[str, float]:
    """Evaluate `ckpt` on the validation and test sets without training; same metrics and pictures as training."""
    validate(cfg)
    cfg, state, data, model, _ = build.from_checkpoint(cfg, overrides, "mode=eval", other_data=True)
    path = state["path"]
    run_dir.mkdir(parents=True, exist_ok=True)
    logger = build.make_logger(cfg, run_dir)
    try:
        with stop_on_signal("nothing was written; run the same command again"):
            metrics = final_report(model, instantiate(cfg.objective), data, cfg, logger, state["global_step"])
        metrics.update({"checkpoint": str(path), "epochs": state["epoch"], "steps": state["global_step"]})
        # labelled, so that a table of runs never mixes out-of-distribution scores with test-set numbers unawares
        metrics.update({"trained_on": state["config"]["dataset"]["name"], "evaluated_on": cfg.dataset.name})
        write_metrics(run_dir, metrics)
        logger.artifact(run_dir / METRICS)
    finally:
        logger.close()
    log.info(
        "test ELBO %.3f nats (recon %.3f, KL %.3f) for %s",
        metrics["test/elbo"],
        metrics["test/recon"],
        metrics["test/kl"],
        path,
    )
    return metrics


@contextlib.contextmanager
def stop_on_signal(then: str):
    """A stop signal during the final evaluation: `Interrupted` (one line and exit status 128 + signal from
    vae-run) saying what is kept and what to run, instead of a KeyboardInterrupt traceback; under submitit, its
    requeue (the requeued job evaluates again). A repeated signal is ignored while the first one is acted on."""
    stopping = []

    def stop(signum, frame):
        if stopping:
            return
        stopping.append(signum)
        requeue_if_launcher_can(before, signum, "during the final evaluation:")
        raise Interrupted(signum, f"Stopped by {signal.Signals(signum).name} during the final evaluation; {then}")

    with stop_signals_to(stop) as before:
        yield


def sample(cfg: DictConfig, run_dir: Path, overrides: Sequence[str] = ()) -> dict:
    """Draw `n` images from `ckpt`'s model (x = mean of p(x|z), z ~ p(z), seeded by `seed`) into <run dir>/samples.pt
    and samples.npy (n, *data shape) and a picture, samples.png."""
    validate(cfg)
    cfg, state, data, model, _ = build.from_checkpoint(cfg, overrides, "mode=sample")
    run_dir.mkdir(parents=True, exist_ok=True)
    x = model.sample(cfg.n).cpu()
    torch.save(x, run_dir / "samples.pt")
    np.save(run_dir / "samples.npy", x.numpy())
    if (images := as_images(data, x)) is not None:  # a multimodal row's image block, where there are several
        picture = image_grid(images)
    else:
        picture = scatter({"test data": data.test.floats()[:2000], "samples": x}, f"{cfg.n} samples from the prior")
    save_png(picture, run_dir / "samples.png")
    log.info("%d samples of %s in %s (samples.pt, samples.npy, samples.png)", cfg.n, state["path"], run_dir)
    return {"samples": cfg.n, "checkpoint": str(state["path"])}


def ensemble_members(cfg: DictConfig) -> list[DictConfig]:
    """mode=impute's runs: the one `ckpt` names, or each run of the sweep directory it names (a bootstrap ensemble)."""
    runs = sweep_runs(cfg.ckpt)
    if not runs:
        return [cfg]
    members = []
    for path in runs:
        member = cfg.copy()
        member.ckpt = str(path)
        members.append(member)
    return members


def fill_own_table(cfg: DictConfig, run_dir: Path) -> None:
    """evaluation.imputation.fill=true: the trained run fills its table's missing cells into its own directory, as
    `vae-run mode=impute ckpt=<run dir>` would: fit and impute in one command."""
    table = OmegaConf.select(cfg, "dataset.table", default=None)
    if not is_table_file(str(table)):
        log.warning(
            "evaluation.imputation.fill=true: dataset.table=%s is no file of yours with missing cells; nothing was "
            "filled (give dataset.table=<your file>)",
            table,
        )
        return
    impute = cfg.copy()
    impute.ckpt = str(run_dir)
    impute_table([build.from_checkpoint(impute, (), "mode=impute")], run_dir)


def run(cfg: DictConfig, run_dir: Path, overrides: Sequence[str] = ()) -> float:
    """Dispatch on `mode`; return `optimized_metric` (what Hydra sweepers optimise).

    A training run whose directory already holds results is not run again: a finished one (metrics.json) is
    skipped, an interrupted one (checkpoints/last.pt) resumes. That is how a re-launched sweep, or a Slurm job
    requeued after preemption, picks up where it stopped."""
    validate(cfg)
    existing, saved = checkpoint_path(run_dir, LAST), {}
    if plain(cfg.mode) == Mode.train.value and not cfg.resume and existing.is_file():
        saved = load_checkpoint(existing)
        same_run_or_refuse(cfg, saved, run_dir)
    if plain(cfg.mode) == Mode.sample.value:
        sample(cfg, run_dir, overrides)
        return float("nan")  # nothing to optimise
    if plain(cfg.mode) == Mode.impute.value:
        impute_table([build.from_checkpoint(c, overrides, "mode=impute") for c in ensemble_members(cfg)], run_dir)
        return float("nan")
    if plain(cfg.mode) == Mode.eval.value:
        metrics = evaluate(cfg, run_dir, overrides)
    elif not cfg.resume and (run_dir / METRICS).is_file():
        log.info("%s has finished already (metrics.json); skipped", run_dir)
        metrics = read_metrics(run_dir)
    else:
        if not cfg.resume and existing.is_file():
            if saved.get("stacked"):
                log.info(
                    "%s was trained up to epoch %d in a stack of %d runs (hydra/launcher=batched); finishing it here",
                    run_dir,
                    saved["epoch"],
                    saved["stacked"],
                )
            else:
                log.info("%s holds an interrupted run; resuming it", run_dir)
            cfg = cfg.copy()
            cfg.resume = str(run_dir)
            # same_run_or_refuse found the saved config equal to this one: the preset (experiment=) that composed
            # it has nothing left to change, and merge_saved refuses presets on saved runs.
            overrides = [o for o in overrides if override_keys([o]) != ["experiment"]]
        metrics = train(cfg, run_dir, overrides)
        if cfg.evaluation.imputation.fill:
            fill_own_table(cfg, run_dir)
    if cfg.optimized_metric not in metrics:
        raise UserError(
            f"optimized_metric={cfg.optimized_metric!r} is not among this run's metrics; use one of: "
            f"{', '.join(k for k, v in metrics.items() if isinstance(v, (int, float)))}."
        )
    return metrics[cfg.optimized_metric]
