"""The value checks run before any data is read: `validate(cfg)` rejects well-typed but meaningless values
(beta < 0, latent_dim < 1, an unimportable `_target_`, ...) with one message that names every override to fix.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from vae_runner.config.schema import Mode
from vae_runner.data.missingness import KINDS
from vae_runner.data.table_file import is_table_file
from vae_runner.errors import UserError


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
    return v in ("auto", "fp32", "bf16")  # auto and vae_runner.model.vae.PRECISIONS' names (kept torch-free here)


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
    ("n", lambda v: v >= 1, "an integer >= 1: the number of images mode=sample draws"),
    ("trainer.epochs", _pos_int, "an integer >= 1"),
    ("trainer.batch_size", _pos_int, "an integer >= 1"),
    ("trainer.eval_batch_size", _pos_int, "an integer >= 1"),
    ("trainer.lr", _finite_pos, "a finite number > 0"),
    ("optimizer.norm_eps", _finite_pos, "a finite number > 0"),
    ("trainer.eval_every", _pos_int, "an integer >= 1"),
    ("trainer.checkpoint_every_s", lambda v: math.isfinite(v) and v >= 0, "a number of seconds >= 0 (0: every epoch)"),
    ("trainer.log_every", _pos_int, "an integer >= 1"),
    ("trainer.limit_batches", _opt_pos_int, "null or an integer >= 1"),
    ("trainer.num_threads", _opt_pos_int, "null or an integer >= 1"),
    ("trainer.early_stopping", _opt_pos_int, "null or an integer >= 1"),
    ("trainer.monitor", lambda v: v in ("elbo", "iwae", "imputation"), "elbo, iwae or imputation"),
    ("trainer.grad_clip", lambda v: v is None or _finite_pos(v), "null or a finite number > 0"),
    ("logger.n_images", _pos_int, "an integer >= 1"),
    ("logger.images_every", _pos_int, "an integer >= 1 (epochs)"),
    ("logger.log_every_epochs", _pos_int, "an integer >= 1 (epochs)"),
    ("evaluation.iw_samples", lambda v: 1 <= v <= 10**6, "an integer in [1, 10^6]"),
    ("evaluation.chunk_rows", _pos_int, "an integer >= 1"),
    ("trainer.precision", _precision, "auto, fp32 or bf16"),
    ("evaluation.precision", _precision, "auto, fp32 or bf16"),
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
    ("missing.kind", lambda v: v in KINDS, ", ".join(KINDS)),
    ("missing.inputs", lambda v: 0 < v < 1, "a fraction in (0, 1): the share of the variables it depends on"),
    ("missing.rate", lambda v: math.isfinite(v) and 0 <= v < 1, "a fraction in [0, 1) (mnar: at most 0.5)"),
    (
        "modalities.use",
        lambda v: list(v)[:1] == ["image"] and set(v) <= {"image", "label", "attributes"} and len(set(v)) == len(v),
        "image first, then any of label, attributes, each once: e.g. [image,label]",
    ),
    ("modalities.hidden", _width_list, f"a non-empty list of integers in [1, {MAX_WIDTH}]"),
    ("modalities.dropout", lambda v: 0 <= v < 1, "a fraction in [0, 1)"),
    ("modalities.missing", lambda v: 0 <= v < 1, "a fraction in [0, 1)"),
    ("modalities.joint", lambda v: v in ("poe", "moe", "mopoe"), "poe, moe or mopoe"),
    ("modalities.subset_prior", lambda v: v in ("every", "full"), "every or full"),
    ("objective.gradient", lambda v: v in ("pathwise", "dreg"), "pathwise or dreg"),
    ("evaluation.imputation.samples", _pos_int, "an integer >= 1"),
    ("evaluation.imputation.draws", lambda v: v >= 2, "an integer >= 2"),
    ("evaluation.imputation.level", _fraction, "a number strictly between 0 and 1"),
    ("evaluation.imputation.baseline_draws", _pos_int, "an integer >= 1"),
    (
        "evaluation.imputation.baselines",
        lambda v: set(v) <= {"mean", "knn", "mice", "mice_norm", "missforest"} and len(set(v)) == len(v),
        "a list of mean, knn, mice, mice_norm, missforest, each at most once (e.g. [mean,knn]; [] for none)",
    ),
    ("evaluation.imputation.rows", _opt_pos_int, "null (every test row) or an integer >= 1"),
    (
        "dataset.table",
        lambda v: v in ("breast_cancer", "wine", "diabetes") or is_table_file(v),
        "breast_cancer, wine, diabetes or the path of a .csv (.tsv) file",
    ),
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
    ("dataset.n_train", lambda v: v is None or 1 <= v <= 10**7, "null or an integer in [1, 10^7]"),
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
    ("posterior.n_components", lambda v: 1 <= v <= 100, "an integer in [1, 100]"),
    ("posterior.rank", lambda v: 1 <= v <= MAX_WIDTH, f"an integer in [1, {MAX_WIDTH}]"),
    ("posterior.depth", lambda v: 1 <= v <= 64, "an integer in [1, 64]"),
    ("posterior.hidden", _width, f"an integer in [1, {MAX_WIDTH}]"),
    ("posterior.context", lambda v: 0 <= v <= MAX_WIDTH, f"an integer in [0, {MAX_WIDTH}]"),
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
    ("objective.tc_weight", _finite_nonneg, "a finite number >= 0 (beta-TCVAE's beta - 1)"),
    ("objective.tc_estimator", lambda v: v in ("mws", "mss"), "mws or mss"),
    ("objective.dip", lambda v: v in ("none", "i", "ii"), "none, i or ii"),
    ("objective.dip_lambda_od", _finite_nonneg, "a finite number >= 0"),
    ("objective.dip_lambda_d", _finite_nonneg, "a finite number >= 0"),
    ("objective.mmd_weight", _finite_nonneg, "a finite number >= 0"),
    ("objective.factor_vae_weight", _finite_nonneg, "a finite number >= 0"),
    ("objective.critic_hidden", _width_list, f"a non-empty list of integers in [1, {MAX_WIDTH}]"),
    ("objective.critic_lr", _finite_pos, "a finite number > 0"),
    ("objective.cycle_epochs", _finite_nonneg, "a finite number >= 0 (0: no cycles)"),
    ("objective.cycle_ratio", lambda v: 0 < v <= 1, "a number in (0, 1]"),
    ("objective.input_dropout", lambda v: 0 <= v < 1, "a fraction in [0, 1)"),
    ("likelihood.sigma", _finite_pos, "a finite number > 0"),
    ("likelihood.prob_clamp", lambda v: v is None or 0 < v < 0.5, "null or a number in (0, 0.5)"),
    ("likelihood.init_sigma", _finite_pos, "a finite number > 0"),
    ("likelihood.min_sigma", _finite_pos, "a finite number > 0"),
    ("likelihood.start_correlation", lambda v: v is None or 0 <= v <= 1, "null or a fraction in [0, 1]"),
]


# Every component built with `_target_`; each must be importable before any data is read.
TARGETS = (
    "dataset",
    "architecture.encoder",
    "architecture.decoder",
    "posterior",
    "prior",
    "likelihood",
    "objective",
    "optimizer",
)


def importable(path: str) -> bool:
    """Whether `pkg.module.Name` names an importable object (what instantiate will look up)."""
    return resolved(path) is not None


def resolved(path: str):
    """The object `pkg.module.Name` names, None where it cannot be imported."""
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
            return None
        return obj
    return None


def posterior_problems(cfg: DictConfig) -> list[str]:
    """What needs the diagonal Gaussian posterior (its per-dimension means and variances) today, and what the
    objective's gradient and stratification need of q."""
    target = str(OmegaConf.select(cfg, "posterior._target_", default=".GaussianPosterior"))
    name = target.rsplit(".", 1)[-1]
    get = lambda key, default: OmegaConf.select(cfg, key, default=default)  # noqa: E731
    needs = [
        (get("objective.tc_weight", 0), "objective.tc_weight > 0 (its estimator reads q's per-dimension Normals)"),
        (get("objective.dip", "none") != "none", "objective.dip (DIP-VAE reads q's means and variances)"),
        (list(get("modalities.use", ["image"])) != ["image"], "several modalities (modalities.joint is the posterior)"),
    ]
    gaussian = [] if name == "GaussianPosterior" else needs
    return [f"{what} needs posterior=gaussian, not posterior._target_={name}" for on, what in gaussian if on] + (
        objective_problems(name, get)
    )


