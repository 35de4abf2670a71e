"""`train` and `evaluate`: config -> data -> model (encoder, prior, decoder, likelihood) -> objective -> trainer ->
logger / evaluator, built top to bottom with `hydra.utils.instantiate`.

The run directory contract: TensorBoard events, `metrics.json`, `samples.png`, `reconstructions.png` and
`checkpoints/{last,best}.pt`.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import platform
import statistics
import time
from collections.abc import Sequence
from enum import Enum
from pathlib import Path

import torch
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from vae_runner.checkpoint import load_checkpoint, resolve_checkpoint, set_rng_state
from vae_runner.config import Mode, VAEConfig, validate
from vae_runner.data import DataSplits, prepare
from vae_runner.errors import UserError
from vae_runner.logging import RunLogger
from vae_runner.model.vae import VAE
from vae_runner.report import METRIC_TAGS, final_report
from vae_runner.rundir import run_dir_of
from vae_runner.trainer import Trainer

log = logging.getLogger("vae_runner")

# Keys that define the model (and the data it was fitted to): a checkpoint can only be used with the same values.
MODEL_KEYS = ("dataset", "architecture", "prior", "likelihood", "latent_dim")
# ... except where the data lives on this machine.
LOCATION_KEYS = ("dataset.root", "dataset.download", "dataset.system_dirs")


# ----------------------------------------------------------------------------------------------- setup
def setup(cfg: DictConfig) -> torch.device:
    """Device, threads and seed, before anything random happens."""
    want = _plain(cfg.trainer.device)
    if want == "cuda" and not torch.cuda.is_available():
        raise UserError(
            "trainer.device=cuda was asked for but torch sees no CUDA device (is this a CPU-only torch "
            "build or a machine without a GPU?). Use trainer.device=auto or trainer.device=cpu."
        )
    device = torch.device("cuda" if want == "cuda" or (want == "auto" and torch.cuda.is_available()) else "cpu")
    if cfg.trainer.num_threads:
        torch.set_num_threads(cfg.trainer.num_threads)
    if device.type == "cpu":
        # Subnormal floats (Adam's decayed moments of dead units and never-lit pixels: ~250k of them after 10
        # Fashion-MNIST epochs) take a slow path on many CPUs; flushing them to zero leaves the metrics unchanged.
        if not torch.set_flush_denormal(bool(cfg.trainer.flush_denormal)) and cfg.trainer.flush_denormal:
            log.info("this CPU cannot flush subnormal floats; trainer.flush_denormal has no effect")
    torch.manual_seed(cfg.seed)
    return device


def device_name(device: torch.device) -> str:
    """What trained the run, for reports: the GPU's name, or the CPU's model and the torch thread count."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in _read("/proc/cpuinfo").splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown CPU",
    )
    return f"cpu ({model}, {torch.get_num_threads()} threads)"


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def compile_networks(model: VAE) -> None:
    """torch.compile the encoder and decoder in place (state_dict keys unchanged); where torch.compile does not work
    (no C++ compiler, an unsupported Python or platform), say so once and train in eager mode."""
    try:
        probe = torch.compile(lambda t: torch.relu(t) * 2.0 + 1.0)
        probe(torch.ones(4, device=next(model.parameters()).device))
    except Exception as err:  # noqa: BLE001 - any failure means: no compiler here
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        log.warning(
            "trainer.compile=true, but torch.compile does not work on this machine (%s: %s). Training "
            "continues in eager mode: same results, without the compiled speed-up. Set "
            "trainer.compile=false to silence this.",
            type(err).__name__,
            reason,
        )
        return
    model.encoder.compile(dynamic=False)
    model.decoder.compile(dynamic=False)


def load_data(cfg: DictConfig, device: torch.device) -> DataSplits:
    spec = OmegaConf.to_container(cfg.dataset, resolve=True, enum_to_str=True)
    binarize, name = spec.pop("binarize"), spec.pop("name", "dataset")
    binary_likelihood = getattr(get_class(cfg.likelihood._target_), "binary", False)
    if binarize == "auto":
        binarize = "dynamic" if binary_likelihood else "none"
    data = build(spec)
    if binary_likelihood and not data.in_unit_range:
        raise UserError(
            f"dataset={name} holds real-valued data but likelihood=bernoulli needs values in [0, 1]. Use "
            f"likelihood=gaussian or likelihood=mse (or experiment=synthetic_2d for the 2-D demo)."
        )
    if binarize != "none" and not data.in_unit_range:
        raise UserError(
            f"dataset.binarize={binarize} needs data in [0, 1]; dataset={name} is real-valued. "
            f"Set dataset.binarize=none."
        )
    if binary_likelihood and binarize == "none":
        log.warning(
            "likelihood=bernoulli on grey-level data without binarisation: the reported log-likelihoods are "
            "cross-entropies, not normalised densities (set dataset.binarize=dynamic for published numbers)."
        )
    log.info(
        "data %s: shape %s, %d/%d/%d train/val/test, binarize=%s",
        name,
        data.shape,
        len(data.train),
        len(data.val),
        len(data.test),
        binarize,
    )
    return prepare(data, binarize, device)


