"""Typed config schemas, registered in Hydra's ConfigStore, and the value checks run before any data is read.

Each config group folder under `configs/` names its schema in its defaults list
(`- /schema/dataset/torchvision@_here_`), so `beta=abc` or `dataset.val_size=x` fails when Hydra composes the
config, and `validate(cfg)` rejects well-typed but meaningless values (beta < 0, latent_dim < 1, ...) with one
message that names the override to fix.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import II, MISSING, DictConfig, OmegaConf

from vae_runner.errors import UserError


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
            cs.store(group=f"schema/{group}", name=name, node=node)


# ---------------------------------------------------------------------------------------- value checks
def _finite_nonneg(v) -> bool:
    return math.isfinite(v) and v >= 0


def _finite_pos(v) -> bool:
    return math.isfinite(v) and v > 0


def _pos_int(v) -> bool:
    return v >= 1


def _opt_pos_int(v) -> bool:
    return v is None or v >= 1


def _fraction(v) -> bool:
    return math.isfinite(v) and 0 < v < 1


def _precision(v) -> bool:
    return v in ("fp32", "bf16")  # the names of vae_runner.model.vae.PRECISIONS (kept torch-free here)


# Upper bounds on sizes, so that a typo (latent_dim=1000000) is a message, not an out-of-memory crash.
MAX_WIDTH = 65536
MAX_COMPONENTS = 100000


def _width(v) -> bool:
    return 1 <= v <= MAX_WIDTH


def _width_list(v) -> bool:
    return len(v) > 0 and all(1 <= int(x) <= MAX_WIDTH for x in v)


# (config path, predicate, what a valid value is). Paths absent from a config (another option) are skipped.
CHECKS: list[tuple[str, Callable[[Any], bool], str]] = [
    ("beta", _finite_nonneg, "a finite number >= 0"),
    ("latent_dim", lambda v: 1 <= v <= MAX_WIDTH, f"an integer in [1, {MAX_WIDTH}]"),
    ("seed", lambda v: 0 <= v < 2**63, "an integer in [0, 2^63)"),
    ("trainer.epochs", _pos_int, "an integer >= 1"),
    ("trainer.batch_size", _pos_int, "an integer >= 1"),
    ("trainer.eval_batch_size", _pos_int, "an integer >= 1"),
    ("trainer.lr", _finite_pos, "a finite number > 0"),
    ("optimizer.norm_eps", _finite_pos, "a finite number > 0"),
    ("trainer.eval_every", _pos_int, "an integer >= 1"),
    ("trainer.log_every", _pos_int, "an integer >= 1"),
    ("trainer.limit_batches", _opt_pos_int, "null or an integer >= 1"),
    ("trainer.num_threads", _opt_pos_int, "null or an integer >= 1"),
    ("trainer.early_stopping", _opt_pos_int, "null or an integer >= 1"),
    ("trainer.grad_clip", lambda v: v is None or _finite_pos(v), "null or a finite number > 0"),
    ("logger.n_images", _pos_int, "an integer >= 1"),
    ("evaluation.iw_samples", lambda v: 1 <= v <= 10**6, "an integer in [1, 10^6]"),
    ("evaluation.chunk_rows", _pos_int, "an integer >= 1"),
    ("trainer.precision", _precision, "fp32 or bf16"),
    ("evaluation.precision", _precision, "fp32 or bf16"),
    ("evaluation.test_limit", _opt_pos_int, "null or an integer >= 1"),
    ("evaluation.active_threshold", _finite_nonneg, "a finite number >= 0"),
    ("evaluation.kl_samples", _pos_int, "an integer >= 1"),
    ("evaluation.surgery_points", lambda v: v >= 2, "an integer >= 2"),
    ("evaluation.surgery_samples", _pos_int, "an integer >= 1"),
    ("evaluation.probe_train_points", lambda v: v >= 2, "an integer >= 2"),
    ("evaluation.triplets", _pos_int, "an integer >= 1"),
    ("evaluation.traversal_dims", _pos_int, "an integer >= 1"),
    ("evaluation.traversal_steps", lambda v: v >= 2, "an integer >= 2"),
    ("evaluation.interpolations", _pos_int, "an integer >= 1"),
    ("evaluation.interpolation_steps", lambda v: v >= 2, "an integer >= 2"),
    ("dataset.val_fraction", _fraction, "a number strictly between 0 and 1"),
    ("dataset.test_fraction", _fraction, "a number strictly between 0 and 1"),
    ("dataset.val_size", _pos_int, "an integer >= 1"),
    (
        "dataset.image_size",
        lambda v: len(v) in (1, 2) and all(1 <= int(x) <= 4096 for x in v),
        "[size] or [height, width], each in [1, 4096]",
    ),
    ("dataset.channels", lambda v: v in (1, 3), "1 or 3"),
    ("dataset.n_modes", lambda v: 1 <= v <= 10000, "an integer in [1, 10000]"),
    ("dataset.std", _finite_pos, "a finite number > 0"),
    ("dataset.radius", _finite_pos, "a finite number > 0"),
    ("dataset.shape", lambda v: v in ("ring", "grid"), "ring or grid"),
    ("dataset.n_train", lambda v: 1 <= v <= 10**7, "an integer in [1, 10^7]"),
    ("dataset.n_val", lambda v: 1 <= v <= 10**7, "an integer in [1, 10^7]"),
    ("dataset.n_test", lambda v: 1 <= v <= 10**7, "an integer in [1, 10^7]"),
    ("architecture.hidden", _width_list, f"a non-empty list of integers in [1, {MAX_WIDTH}]"),
    (
        "architecture.logvar_clamp",
        lambda v: v is None or (len(v) == 2 and all(map(math.isfinite, v)) and v[0] < v[1]),
        "null or [low, high] with low < high, e.g. [-6, 2]",
    ),
    ("architecture.init", lambda v: v in ("he", "torch"), "he or torch"),
    ("architecture.base_channels", _width, f"an integer in [1, {MAX_WIDTH}]"),
    ("architecture.max_channels", _width, f"an integer in [1, {MAX_WIDTH}]"),
    ("architecture.fc_hidden", _width, f"an integer in [1, {MAX_WIDTH}]"),
    ("prior.n_components", lambda v: 1 <= v <= MAX_COMPONENTS, f"an integer in [1, {MAX_COMPONENTS}]"),
    ("prior.init_spread", _finite_nonneg, "a finite number >= 0"),
    ("prior.init_logvar", math.isfinite, "a finite number"),
    ("prior.init", lambda v: v in ("data", "noise", "reference"), "data, noise or reference"),
    ("prior.init_mean", math.isfinite, "a finite number"),
    ("prior.init_std", _finite_nonneg, "a finite number >= 0"),
    ("prior.grid_dim", lambda v: v in (1, 2), "1 or 2"),
    ("prior.grid_size", lambda v: 1 <= v <= 1000, "an integer in [1, 1000]"),
    ("prior.hidden", _width_list, f"a non-empty list of integers in [1, {MAX_WIDTH}]"),
    ("prior.depth", lambda v: 1 <= v <= 64, "an integer in [1, 64]"),
    ("prior.width", _width, f"an integer in [1, {MAX_WIDTH}]"),
    ("objective.k", lambda v: 1 <= v <= 5000, "an integer in [1, 5000]"),
    ("objective.warmup_epochs", _finite_nonneg, "a finite number >= 0"),
    ("objective.warmup_steps", lambda v: v >= 0, "an integer >= 0"),
    ("objective.warmup_start", _finite_nonneg, "a finite number >= 0"),
    ("objective.free_bits", _finite_nonneg, "a finite number >= 0"),
    ("objective.triplet_weight", _finite_nonneg, "a finite number >= 0"),
    ("objective.triplet_margin", _finite_nonneg, "a finite number >= 0"),
    ("likelihood.sigma", _finite_pos, "a finite number > 0"),
    ("likelihood.prob_clamp", lambda v: v is None or 0 < v < 0.5, "null or a number in (0, 0.5)"),
    ("likelihood.init_sigma", _finite_pos, "a finite number > 0"),
    ("likelihood.min_sigma", _finite_pos, "a finite number > 0"),
]


# Every component built with `_target_`; each must be importable before any data is read.
TARGETS = ("dataset", "architecture.encoder", "architecture.decoder", "prior", "likelihood", "objective", "optimizer")


def importable(path: str) -> bool:
    """Whether `pkg.module.Name` names an importable object (what instantiate will look up)."""
    parts = path.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for name in parts[i:]:
                obj = getattr(obj, name)
        except AttributeError:
            return False
        return True
    return False


def validate(cfg: DictConfig) -> None:
    """Reject meaningless values before any data is read; one message lists every problem."""
    problems = []
    for path in TARGETS:
        target = OmegaConf.select(cfg, f"{path}._target_", default=None)
        if isinstance(target, str) and not importable(target):
            problems.append(
                f"{path}._target_={target!r} (cannot be imported: use one of the {path.split('.')[0]}= "
                f"options or the import path of your own class, on PYTHONPATH)"
            )
    for path, ok, want in CHECKS:
        node = OmegaConf.select(cfg, path, default="__absent__")
        if isinstance(node, str) and node == "__absent__":
            continue
        value = OmegaConf.to_object(node) if OmegaConf.is_config(node) else node
        try:
            good = ok(value)
        except (TypeError, ValueError):
            good = False
        if not good:
            problems.append(f"{path}={value!r} (must be {want})")
    mode = OmegaConf.select(cfg, "mode")
    if mode == Mode.eval and not cfg.get("ckpt"):
        problems.append("mode=eval needs a checkpoint: add ckpt=<run dir>/checkpoints/best.pt")
    if OmegaConf.select(cfg, "objective.warmup_epochs", default=0) and OmegaConf.select(
        cfg, "objective.warmup_steps", default=0
    ):
        problems.append("objective.warmup_epochs and objective.warmup_steps are both set: use one of them")
    if OmegaConf.select(cfg, "objective.warmup_per_epoch", default=False) and not OmegaConf.select(
        cfg, "objective.warmup_epochs", default=0
    ):
        problems.append("objective.warmup_per_epoch=true needs objective.warmup_epochs > 0")
    if cfg.get("ckpt") and cfg.get("resume"):
        problems.append("give either ckpt= (mode=eval) or resume= (continue training), not both")
    if problems:
        raise UserError("Invalid configuration: " + "; ".join(problems) + ". Fix these overrides and run again.")
