"""Typed schemas of the config groups' options (dataset, architecture, prior, likelihood, objective, optimizer): one
dataclass per option, types only (each value is written once, in the option's yaml). An option's yaml names its
schema in its defaults list (`- /schema_prior_mog@_here_`), so `prior.n_components=abc` fails at compose time.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, List, Optional

from omegaconf import II, MISSING


class Binarize(Enum):
    auto = "auto"  # dynamic for a Bernoulli likelihood, none otherwise
    none = "none"
    static = "static"
    dynamic = "dynamic"


# ----------------------------------------------------------------------------------------------- dataset
@dataclass
class DatasetConfig:
    _target_: str = MISSING
    name: str = MISSING
    binarize: Binarize = MISSING


@dataclass
class DigitsConfig(DatasetConfig):
    val_fraction: float = MISSING
    test_fraction: float = MISSING
    split_seed: int = MISSING


@dataclass
class TorchvisionConfig(DatasetConfig):
    root: str = MISSING
    download: bool = MISSING
    val_size: int = MISSING
    split_seed: Optional[int] = MISSING  # null: validation = the training file's last val_size images (reference code)
    # Extra folders searched for the raw IDX .gz files when `root` has none (Debian's dataset packages).
    system_dirs: List[str] = MISSING


@dataclass
class ImageFolderConfig(DatasetConfig):
    root: str = MISSING
    image_size: List[int] = MISSING
    channels: int = MISSING
    val_fraction: float = MISSING
    test_fraction: float = MISSING
    split_seed: int = MISSING


@dataclass
class SyntheticConfig(DatasetConfig):
    shape: str = MISSING  # ring | grid
    n_modes: int = MISSING
    radius: float = MISSING
    std: float = MISSING
    n_train: int = MISSING
    n_val: int = MISSING
    n_test: int = MISSING
    seed: int = MISSING


@dataclass
class FactorGridConfig(DatasetConfig):  # shapes3d; a seeded sample of a factor grid, rendered or read from `root`
    n_train: Optional[int] = MISSING  # null: all images not in val/test
    n_val: int = MISSING
    n_test: int = MISSING
    split_seed: int = MISSING
    root: Optional[str] = MISSING


@dataclass
class DSpritesConfig(FactorGridConfig):
    cache: Optional[str] = MISSING


@dataclass
class FactorSquaresConfig(DatasetConfig):
    side: int = MISSING
    square: int = MISSING
    n_val: int = MISSING
    n_test: int = MISSING
    split_seed: int = MISSING


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


# --------------------------------------------------------------------------------- prior / likelihood
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


SCHEMAS = {
    "dataset": {
        "digits": DigitsConfig,
        "torchvision": TorchvisionConfig,
        "image_folder": ImageFolderConfig,
        "synthetic": SyntheticConfig,
        "dsprites": DSpritesConfig,
        "factor_squares": FactorSquaresConfig,
        "shapes3d": FactorGridConfig,
    },
    "architecture": {"mlp": MLPArchConfig, "gated_mlp": GatedMLPArchConfig, "conv": ConvArchConfig},
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
    },
    "objective": {"objective": ObjectiveConfig},
    "optimizer": {"optimizer": OptimizerConfig, "adam": AdamConfig, "adam_normgrad": AdamNormGradConfig},
}