def build(node, *args, **kwargs):
    """hydra.utils.instantiate, with a UserError raised by the component passed on as itself (instantiate wraps
    everything a `_target_` raises in an InstantiationException)."""
    try:
        return instantiate(node, *args, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        while cause is not None and not isinstance(cause, UserError):
            cause = cause.__cause__
        if cause is None:
            raise
        raise cause from None


def build_model(cfg: DictConfig, data: DataSplits, device: torch.device) -> VAE:
    arch, d, shape = cfg.architecture, cfg.latent_dim, data.shape
    encoder = build(arch.encoder, input_shape=shape, latent_dim=d)
    # A prior gets the encoder and the data when its constructor asks for them by name (see priors/base.py).
    wanted = inspect.signature(get_class(cfg.prior._target_)).parameters
    extras = {k: v for k, v in (("encoder", encoder), ("data", data)) if k in wanted}
    model = VAE(
        encoder=encoder,
        decoder=build(arch.decoder, output_shape=shape, latent_dim=d),
        # _partial_: live objects (encoder, data) must not pass through Hydra's config conversion.
        prior=build(cfg.prior, _partial_=True)(latent_dim=d, **extras),
        likelihood=build(cfg.likelihood, data_shape=shape),
    )
    model = model.to(device)
    if any(isinstance(m, nn.Conv2d | nn.ConvTranspose2d) for m in model.modules()):
        # NHWC kernels (oneDNN on CPU, cuDNN on GPU): a Fashion-MNIST conv step was 1.3x faster on CPU in fp32.
        model = model.to(memory_format=torch.channels_last)
    return model


# ------------------------------------------------------------------------------- saved configs and overrides
def _plain(v):
    if OmegaConf.is_config(v):
        return OmegaConf.to_container(v, resolve=True, enum_to_str=True)
    return v.value if isinstance(v, Enum) else v


def flatten(node: dict, prefix: str = "") -> dict:
    """A nested plain config as {dotted key: leaf value}."""
    out = {}
    for k, v in node.items():
        out.update(flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def _model_part(key: str, value):
    """What of an override must match the checkpoint: for a group choice (`prior=mog`) the `_target_`s it builds,
    for a single key (`latent_dim=8`, `prior.n_components=5`) its value."""
    value = _plain(value)
    if "." in key or not isinstance(value, dict):
        return value
    return [v for k, v in flatten(value).items() if k.rsplit(".", 1)[-1] == "_target_"]


def override_keys(overrides: Sequence[str]) -> list[str]:
    keys = [o.split("=", 1)[0].lstrip("+~") for o in overrides]
    return [k for k in keys if k != "hydra" and not k.startswith("hydra.") and not k.startswith("hydra/")]


def merge_saved(state: dict, current: DictConfig, overrides: Sequence[str], purpose: str) -> DictConfig:
    """The checkpoint's config with the command line's explicit overrides applied; an override that would change the
    model (MODEL_KEYS) is refused with a list of the differences."""
    merged = OmegaConf.merge(OmegaConf.structured(VAEConfig), state.get("config_source", state["config"]))
    if OmegaConf.is_missing(merged, "optimizer"):  # saved before the optimizer group existed: it was Adam
        merged.optimizer = current.optimizer
    clashes = []
    for key in override_keys(overrides):
        if key in ("mode", "ckpt", "resume"):
            continue
        if key == "experiment":
            clashes.append("experiment= (a preset cannot be applied to a saved run)")
            continue
        new = OmegaConf.select(current, key, default=None)
        if key.split(".")[0] in MODEL_KEYS and key not in LOCATION_KEYS:
            old, requested = _model_part(key, OmegaConf.select(merged, key, default=None)), _model_part(key, new)
            if old != requested:
                clashes.append(f"{key} (checkpoint: {old!r}, requested: {requested!r})")
        else:
            OmegaConf.update(merged, key, new, merge=False)
    if clashes:
        raise UserError(
            f"The checkpoint's model config differs from the requested one in: {'; '.join(clashes)}. "
            f"{purpose} uses the checkpoint's own model config: drop these overrides, or train a new "
            f"run with them."
        )
    for key in ("mode", "ckpt", "resume"):
        merged[key] = current[key]
    return merged


# Keys that say where and how a run executes, not what it computes: they may differ when a run is taken up again.
EXECUTION_KEYS = (
    "mode",
    "ckpt",
    "resume",
    "optimized_metric",
    "logger",
    "trainer.device",
    "trainer.num_threads",
    "trainer.compile",
    "trainer.flush_denormal",
    "trainer.epochs",
    "evaluation",
) + LOCATION_KEYS


def same_run_or_refuse(cfg: DictConfig, state: dict, run_dir: Path) -> None:
    """A run directory holding a checkpoint is taken up again only by the same run (same config but for
    EXECUTION_KEYS); anything else would overwrite it."""

    def flat(node):
        return {
            k: v for k, v in flatten(node).items() if not any(k == e or k.startswith(e + ".") for e in EXECUTION_KEYS)
        }

    old, new = flat(state["config"]), flat(_plain(cfg))
    differ = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    if differ:
        raise UserError(
            f"{run_dir} already holds a different run (its config differs in: {', '.join(differ[:8])}). "
            f"Nothing was changed there. Give this run its own directory (hydra.run.dir=... or "
            f"hydra.sweep.dir=...), or continue that run with resume={run_dir}."
        )


def hparams_of(cfg: DictConfig) -> dict:
    """The run's hyper-parameters as flat key -> int/float/str/bool (HParams plugin)."""
    plain = _plain(cfg)
    for k in ("mode", "ckpt", "resume", "logger"):
        plain.pop(k, None)
    hparams = {}
    for key, v in flatten(plain).items():
        if key.rsplit(".", 1)[-1] == "_target_":  # prior._target_ -> prior: the class name
            hparams[key.rsplit(".", 1)[0]] = str(v).rsplit(".", 1)[-1]
        else:
            hparams[key] = v if isinstance(v, (int, float, str, bool)) else str(v)
    return hparams


# ---------------------------------------------------------------------------------------------- results
def write_metrics(run_dir: Path, metrics: dict) -> None:
    tmp = run_dir / "metrics.json.tmp"
    tmp.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, run_dir / "metrics.json")


def _load_weights(model, state: dict, path: Path) -> None:
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        first = str(err).strip().splitlines()[1:3]
        raise UserError(
            f"The weights in {path} do not fit the model built from its config ({' '.join(first)}). "
            f"The checkpoint was written by a different model definition; train a new run."
        ) from err


# ------------------------------------------------------------------------------------------ entry points
def make_trainer(cfg: DictConfig, run_dir: Path, purge_step: int | None = None) -> Trainer:
    """Device, data, model, objective, optimizer and logger for `cfg`, ready to `fit()` (also what
    scripts/bench.py times)."""
    device = setup(cfg)
    data = load_data(cfg, device)
    model = build_model(cfg, data, device)
    if cfg.trainer.compile:
        compile_networks(model)
    optimizer = build(cfg.optimizer)(model.parameters())  # _partial_: the optimizer group's class and settings
    config = {"config": _plain(cfg), "config_source": OmegaConf.to_container(cfg, enum_to_str=True)}
    logger = RunLogger(run_dir, cfg.logger.tensorboard, purge_step=purge_step)
    return Trainer(
        model,
        instantiate(cfg.objective),
        optimizer,
        data,
        cfg.trainer,
        logger,
        run_dir,
        config,
        eval_seed=cfg.seed,
        n_images=cfg.logger.n_images,
        progress_bar=cfg.logger.progress_bar,
    )


def train(cfg: DictConfig, run_dir: Path, overrides: Sequence[str] = ()) -> dict[str, float]:
    """Train (or, with `resume=`, continue) a run; evaluate its best checkpoint; return the metrics."""
    state = None
    if cfg.resume:
        path = resolve_checkpoint(cfg.resume, "last.pt")
        state = load_checkpoint(path)
        cfg = merge_saved(state, cfg, overrides, "resume")
        run_dir = run_dir_of(path)
        log.info("resuming %s from epoch %d", run_dir, state["epoch"])
    validate(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in (run_dir / "checkpoints").glob("*.tmp"):  # half-written by a process that was killed
        stale.unlink()
    trainer = make_trainer(cfg, run_dir, purge_step=state["global_step"] if state else None)
    model, optimizer, logger, device = trainer.model, trainer.optimizer, trainer.logger, trainer.device
    objective, data = trainer.objective, trainer.data
    if state is not None:
        _load_weights(model, state, path)
        optimizer.load_state_dict(state["optimizer"])
        trainer.load_state(state)
        set_rng_state(state["rng"])
    else:
        logger.hparams(hparams_of(cfg), METRIC_TAGS)
    log.info("run dir %s; %d parameters on %s", run_dir, sum(p.numel() for p in model.parameters()), device)
    t0 = time.perf_counter()
    try:
        trainer.fit()
        train_time = time.perf_counter() - t0
        best_path = run_dir / "checkpoints" / "best.pt"
        best = load_checkpoint(best_path, map_location=device)
        _load_weights(model, best, best_path)
        metrics = final_report(model, objective, data, cfg, logger, trainer.global_step)
    finally:
        logger.close()
    metrics.update(
        {
            "best_epoch": best["epoch"],
            "epochs": trainer.epoch,
            "steps": trainer.global_step,
            "train_time_s": round(train_time, 3),
            "device": device_name(device),
        }
    )
    if trainer.epoch_times:
        metrics["epoch_time_s"] = round(statistics.median(trainer.epoch_times), 3)
    write_metrics(run_dir, metrics)
    log.info(
        "test ELBO %.3f nats (recon %.3f, KL %.3f), log-likelihood %.3f +- %.3f (K=%d); val ELBO %.3f; %s",
        metrics["test/elbo"],
        metrics["test/recon"],
        metrics["test/kl"],
        metrics["test/log_likelihood"],
        metrics["test/log_likelihood_stderr"],
        metrics["test/iw_samples"],
        metrics["val/elbo"],
        run_dir / "metrics.json",
    )
    return metrics


def evaluate(cfg: DictConfig, run_dir: Path, overrides: Sequence[str] = ()) -> dict[str, float]:
    """Evaluate `ckpt` on the validation and test sets without training; same metrics and pictures as training."""
    validate(cfg)
    path = resolve_checkpoint(cfg.ckpt, "best.pt")
    state = load_checkpoint(path)
    cfg = merge_saved(state, cfg, overrides, "mode=eval")
    validate(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = setup(cfg)
    data = load_data(cfg, device)
    model = build_model(cfg, data, device)
    _load_weights(model, state, path)
    model.eval()
    logger = RunLogger(run_dir, cfg.logger.tensorboard)
    logger.hparams(hparams_of(cfg), METRIC_TAGS)
    try:
        metrics = final_report(model, instantiate(cfg.objective), data, cfg, logger, state["global_step"])
    finally:
        logger.close()
    metrics.update({"checkpoint": str(path), "epochs": state["epoch"], "steps": state["global_step"]})
    write_metrics(run_dir, metrics)
    log.info(
        "test ELBO %.3f nats (recon %.3f, KL %.3f) for %s",
        metrics["test/elbo"],
        metrics["test/recon"],
        metrics["test/kl"],
        path,
    )
    return metrics


def run(cfg: DictConfig, run_dir: Path, overrides: Sequence[str] = ()) -> float:
    """Dispatch on `mode`; return `optimized_metric` (what Hydra sweepers optimise).

    A training run whose directory already holds results is not run again: a finished one (metrics.json) is
    skipped, an interrupted one (checkpoints/last.pt) resumes. That is how a re-launched sweep, or a Slurm job
    requeued after preemption, picks up where it stopped."""
    validate(cfg)
    existing = run_dir / "checkpoints" / "last.pt"
    if _plain(cfg.mode) == Mode.train.value and not cfg.resume and existing.is_file():
        same_run_or_refuse(cfg, load_checkpoint(existing), run_dir)
    if _plain(cfg.mode) == Mode.eval.value:
        metrics = evaluate(cfg, run_dir, overrides)
    elif not cfg.resume and (run_dir / "metrics.json").is_file():
        log.info("%s has finished already (metrics.json); skipped", run_dir)
        metrics = json.loads((run_dir / "metrics.json").read_text())
    else:
        if not cfg.resume and existing.is_file():
            log.info("%s holds an interrupted run; resuming it", run_dir)
            cfg = cfg.copy()
            cfg.resume = str(run_dir)
        metrics = train(cfg, run_dir, overrides)
    if cfg.optimized_metric not in metrics:
        raise UserError(
            f"optimized_metric={cfg.optimized_metric!r} is not among this run's metrics; use one of: "
            f"{', '.join(k for k, v in metrics.items() if isinstance(v, (int, float)))}."
        )
    return metrics[cfg.optimized_metric]
