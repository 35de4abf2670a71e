"""Typed schemas of the config groups' options (architecture, posterior, prior, likelihood, objective, optimizer,
logger; the datasets' are in config/datasets.py): one dataclass per option, types only (each value is written once,
in the option's yaml).
An option's yaml names its schema in its defaults list (`- /schema_prior_mog@_here_`), so `prior.n_components=abc`
fails at compose time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional

from omegaconf import II, MISSING

from vae_runner.config.datasets import DATASET_SCHEMAS


# ------------------------------------------------------------------------------------------ architecture
@dataclass
class MLPArchConfig:
    hidden: List[int] = MISSING
    encoder: Any = MISSING
    decoder: Any = MISSING


@dataclass
class GatedMLPArchConfig:  # types only: the defaults live in configs/architecture/gated_mlp.yaml
    hidden: List[int] = MISSING
    logvar_clamp: Optional[List[float]] = MISSING
    init: str = MISSING
    encoder: Any = MISSING
    decoder: Any = MISSING


@dataclass
class ConvArchConfig:
    base_channels: int = MISSING
    max_channels: int = MISSING
    fc_hidden: int = MISSING
    encoder: Any = MISSING
    decoder: Any = MISSING


# --------------------------------------------------------------------------------- posterior / prior / likelihood
@dataclass
class PosteriorConfig:
    _target_: str = MISSING


@dataclass
class LowRankPosteriorConfig(PosteriorConfig):
    rank: int = MISSING


@dataclass
class MixturePosteriorConfig(PosteriorConfig):
    n_components: int = MISSING


@dataclass
class IAFPosteriorConfig(PosteriorConfig):
    depth: int = MISSING
    hidden: int = MISSING
    context: int = MISSING


@dataclass
class PriorConfig:
    _target_: str = MISSING


@dataclass
class MoGPriorConfig(PriorConfig):
    n_components: int = MISSING
    init_spread: float = MISSING
    init_logvar: float = MISSING


@dataclass
class VampPriorConfig(PriorConfig):
    n_components: int = MISSING
    init: str = MISSING  # data (random training images) | noise | reference
    init_mean: float = MISSING  # init=reference: raw pseudo-pixels ~ N(init_mean, init_std), clipped to [0, 1] ...
    init_std: float = MISSING  # ... (defaults in configs/prior/vamp.yaml)


@dataclass
class GTMVampPriorConfig(PriorConfig):
    grid_dim: int = MISSING
    grid_size: int = MISSING
    hidden: List[int] = MISSING


@dataclass
class GTMPriorConfig(GTMVampPriorConfig):  # the same grid and network, plus the components' variances
    init_logvar: float = MISSING


@dataclass
class FlowPriorConfig(PriorConfig):
    depth: int = MISSING
    width: int = MISSING


@dataclass
class LikelihoodConfig:
    _target_: str = MISSING


@dataclass
class BernoulliLikelihoodConfig(LikelihoodConfig):  # types only: the default lives in likelihood/bernoulli.yaml
    prob_clamp: Optional[float] = MISSING


@dataclass
class MSELikelihoodConfig(LikelihoodConfig):
    sigma: float = MISSING


@dataclass
class GaussianLikelihoodConfig(LikelihoodConfig):
    init_sigma: float = MISSING
    min_sigma: float = MISSING


@dataclass
class CorrelatedGaussianLikelihoodConfig(GaussianLikelihoodConfig):
    rank: Optional[int] = MISSING  # V's columns in diag(sigma^2) + V V^T (null: all, a full covariance)
    start_correlation: Optional[float] = (
        MISSING  # Sigma starts with this fraction of the data's covariances (null: V = 0.01 I)
    )


@dataclass
class ObjectiveConfig:
    _target_: str = MISSING
    beta: float = II("beta")
    k: int = MISSING  # importance samples: 1 = the ELBO, > 1 = the IWAE bound
    warmup_epochs: float = MISSING  # KL weight ramps from warmup_start to beta over this many epochs ...
    warmup_steps: int = MISSING  # ... or steps (not both)
    warmup_start: float = MISSING
    # The two below have their defaults in configs/objective/*.yaml only.
    warmup_per_epoch: bool = MISSING  # the weight constant within an epoch: e / warmup_epochs in epoch e
    analytic_kl: bool = MISSING  # the prior's closed-form KL where it has one; false: log q(z|x) - log p(z) at z
    free_bits: float = MISSING  # per-dimension KL floor lambda, nats
    triplet_weight: float = MISSING  # TVAE triplet loss weight (labelled data)
    triplet_margin: float = MISSING
    tc_weight: float = MISSING  # beta-TCVAE's beta - 1
    tc_estimator: str = MISSING  # mws | mss
    dip: str = MISSING  # none | i | ii
    dip_lambda_od: float = MISSING
    dip_lambda_d: float = MISSING
    mmd_weight: float = MISSING
    factor_vae_weight: float = MISSING
    critic_hidden: List[int] = MISSING
    critic_lr: float = MISSING
    cycle_epochs: float = MISSING  # cyclical KL schedule: cycle length (0 = off)
    cycle_ratio: float = MISSING
    input_dropout: float = MISSING  # training: entries further hidden from the encoder (missing-data models)
    gradient: str = MISSING  # pathwise | dreg (doubly reparameterised, Tucker et al. 2019)
    stratified: bool = MISSING  # a mixture q: k draws per component, each component's bound by its weight (MMVAE)


@dataclass
class OptimizerConfig:  # types only: the defaults live in configs/optimizer/*.yaml
    _target_: str = MISSING
    _partial_: bool = True
    lr: float = MISSING


@dataclass
class AdamConfig(OptimizerConfig):
    fused: bool = MISSING


@dataclass
class AdamNormGradConfig(AdamConfig):
    norm_eps: float = MISSING


# ----------------------------------------------------------------------------------------------- logger
@dataclass
class LoggerConfig:  # every logger option's: what a run logs, whatever it logs to (loggers/base.py)
    _target_: str = MISSING
    n_images: int = MISSING  # samples / reconstructions per picture
    images_every: int = MISSING  # pictures at every N-th epoch's validation (and the last epoch's)
    progress_bar: bool = MISSING
    log_every_epochs: int = MISSING  # the console's validation line every N epochs (vae-run.log: every epoch)


@dataclass
class TensorBoardLoggerConfig(LoggerConfig):
    tensorboard: bool = MISSING  # write the event files (false: the PNG copies only)


@dataclass
class MLflowLoggerConfig(LoggerConfig):
    tracking_uri: Optional[str] = MISSING  # null: mlruns/ in the working directory (SQLite + artefacts)
    experiment: str = MISSING  # the MLflow experiment the run (a sweep's every member) is a run of


@dataclass
class ManyLoggersConfig(LoggerConfig):
    _recursive_: bool = MISSING  # false: ManyLoggers builds each of `loggers` itself
    loggers: Any = MISSING  # name -> a logger option's node (its _target_ and own keys)


SCHEMAS = {
    "dataset": DATASET_SCHEMAS,
    "architecture": {"mlp": MLPArchConfig, "gated_mlp": GatedMLPArchConfig, "conv": ConvArchConfig},
    "posterior": {
        "posterior": PosteriorConfig,
        "lowrank": LowRankPosteriorConfig,
        "mixture": MixturePosteriorConfig,
        "iaf": IAFPosteriorConfig,
    },
    "prior": {
        "prior": PriorConfig,
        "mog": MoGPriorConfig,
        "vamp": VampPriorConfig,
        "gtm": GTMPriorConfig,
        "gtm_vamp": GTMVampPriorConfig,
        "flow": FlowPriorConfig,
    },
    "likelihood": {
        "likelihood": LikelihoodConfig,
        "bernoulli": BernoulliLikelihoodConfig,
        "mse": MSELikelihoodConfig,
        "gaussian": GaussianLikelihoodConfig,
        "correlated_gaussian": CorrelatedGaussianLikelihoodConfig,
    },
    "objective": {"objective": ObjectiveConfig},
    "optimizer": {"optimizer": OptimizerConfig, "adam": AdamConfig, "adam_normgrad": AdamNormGradConfig},
    "logger": {
        "logger": LoggerConfig,
        "tensorboard": TensorBoardLoggerConfig,
        "mlflow": MLflowLoggerConfig,
        "many": ManyLoggersConfig,
    },
}
