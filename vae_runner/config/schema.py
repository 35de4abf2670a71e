"""Typed config schemas, registered in Hydra's ConfigStore: one dataclass per config group option.

Each option file under `configs/` names its schema in its defaults list (`- /schema_dataset_torchvision@_here_`), so
`beta=abc` or `dataset.val_size=x` fails when Hydra composes the config. Value checks (beta >= 0, ...) live in
`checks.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import II, MISSING


class Mode(Enum):
    train = "train"
    eval = "eval"


class Device(Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


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


# ------------------------------------------------------------------------------------- trainer / logger
@dataclass
class TrainerConfig:
    epochs: int = MISSING
    batch_size: int = MISSING
    eval_batch_size: int = MISSING
    lr: float = MISSING
    eval_every: int = MISSING  # validate (and write images, best.pt) every N epochs
    log_every: int = MISSING  # steps between host syncs for the running train metrics
    limit_batches: Optional[int] = MISSING  # cap on training steps per epoch (smoke tests, debugging)
    early_stopping: Optional[int] = MISSING  # stop after this many epochs without a better validation ELBO, counted
    # from the first epoch trained at the full KL weight (from the start without warm-up)
    grad_clip: Optional[float] = MISSING  # clip the gradient's global norm to this
    device: Device = MISSING
    num_threads: Optional[int] = MISSING  # torch intra-op threads; null keeps torch's default
    precision: str = MISSING  # fp32 | bf16: the encoder's and decoder's matrix products under bf16 autocast
    compile: bool = MISSING  # torch.compile the encoder and decoder (falls back to eager, with a message)
    flush_denormal: bool = MISSING  # CPU: flush float32 subnormals to zero (a slow path on some CPUs)


@dataclass
class EvaluationConfig:
    iw_samples: int = MISSING  # K for the importance-sampled test log-likelihood (papers: 5000)
    chunk_rows: int = MISSING  # memory bound: (image, sample) rows per decoder forward
    precision: str = MISSING  # fp32 | bf16 (the decoder's matrix products in bfloat16, for speed)
    test_limit: Optional[int] = MISSING  # log-likelihood on the first N test images only (null: all)
    active_threshold: float = MISSING  # active unit: Cov_x(E_q[z_d]) above this
    kl_samples: int = MISSING  # Monte-Carlo draws per example for the KL per dimension
    surgery_points: int = MISSING  # M held-out test points whose posteriors form the aggregate q(z)
    surgery_samples: int = MISSING  # draws per point for the ELBO-surgery estimates
    probe_train_points: int = MISSING  # training examples for the linear probe
    triplets: int = MISSING  # fixed random test triplets
    traversal_dims: int = MISSING
    traversal_steps: int = MISSING
    interpolations: int = MISSING
    interpolation_steps: int = MISSING


@dataclass
class LoggerConfig:
    tensorboard: bool = MISSING
    n_images: int = MISSING  # samples / reconstructions per picture
    progress_bar: bool = MISSING


@dataclass
class VAEConfig:
    dataset: Any = MISSING
    architecture: Any = MISSING
    prior: Any = MISSING
    likelihood: Any = MISSING
    objective: Any = MISSING
    optimizer: Any = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    beta: float = MISSING
    latent_dim: int = MISSING
    seed: int = MISSING
    mode: Mode = MISSING
    optimized_metric: str = MISSING  # what the task returns to Hydra sweepers (Optuna)
    ckpt: Optional[str] = MISSING  # mode=eval: the checkpoint to evaluate
    resume: Optional[str] = MISSING  # a run directory or checkpoint to continue


SCHEMAS = {
    "dataset": {
        "digits": DigitsConfig,
        "torchvision": TorchvisionConfig,
        "image_folder": ImageFolderConfig,
        "synthetic": SyntheticConfig,
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


def register_configs() -> None:
    """Put the schemas in Hydra's ConfigStore (idempotent)."""
    cs = ConfigStore.instance()
    cs.store(name="vae_schema", node=VAEConfig)
    for group, schemas in SCHEMAS.items():
        for name, node in schemas.items():
            cs.store(name=f"schema_{group}_{name}", node=node)  # root level: not listed as groups by --help
