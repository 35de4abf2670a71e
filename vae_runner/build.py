"""Everything a run is made of, built from its config: device, threads and seed (`setup`), the data
(`load_data`), the VAE (`build_model`: encoder, prior, decoder, likelihood via `hydra.utils.instantiate`), and the
trainer with its objective, optimizer and logger (`make_trainer`, also what benchmarks/bench.py times).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from vae_runner.config.checks import validate
from vae_runner.config.compose import construct
from vae_runner.config.keys import RUN_KEYS
from vae_runner.config.plain import plain
from vae_runner.data import DataSplits, bootstrap_resample, prepare
from vae_runner.data.missingness import check_missing_pixels, hide_missing
from vae_runner.data.modalities import with_modalities
from vae_runner.data.tabular import standardized
from vae_runner.errors import UserError
from vae_runner.evaluation.diagnostics import active_units, encode_split
from vae_runner.evaluation.metrics import evaluate_split
from vae_runner.evaluation.pictures import log_pictures
from vae_runner.host import threads
from vae_runner.host.cpu_features import chosen_device, precision_line, slow_bf16_warning
from vae_runner.loggers.base import RunLogger
from vae_runner.loggers.console import FILE_ONLY
from vae_runner.loggers.hparams import hparams_of
from vae_runner.model.critic import FactorCritic, parameter_groups
from vae_runner.model.modalities import JointPosterior, join_modalities
from vae_runner.model.vae import VAE
from vae_runner.runs.checkpoint import load_checkpoint, load_weights, resolve_checkpoint
from vae_runner.runs.directory import BEST
from vae_runner.runs.saved_config import config_record, located, merge_saved, same_table_or_refuse
from vae_runner.training.trainer import Trainer

log = logging.getLogger("vae_runner")


def setup(cfg: DictConfig) -> torch.device:
    """Device and seed, before anything random happens (threads: `set_threads`, once the model is built)."""
    want = plain(cfg.trainer.device)
    if want == "cuda" and not torch.cuda.is_available():
        raise UserError(
            "trainer.device=cuda was asked for but torch sees no CUDA device (is this a CPU-only torch "
            "build or a machine without a GPU?). Use trainer.device=auto or trainer.device=cpu."
        )
    device = chosen_device(want)
    if device.type == "cpu":
        # Subnormal floats (Adam's decayed moments of dead units and never-lit pixels: ~250k of them after 10
        # Fashion-MNIST epochs) take a slow path on many CPUs; flushing them to zero leaves the metrics unchanged.
        if not torch.set_flush_denormal(bool(cfg.trainer.flush_denormal)) and cfg.trainer.flush_denormal:
            log.info("this CPU cannot flush subnormal floats; trainer.flush_denormal has no effect")
    torch.manual_seed(cfg.seed)
    return device


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
    binarize, name = (spec.pop(key) for key in RUN_KEYS)
    binary_likelihood = getattr(get_class(cfg.likelihood._target_), "binary", False)
    several = list(cfg.modalities.use) != ["image"]  # packed multimodal rows: images binarised once, before
    missing = cfg.missing  # entries hidden as NaN, then a table standardised by its observed training entries
    mask_seed = cfg.seed if missing.seed is None else missing.seed
    data = construct(spec)
    pixels = data.is_image and missing.kind != "none"  # missing pixels: hidden after the binarisation, below
    if binarize == "auto":
        binarize = ("static" if several or pixels else "dynamic") if binary_likelihood else "none"
    if pixels:
        check_missing_pixels(binarize, several)
    else:
        data = hide_missing(data, missing.kind, missing.rate, mask_seed, missing.inputs)
    data = data if data.columns is None else standardized(data)
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
    if binary_likelihood and binarize == "none" and not data.binary:
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
    if several:
        data, binarize = with_modalities(data, binarize, cfg.modalities, mask_seed), "none"
    data = prepare(data, binarize, device)
    data = hide_missing(data, missing.kind, missing.rate, mask_seed, missing.inputs) if pixels else data
    return bootstrap_resample(data, cfg.seed) if cfg.trainer.bootstrap else data


def build_model(cfg: DictConfig, data: DataSplits, device: torch.device, fresh: bool = True) -> VAE:
    """The run's VAE for `data`; `fresh=False` for one whose weights a checkpoint replaces next (the likelihood's
    data-dependent start skipped: model/vae.py adapt_to)."""
    arch = cfg.architecture
    d = cfg.latent_dim
    shape = data.modalities[0][1] if data.modalities else data.shape
    posterior = construct(cfg.posterior, latent_dim=d)
    encoder, decoder = (
        construct(arch.encoder, input_shape=shape, latent_dim=d, **outputs_for(arch.encoder, posterior)),
        construct(arch.decoder, output_shape=shape, latent_dim=d),
    )
    likelihood = construct(cfg.likelihood, data_shape=shape)
    if data.modalities:  # the image's networks and likelihood beside the other modalities' (model/modalities.py)
        encoder, decoder, likelihood = join_modalities(
            data.modalities, (encoder, decoder, likelihood), d, cfg.modalities
        )
        posterior = JointPosterior(d, len(data.modalities), cfg.modalities.joint, cfg.modalities.subset_prior)
    # A prior gets the encoder and the data when its constructor asks for them by name (see priors/base.py).
    wanted = inspect.signature(get_class(cfg.prior._target_)).parameters
    extras = {k: v for k, v in (("encoder", encoder), ("posterior", posterior), ("data", data)) if k in wanted}
    # _partial_: live objects (encoder, data) must not pass through Hydra's config conversion.
    prior = construct(cfg.prior, _partial_=True)(latent_dim=d, **extras)
    model = VAE(encoder, decoder, prior, likelihood, posterior)
    model.adapt_to(data, start=fresh)  # missing entries (NaN), a table's binary columns, the likelihood's start
    # the encoder sees rows with entries hidden (NaN), complete data too: input dropout, held-out validation entries
    if cfg.objective.get("input_dropout", 0) > 0 or cfg.trainer.monitor == "imputation":
        model.accept_missing()
    if cfg.objective.get("factor_vae_weight", 0) > 0:  # FactorVAE's discriminator rides on the model (checkpoints)
        model.critic = FactorCritic(d, list(cfg.objective.critic_hidden))
    model = model.to(device)
    if any(isinstance(m, nn.Conv2d | nn.ConvTranspose2d) for m in model.modules()):
        # NHWC kernels (oneDNN on CPU, cuDNN on GPU): a Fashion-MNIST conv step was 1.3x faster on CPU in fp32.
        model = model.to(memory_format=torch.channels_last)
    return model


def outputs_for(encoder_node, posterior) -> dict:
    """The encoder's `outputs=` (its last layer's width, the posterior's parameters): for every built-in encoder,
    and for a user's `_target_` that names the parameter; one that does not must fit the Gaussian posterior."""
    if "outputs" in inspect.signature(get_class(encoder_node._target_)).parameters:
        return {"outputs": posterior.outputs}
    if posterior.outputs != 2 * posterior.latent_dim:
        raise UserError(
            f"architecture.encoder {encoder_node._target_} has no `outputs` parameter, so it gives the Gaussian "
            f"posterior's 2 x latent_dim numbers only; the chosen posterior needs {posterior.outputs}. Add an "
            f"`outputs: int` argument (the width of its last layer), or use posterior=gaussian."
        )
    return {}


