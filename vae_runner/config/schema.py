"""The typed schema of the whole config (`VAEConfig`: the trainer and evaluation settings and the top-level
keys; the groups' options are in groups.py), and `register_configs`, which puts every schema in Hydra's ConfigStore.
Types only: every value is written once, in the yaml (configs/train.yaml and the group folders). Value checks
(beta >= 0, ...) live in checks.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from vae_runner.config.groups import SCHEMAS


class Mode(Enum):
    train = "train"
    eval = "eval"
    sample = "sample"
    impute = "impute"


class Device(Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


# ------------------------------------------------------------------------------------- trainer / logger
@dataclass
class TrainerConfig:
    epochs: int = MISSING
    batch_size: int = MISSING
    eval_batch_size: int = MISSING
    lr: float = MISSING
    eval_every: int = MISSING  # validate (and keep a better model for best.pt) every N epochs
    checkpoint_every_s: float = MISSING  # seconds of training between checkpoints (0: every epoch)
    log_every: int = MISSING  # steps between host syncs for the running train metrics
    limit_batches: Optional[int] = MISSING  # cap on training steps per epoch (smoke tests, debugging)
    early_stopping: Optional[int] = MISSING  # stop after this many epochs without a better validation ELBO, counted
    # from the first epoch trained at the full KL weight (from the start without warm-up)
    monitor: str = MISSING  # elbo | imputation: the validation score that picks best.pt and drives early stopping
    bootstrap: bool = MISSING  # train on a resample with replacement of the training rows, drawn from seed
    grad_clip: Optional[float] = MISSING  # clip the gradient's global norm to this
    device: Device = MISSING
    num_threads: Optional[int] = MISSING  # torch intra-op threads; null keeps torch's default
    precision: str = MISSING  # fp32 | bf16 | auto: the encoder's and decoder's matrix products under bf16 autocast
    compile: bool = MISSING  # torch.compile the encoder and decoder (falls back to eager, with a message)
    flush_denormal: bool = MISSING  # CPU: flush float32 subnormals to zero (a slow path on some CPUs)


@dataclass
class DisentanglementConfig:
    points: int = MISSING  # training points whose codes fit SAP's and DCI's classifiers (half as many test points)
    bins: int = MISSING  # MIG: equal-width bins per code dimension
    trees: int = MISSING  # DCI: trees of each factor's random forest
    votes: int = MISSING  # BetaVAE / FactorVAE: training points (half as many again to score)
    batch: int = MISSING  # examples per BetaVAE pair batch and per FactorVAE vote
    seed: int = MISSING


@dataclass
class ImputationConfig:
    samples: int = MISSING  # K proposals z ~ q(z | x_obs) per row, importance-weighted
    draws: int = MISSING  # M multiple imputations per row, resampled from the K by their weights
    level: float = MISSING  # the central interval whose coverage is reported
    baseline_draws: int = MISSING  # MICE's multiple imputations (its posterior draws)
    baselines: list[str] = MISSING  # which of mean, knn, mice, mice_norm, missforest impute the same masks
    proper: bool = MISSING  # each imputation under its own posterior draw of the likelihood's parameters
    rows: Optional[int] = MISSING  # the first N test rows (None: all)
    table: Optional[str] = MISSING  # mode=impute: the file to fill (None: the run's own table)
    probabilities: bool = MISSING  # mode=impute: imputed.csv's binary cells as probabilities, not 0/1
    fill: bool = MISSING  # mode=train on a table file: also fill its missing cells into the run directory


@dataclass
class EvaluationConfig:
    iw_samples: int = MISSING  # K for the importance-sampled test log-likelihood (papers: 5000)
    chunk_rows: int = MISSING  # memory bound: (image, sample) rows per decoder forward
    precision: str = MISSING  # fp32 | bf16 | auto (the decoder's matrix products in bfloat16, for speed)
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
    lean: bool = MISSING  # the ELBO and imputation scores only: no log-likelihood, latent diagnostics or pictures
    disentanglement: DisentanglementConfig = field(default_factory=DisentanglementConfig)
    imputation: ImputationConfig = field(default_factory=ImputationConfig)


@dataclass
@dataclass
class MissingConfig:
    kind: str = MISSING  # none | mcar | mar | mnar_logistic | self_masking | mnar
    rate: float = MISSING
    inputs: float = MISSING  # mar, mnar_logistic: the share of the variables the missingness depends on
    seed: Optional[int] = MISSING  # null: the run's seed


@dataclass
class ModalitiesConfig:
    use: list[str] = MISSING  # image, then any of label, attributes
    hidden: list[int] = MISSING
    dropout: float = MISSING
    missing: float = MISSING
    joint: str = MISSING  # poe | moe | mopoe
    subset_prior: str = MISSING  # mopoe: every | full


@dataclass
class VAEConfig:
    dataset: Any = MISSING
    architecture: Any = MISSING
    posterior: Any = MISSING
    prior: Any = MISSING
    likelihood: Any = MISSING
    objective: Any = MISSING
    optimizer: Any = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    logger: Any = MISSING
    missing: MissingConfig = field(default_factory=MissingConfig)
    modalities: ModalitiesConfig = field(default_factory=ModalitiesConfig)
    beta: float = MISSING
    latent_dim: int = MISSING
    seed: int = MISSING
    mode: Mode = MISSING
    optimized_metric: str = MISSING  # what the task returns to Hydra sweepers (Optuna)
    ckpt: Optional[str] = MISSING  # mode=eval / sample / impute: the checkpoint to use
    n: int = MISSING  # mode=sample: how many images
    resume: Optional[str] = MISSING  # a run directory or checkpoint to continue


def register_configs() -> None:
    """Put the schemas in Hydra's ConfigStore (idempotent)."""
    cs = ConfigStore.instance()
    cs.store(name="vae_schema", node=VAEConfig)
    for group, schemas in SCHEMAS.items():
        for name, node in schemas.items():
            cs.store(name=f"schema_{group}_{name}", node=node)  # root level: not listed as groups by --help
