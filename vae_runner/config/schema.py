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
    binarize: Binarize = Binarize.auto


@dataclass
class DigitsConfig(DatasetConfig):
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    split_seed: int = 0


@dataclass
class TorchvisionConfig(DatasetConfig):
    root: str = "~/.cache/vae-runner/data"
    download: bool = False
    val_size: int = 10000
    split_seed: Optional[int] = 0  # null: validation = the training file's last val_size images (reference code)
    # Extra folders searched for the raw IDX .gz files when `root` has none (Debian's dataset packages).
    system_dirs: List[str] = field(default_factory=list)


@dataclass
class ImageFolderConfig(DatasetConfig):
    root: str = MISSING
    image_size: List[int] = field(default_factory=lambda: [64, 64])
    channels: int = 3
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    split_seed: int = 0


@dataclass
class SyntheticConfig(DatasetConfig):
    shape: str = "ring"  # ring | grid
    n_modes: int = 8
    radius: float = 2.0
    std: float = 0.1
    n_train: int = 8000
    n_val: int = 1000
    n_test: int = 1000
    seed: int = 0


# ------------------------------------------------------------------------------------------ architecture
@dataclass
class MLPArchConfig:
    hidden: List[int] = field(default_factory=lambda: [512, 256])
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
    base_channels: int = 32
    max_channels: int = 256
    fc_hidden: int = 256
    encoder: Any = MISSING
    decoder: Any = MISSING


# --------------------------------------------------------------------------------- prior / likelihood
@dataclass
class PriorConfig:
    _target_: str = MISSING


@dataclass
class MoGPriorConfig(PriorConfig):
    n_components: int = 10
    init_spread: float = 1.0
    init_logvar: float = 0.0


@dataclass
class VampPriorConfig(PriorConfig):
    n_components: int = 500
    init: str = "data"  # data (random training images) | noise | reference
    init_mean: float = MISSING  # init=reference: raw pseudo-pixels ~ N(init_mean, init_std), clipped to [0, 1] ...
    init_std: float = MISSING  # ... (defaults in configs/prior/vamp.yaml)


@dataclass
class GTMVampPriorConfig(PriorConfig):
    grid_dim: int = 2
    grid_size: int = 10
    hidden: List[int] = field(default_factory=lambda: [64])


@dataclass
class GTMPriorConfig(GTMVampPriorConfig):  # the same grid and network, plus the components' variances
    init_logvar: float = -1.0


@dataclass
class FlowPriorConfig(PriorConfig):
    depth: int = 4
    width: int = 64


@dataclass
class LikelihoodConfig:
    _target_: str = MISSING


@dataclass
class BernoulliLikelihoodConfig(LikelihoodConfig):  # types only: the default lives in likelihood/bernoulli.yaml
    prob_clamp: Optional[float] = MISSING


@dataclass
class MSELikelihoodConfig(LikelihoodConfig):
    sigma: float = 0.1


@dataclass
class GaussianLikelihoodConfig(LikelihoodConfig):
    init_sigma: float = 0.1
    min_sigma: float = 1e-3


@dataclass
class ObjectiveConfig:
    _target_: str = MISSING
    beta: float = II("beta")
    k: int = 1  # importance samples: 1 = the ELBO, > 1 = the IWAE bound
    warmup_epochs: float = 0.0  # KL weight ramps from warmup_start to beta over this many epochs ...
    warmup_steps: int = 0  # ... or steps (not both)
    warmup_start: float = 0.0
    # The two below have their defaults in configs/objective/*.yaml only.
    warmup_per_epoch: bool = MISSING  # the weight constant within an epoch: e / warmup_epochs in epoch e
    analytic_kl: bool = MISSING  # the prior's closed-form KL where it has one; false: log q(z|x) - log p(z) at z
    free_bits: float = 0.0  # per-dimension KL floor lambda, nats
    triplet_weight: float = 0.0  # TVAE triplet loss weight (labelled data)
    triplet_margin: float = 1.0


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
    epochs: int = 100
    batch_size: int = 128
    eval_batch_size: int = 1000
    lr: float = 1e-3
    eval_every: int = 1  # validate (and write images, best.pt) every N epochs
    log_every: int = 50  # steps between host syncs for the running train metrics
    limit_batches: Optional[int] = None  # cap on training steps per epoch (smoke tests, debugging)
    early_stopping: Optional[int] = None  # stop after this many epochs without a better validation ELBO, counted
    # from the first epoch trained at the full KL weight (from the start without warm-up)
    grad_clip: Optional[float] = None  # clip the gradient's global norm to this
    device: Device = Device.auto
    num_threads: Optional[int] = None  # torch intra-op threads; null keeps torch's default
    precision: str = "fp32"  # fp32 | bf16: the encoder's and decoder's matrix products under bf16 autocast
    compile: bool = False  # torch.compile the encoder and decoder (falls back to eager, with a message)
    flush_denormal: bool = True  # CPU: flush float32 subnormals to zero (where they take a slow path, they slow steps)


@dataclass
class EvaluationConfig:
    iw_samples: int = 1000  # K for the importance-sampled test log-likelihood (papers: 5000)
    chunk_rows: int = 10000  # memory bound: (image, sample) rows per decoder forward
    precision: str = "fp32"  # fp32 | bf16 (the decoder's matrix products in bfloat16, for speed)
    test_limit: Optional[int] = None  # log-likelihood on the first N test images only (null: all)
    active_threshold: float = 0.01  # active unit: Cov_x(E_q[z_d]) above this
    kl_samples: int = 16  # Monte-Carlo draws per example for the KL per dimension
    surgery_points: int = 1000  # M held-out test points whose posteriors form the aggregate q(z)
    surgery_samples: int = 8  # draws per point for the ELBO-surgery estimates
    probe_train_points: int = 10000  # training examples for the linear probe
    triplets: int = 10000  # fixed random test triplets
    traversal_dims: int = 10
    traversal_steps: int = 9
    interpolations: int = 8
    interpolation_steps: int = 10


@dataclass
class LoggerConfig:
    tensorboard: bool = True
    n_images: int = 64  # samples / reconstructions per picture
    progress_bar: bool = True


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
    beta: float = 1.0
    latent_dim: int = 16
    seed: int = 0
    mode: Mode = Mode.train
    optimized_metric: str = "val/elbo"  # what the task returns to Hydra sweepers (Optuna)
    ckpt: Optional[str] = None  # mode=eval: the checkpoint to evaluate
    resume: Optional[str] = None  # a run directory or checkpoint to continue


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