def from_checkpoint(
    cfg: DictConfig, overrides: Sequence[str], purpose: str, default_name: str = BEST, other_data: bool = False
) -> tuple[DictConfig, dict, DataSplits, VAE, torch.device]:
    """A saved run for `mode=eval`, `sample`, `impute` and the Python API: its config (with the command line's execution
    overrides; model overrides refused), checkpoint, data, and model with the checkpoint's weights in eval mode.
    `other_data`: a `dataset=` override loads that dataset instead (it must have the shape the model was made for)."""
    path = resolve_checkpoint(cfg.ckpt, default_name)
    state = load_checkpoint(path)
    cfg = located(merge_saved(state, cfg, overrides, purpose, other_data), state)
    same_table_or_refuse(cfg, state, path)
    validate(cfg)
    device = setup(cfg)
    data = load_data(cfg, device)
    model = build_model(cfg, data, device, fresh=False)
    trained_on = state["config"]["dataset"]["name"]
    try:
        load_weights(model, state, path)
    except UserError:
        if cfg.dataset.name == trained_on:
            raise
        raise UserError(
            f"dataset={cfg.dataset.name} holds {'x'.join(map(str, data.shape))} data, but the model in {path} "
            f"was trained on dataset={trained_on}, whose data has another shape. A model can score only "
            f"data of the shape it was made for."
        ) from None
    if cfg.dataset.name != trained_on:
        log.warning("scoring a model trained on dataset=%s on dataset=%s", trained_on, cfg.dataset.name)
    model.eval()
    set_threads(cfg, model, instantiate(cfg.objective), data, device, "evaluation")
    return cfg, {**state, "path": path}, data, model, device