def objective_problems(name: str, get) -> list[str]:
    """objective.stratified needs a mixture q and no per-draw penalty; objective.gradient=dreg no flow."""
    problems = []
    several = list(get("modalities.use", ["image"])) != ["image"]
    joint = get("modalities.joint", "poe")
    if get("objective.stratified", False):
        if not (joint in ("moe", "mopoe") if several else name == "MixturePosterior"):
            what = f"modalities.joint={joint}" if several else f"posterior._target_={name}"
            problems.append(
                f"objective.stratified=true draws from each component of a mixture posterior, and {what} is none "
                f"(use posterior=mixture, or modalities.joint=moe or mopoe with several modalities)"
            )
        if get("objective.free_bits", 0) or get("objective.mmd_weight", 0) or get("objective.factor_vae_weight", 0):
            problems.append(
                "objective.stratified=true with objective.free_bits, mmd_weight or factor_vae_weight (these read one "
                "draw from q per example; the stratified draws are one per component): set them to 0"
            )
    if get("trainer.monitor", "elbo") == "iwae" and get("objective.k", 1) < 2:
        problems.append(
            "trainer.monitor=iwae selects by the validation split's importance-weighted bound, which needs "
            "objective.k >= 2 (objective=iwae or objective=mmvae): set objective.k or trainer.monitor=elbo"
        )
    if get("objective.gradient", "pathwise") == "dreg" and name == "IAFPosterior":
        problems.append(
            "objective.gradient=dreg with posterior=iaf (DReG holds q's parameters fixed in log q(z|x) at q's own "
            "draws, which for the flow means inverting it at every step): use gradient=pathwise"
        )
    return problems


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
    if mode in (Mode.eval, Mode.sample, Mode.impute) and not cfg.get("ckpt"):
        problems.append(f"mode={mode.value} needs a checkpoint: add ckpt=<run dir> (its best.pt) or ckpt=<file.pt>")
    if OmegaConf.select(cfg, "objective.warmup_epochs", default=0) and OmegaConf.select(
        cfg, "objective.warmup_steps", default=0
    ):
        problems.append("objective.warmup_epochs and objective.warmup_steps are both set: use one of them")
    if OmegaConf.select(cfg, "objective.warmup_per_epoch", default=False) and not OmegaConf.select(
        cfg, "objective.warmup_epochs", default=0
    ):
        problems.append("objective.warmup_per_epoch=true needs objective.warmup_epochs > 0")
    if OmegaConf.select(cfg, "missing.kind") == "mnar" and OmegaConf.select(cfg, "missing.rate") > 0.5:
        problems.append("missing.kind=mnar hides about rate of each column's largest half: missing.rate <= 0.5")
    likelihood = OmegaConf.select(cfg, "likelihood._target_", default=None)
    if OmegaConf.select(cfg, "evaluation.imputation.proper", default=False) and isinstance(likelihood, str):
        if importable(likelihood) and not hasattr(resolved(likelihood), "parameter_draws"):
            problems.append(
                f"evaluation.imputation.proper=true draws the likelihood's parameters per imputation, which "
                f"{likelihood} cannot (likelihood=correlated_gaussian can): use likelihood=correlated_gaussian, or "
                f"evaluation.imputation.proper=false (improper: one model's draws), or a bootstrap ensemble "
                f"(trainer.bootstrap=true 'seed=range(5)', then mode=impute ckpt=<the sweep directory>)"
            )
    problems += posterior_problems(cfg)
    optimizer = OmegaConf.select(cfg, "optimizer._target_", default=None)
    if str(optimizer).startswith("vae_runner.optimizers.") and not OmegaConf.select(cfg, "optimizer.fused", default=1):
        problems.append(
            f"optimizer.fused=false with {optimizer} (torch's fused Adam kernel, vae_runner/optimizers.py): for "
            f"torch's other Adam implementations add optimizer._target_=torch.optim.Adam"
        )
    if cfg.get("ckpt") and cfg.get("resume"):
        problems.append("give either ckpt= (mode=eval) or resume= (continue training), not both")
    if problems:
        raise UserError("Invalid configuration: " + "; ".join(problems) + ". Fix these overrides and run again.")