def set_threads(cfg: DictConfig, model: VAE, objective, data: DataSplits, device: torch.device, stage: str) -> None:
    """torch's CPU threads for `stage` ("training": batches of trainer.batch_size; "evaluation": of
    trainer.eval_batch_size): trainer.num_threads, else threads.choose's pick for the work of one such batch. Also
    warns when the stage's precision is bf16 on a device that only emulates it (host/cpu_features.py)."""
    setting = "trainer.precision" if stage == "training" else "evaluation.precision"
    if OmegaConf.select(cfg, setting) == "bf16" and (warning := slow_bf16_warning(setting, device)):
        log.warning(warning)
    if line := precision_line(setting, OmegaConf.select(cfg, setting), device):
        log.info(line)
    rows = cfg.trainer.batch_size if stage == "training" else cfg.trainer.eval_batch_size

    def step_macs() -> float:
        x, y = data.train.floats(slice(0, rows)).to(device), data.train.y
        return threads.step_macs(model, objective, x, None if y is None else y[:rows].to(device))

    if line := threads.use_threads(cfg.trainer.num_threads, device, step_macs, stage):
        log.info(line, extra=FILE_ONLY)  # vae-run.log: the console keeps what a researcher reads during a run


def active_units_of(model: VAE, split, cfg: DictConfig) -> int:
    """Latent dimensions whose posterior mean varies over `split` (evaluation.active_threshold)."""
    mu = encode_split(model, split, cfg.trainer.eval_batch_size).mean
    return len(active_units(mu, cfg.evaluation.active_threshold)[1])


def make_logger(cfg: DictConfig, run_dir: Path, purge_step: int | None = None) -> RunLogger:
    """The run's logger (`logger=`, configs/logger/). `purge_step`: a resumed run's, whose events from this step on
    are dropped (and which has its hyper-parameters logged already); None: a new run, given them now."""
    logger = construct(cfg.logger, run_dir=run_dir, purge_step=purge_step)
    if purge_step is None:
        logger.hparams(hparams_of(cfg))
    return logger


def make_trainer(cfg: DictConfig, run_dir: Path, purge_step: int | None = None, fresh: bool = True) -> Trainer:
    """Device, data, model, objective, optimizer and logger for `cfg`, ready to `fit()` (also what
    benchmarks/bench.py times); `fresh=False`: a resumed run's, whose checkpoint replaces the model's weights."""
    device = setup(cfg)
    data = load_data(cfg, device)
    model = build_model(cfg, data, device, fresh)
    if cfg.trainer.compile:
        compile_networks(model)
    optimizer = construct(cfg.optimizer)(
        parameter_groups(model, cfg.objective.get("critic_lr"))
    )  # _partial_: class, settings
    config = config_record(cfg)
    logger = make_logger(cfg, run_dir, purge_step)
    objective = instantiate(cfg.objective)
    objective.dataset_size = len(data.train)  # for tc_estimator=mss
    set_threads(cfg, model, objective, data, device, "training")
    return Trainer(
        model,
        objective,
        optimizer,
        data,
        cfg.trainer,
        logger,
        run_dir,
        config,
        validation=validation(model, objective, data, cfg),
        pictures=None  # evaluation.lean: a fit inside a pipeline draws nothing
        if cfg.evaluation.lean
        else lambda step: log_pictures(model, data, logger, logger.n_images, step, cfg.seed),
    )


def validation(model, objective, data: DataSplits, cfg: DictConfig):
    """The trainer's validation: the validation split's objective terms and active units, and with
    trainer.monitor=imputation the held-out entries' log-likelihood (`imputation_ll`) it selects by."""
    held = None
    if cfg.trainer.monitor == "imputation":
        from vae_runner.imputation.held_out import held_out_log_likelihood, held_out_mask

        held = held_out_mask(data.val.x, cfg.seed)

    def validate() -> dict[str, float]:
        metrics = {
            **evaluate_split(model, objective, data.val, cfg.trainer.eval_batch_size, cfg.seed),
            "active_units": active_units_of(model, data.val, cfg),
        }
        if held is not None:
            metrics["imputation_ll"] = held_out_log_likelihood(model, data.val, held, cfg.seed)
        return metrics

    return validate
