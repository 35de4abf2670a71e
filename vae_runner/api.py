"""The Python API, for notebooks and scripts: `train` runs what `vae-run` runs, in this process, and `load` opens a
run directory; both give a `Run` (its resolved config, model, data and metrics, and what one does with a model).

    import vae_runner
    run = vae_runner.train(["prior=mog", "beta=4"])       # = vae-run prior=mog beta=4
    run = vae_runner.load("outputs/2026-11-23/10-00-00")  # its best checkpoint (checkpoint="last": the latest)
    x = run.data.test.floats(slice(0, 16))
    run.sample(64), run.encode(x).mean, run.reconstruct(x), run.log_likelihood(x, k=1000), run.metrics
    run.impute(x_with_nan).mean                           # missing entries imputed, with multiple imputations
    single, draws = vae_runner.impute_file("my.csv", seeds=range(5), draws=20)  # fit, fill: 5 bootstrap members
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from vae_runner import build
from vae_runner.config.command_line import problem
from vae_runner.config.compose import compose_config
from vae_runner.config.keys import is_execution_key, override_key
from vae_runner.config.overrides import override, shell_override
from vae_runner.data import DataSplits, Split
from vae_runner.errors import UserError
from vae_runner.evaluation.metrics import log_likelihood
from vae_runner.imputation.importance import importance_imputations, proper_imputations
from vae_runner.loggers.console import ConsoleOnly
from vae_runner.model.vae import VAE
from vae_runner.rng import seeded
from vae_runner.runs.directory import BEST, LAST, METRICS, read_metrics, run_dir_of


class Imputations(NamedTuple):
    mean: Tensor  # (B, *shape): the single imputation, observed entries as given
    draws: Tensor  # (M, B, *shape): multiple imputations
    log_p_missing: Tensor | None  # (B,): log p(x_mis | x_obs) in nats, where the truth was given


class Run:
    """A trained model with its run: `config` (resolved, as saved), `model` (eval mode), `data` (the splits as the
    run used them, binarised val/test included), `metrics` (metrics.json; {} while unfinished), `run_dir`,
    `checkpoint` (the file the weights came from) and `epoch`."""

    def __init__(self, run_dir: Path, config: DictConfig, model: VAE, data: DataSplits, state: dict):
        self.run_dir = run_dir
        self.config = config
        self.model = model
        self.data = data
        self.checkpoint = state["path"]
        self.epoch = state["epoch"]
        self.device = next(model.parameters()).device

    def __repr__(self) -> str:
        return f"Run({str(self.run_dir)!r}, epoch {self.epoch}, {self.checkpoint.name})"

    @property
    def metrics(self) -> dict:
        return read_metrics(self.run_dir) if (self.run_dir / METRICS).is_file() else {}

    def _batch(self, x: Tensor) -> Tensor:
        """Images as the model takes them: (B, *data shape) (or one image) as floats on the model's device, uint8
        scaled to [0, 1]."""
        x = torch.as_tensor(x)
        x = x[None] if tuple(x.shape) == self.data.shape else x
        if tuple(x.shape[1:]) != self.data.shape:
            shape = ", ".join(map(str, self.data.shape))
            raise ValueError(f"expected images of shape (B, {shape}) or ({shape}), got {tuple(x.shape)}")
        return Split(x).floats().to(self.device)

    @torch.no_grad()
    def sample(self, n: int, seed: int | None = None) -> Tensor:
        """n images: means of p(x|z) for z ~ p(z); `seed` makes them repeatable (the global RNG is left as it was)."""
        with contextlib.nullcontext() if seed is None else seeded(self.device, seed):
            return self.model.sample(n).cpu()

    @torch.no_grad()
    def encode(self, x: Tensor) -> torch.distributions.Distribution:
        """q(z|x) for a batch: `.mean` (B, latent_dim), `.stddev`, `.sample()`."""
        return self.model.posterior(self._batch(x))

    @torch.no_grad()
    def decode(self, z: Tensor) -> Tensor:
        """Means of p(x|z) for latent codes z (B, latent_dim)."""
        return self.model.decode(torch.as_tensor(z, dtype=torch.float32, device=self.device)).mean.cpu()

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """Means of p(x|z) at z = the posterior mean of each image."""
        return self.model.reconstruct(self._batch(x)).cpu()

    def log_likelihood(self, x: Tensor, k: int = 1000, seed: int = 0) -> Tensor:
        """Importance-sampled log p(x) per image, in nats, with k samples from q(z|x) (the estimator of the final
        evaluation; its noise is keyed by seed and image index). Binary data (Bernoulli likelihood) must be binary."""
        return log_likelihood(self.model, Split(self._batch(x)), k=k, seed=seed).cpu()

    def impute(
        self,
        x: Tensor,
        truth: Tensor | None = None,
        samples: int = 1000,
        draws: int = 100,
        seed: int = 0,
        proper: bool | None = None,
    ):
        """Imputations of the NaN entries of x (the run's units: images in [0, 1], binarised as the run's; a table
        standardised as run.data, original = x * run.data.scale + run.data.offset), by the final evaluation's
        estimator: `samples` proposals from q(z | x_obs) importance-weighted by p(x_obs | z) p(z) / q(z | x_obs), the
        mean imputation their weighted E[x | z], `draws` multiple imputations resampled by weight and drawn from
        p(x | z); with the complete `truth`, also log p(x_mis | x_obs) per row. A model trained on complete data
        imputes too (its encoder then reads a missing entry as 0, which the weights correct for, at a cost in
        variance); the model then scores observed entries only, as a missing-data run's does. `proper` (None: the
        run's evaluation.imputation.proper): each multiple imputation under its own posterior draw of the
        likelihood's parameters given the run's training rows (imputation/importance.py's proper_imputations)."""
        x = self._batch(x)
        truth = None if truth is None else self._batch(truth)
        self.model.accept_missing()
        mean, multiple, cond = importance_imputations(self.model, x, truth, samples, draws, seed)
        if OmegaConf.select(self.config, "evaluation.imputation.proper", default=False) if proper is None else proper:
            train = self.data.train.x.to(x.device)
            multiple = proper_imputations(self.model, x, train, samples, draws, seed)
        return Imputations(mean.cpu(), multiple.cpu(), None if cond is None else cond.cpu())

    def impute_frame(self, frame, draws: int = 20, seed: int | None = None, probabilities: bool = False):
        """A pandas DataFrame of a run trained on a table file (the file's columns, in any order; NaN/None or the
        file's missing spellings where missing) filled as `vae-run mode=impute` fills a file: (the single
        imputation, a DataFrame of the frame's rows and columns, `drop` columns left out; the `draws` multiple
        imputations in long format, a first column `imputation` 1..M), every cell a valid value of its column's
        type (a label, an integer count, within declared bounds), observed cells as given. `seed`: None, the
        run's; `probabilities`: binary columns of the single imputation as their probabilities."""
        from vae_runner.data.table_file import frame_text
        from vae_runner.imputation.table import fill
        from vae_runner.imputation.table import frame as as_frame

        if self.data.schema is None:
            raise UserError(
                f"impute_frame fills a table of the columns a run was trained on (dataset.table=<file>); "
                f"{self.run_dir} was trained on dataset={self.config.dataset.name}: use run.impute(x) on a tensor."
            )
        cfg = self.config.copy()
        cfg.evaluation.imputation.draws, cfg.evaluation.imputation.probabilities = draws, probabilities
        cfg.seed = cfg.seed if seed is None else seed
        filled = fill([(cfg, {}, self.data, self.model, self.device)], frame_text(frame), "the DataFrame")
        long = [[str(m + 1), *row] for m, rows in enumerate(filled.multiple) for row in rows]
        return as_frame(filled.columns, filled.single), as_frame(["imputation", *filled.columns], long)


def load(path: str | Path, checkpoint: str = "best", overrides: Sequence[str] = ()) -> Run:
    """Open a run directory (or a checkpoint file): its saved config, data and model. `checkpoint`: "best" (the
    best validation ELBO) or "last" (the latest, also of an unfinished run). `overrides` change how it runs, not
    the model (e.g. ["trainer.device=cpu", "dataset.root=/data"])."""
    if checkpoint not in ("best", "last"):
        raise ValueError(f'checkpoint must be "best" or "last", not {checkpoint!r}')
    if any(override_key(o).lstrip("+") == "dataset.table" for o in overrides):
        raise UserError(
            f"load({str(path)!r}, overrides=[dataset.table=...]): a run is opened with the table it was trained on. "
            f"To fill another file of the same columns: run = vae_runner.load({str(path)!r}); "
            f"run.impute_frame(pandas.read_csv(<file>)), or vae-run mode=impute "
            f"{shell_override('ckpt', path)} evaluation.imputation.table=<file>."
        )
    if overrides and (message := problem(list(overrides))):
        raise UserError(message)
    cfg = compose_config([override("ckpt", path), *overrides])
    name = BEST if checkpoint == "best" else LAST
    cfg, state, data, model, _ = build.from_checkpoint(cfg, list(overrides), "vae_runner.load", name)
    return Run(run_dir_of(state["path"]), cfg, model, data, state)


def train(overrides: Sequence[str] = (), run_dir: str | Path | None = None) -> Run:
    """Train like `vae-run <overrides>` in this process (log in <run_dir>/vae-run.log and on the console, config
    in <run_dir>/.hydra/ as Hydra writes it), then `load` the run's best checkpoint. `run_dir` defaults to
    outputs/<date>/<time> under the working directory; a directory holding an interrupted run resumes it."""
    from vae_runner import run as runner

    cfg = compose_config(overrides)
    run_dir = Path(run_dir or f"outputs/{datetime.now():%Y-%m-%d}/{datetime.now():%H-%M-%S-%f}").resolve()
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    (run_dir / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    (run_dir / ".hydra" / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(list(overrides))))
    with _logging_to(run_dir / "vae-run.log"):
        runner.run(cfg, run_dir, list(overrides))
    return load(run_dir)


def impute_file(
    table: str | Path,
    overrides: Sequence[str] = (),
    work_dir: str | Path | None = None,
    draws: int = 20,
    seeds: Sequence[int] = (0,),
) -> tuple[np.ndarray, np.ndarray]:
    """Fit `experiment=impute_file` (impute_tabular's model, lean: no log-likelihood, pictures or TensorBoard) to
    a table file with missing cells and fill them, as the command `vae-run experiment=impute_file
    dataset.table=<file>` does: the single imputation (N, F) and `draws` multiple imputations (M, N, F), every row in
    the file's order and units (a purely numeric file: its columns; overrides declare other types). One seed: one
    model, fitted and filling in one run; several: a bootstrap ensemble (trainer.bootstrap=true, one member per seed,
    each its share of the draws: imputation that carries the model's estimation error), filled by `vae-run
    mode=impute`. The models fit 99 % of the rows (dataset.test_fraction=0.01; 10 % of them validate, for early
    stopping); `overrides` go to every member. The runs and the imputed files stay in `work_dir` (default:
    outputs/<date>/<time>)."""
    from vae_runner import run as runner

    work = Path(work_dir or f"outputs/{datetime.now():%Y-%m-%d}/{datetime.now():%H-%M-%S-%f}").resolve()
    ensemble = len(seeds) > 1
    for seed in seeds:
        train(
            [
                "experiment=impute_file",
                override("dataset.table", table),
                f"seed={seed}",
                f"evaluation.imputation.draws={draws}",
                *(["trainer.bootstrap=true", "evaluation.imputation.fill=false"] if ensemble else []),
                *overrides,
            ],
            run_dir=work / "members" / str(seed),
        )
    filled = work / "members" / str(seeds[0])
    if ensemble:
        keep = [o for o in overrides if is_execution_key(override_key(o))]  # how, not what, to impute
        impute = ["mode=impute", override("ckpt", work / "members"), *keep, f"evaluation.imputation.draws={draws}"]
        filled = work / "imputed"
        with _logging_to(work / "vae-run.log"):
            runner.run(compose_config(impute), filled, impute)
    single = np.loadtxt(filled / "imputed.csv", delimiter=",", skiprows=1, ndmin=2)
    long = np.loadtxt(filled / "imputations.csv", delimiter=",", skiprows=1, ndmin=2)[:, 1:]
    return single, long.reshape(draws, *single.shape)


def member_seeds(seed: int, members: int) -> list[int]:
    """The training seeds for `impute_file` in replication `seed` of a study: [seed] for one model, else `members`
    seeds 10,000 (b + 1) + seed, distinct across members and (below 10,000 replications) across replications."""
    return [seed] if members == 1 else [10_000 * (b + 1) + seed for b in range(members)]


@contextlib.contextmanager
def quiet():
    """Every INFO line off (vae_runner's and its libraries') while inside, as studies that fit many models want;
    the level before is restored on leaving, so a caller in the same process (a test, a notebook) keeps its log."""
    before = logging.root.manager.disable
    logging.disable(max(before, logging.INFO))
    try:
        yield
    finally:
        logging.disable(before)


@contextlib.contextmanager
def _logging_to(path: Path):
    """vae_runner's log records into `path` (and, where nothing is configured, the console, with vae-run's console
    filter: a validation line every logger.log_every_epochs epochs, no evaluation stages) while training."""
    logger = logging.getLogger("vae_runner")
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    console = logging.StreamHandler()
    console.addFilter(ConsoleOnly())
    handlers = [handler] + ([] if logging.getLogger().handlers else [console])
    level = logger.level
    logger.setLevel(logging.INFO)
    for name, child in logging.Logger.manager.loggerDict.items():  # a logging.config call (Hydra's job logging,
        if name.split(".")[0] == "vae_runner" and isinstance(child, logging.Logger):  # run before) disables them
            child.disabled = False
    for h in handlers:
        logger.addHandler(h)
    try:
        yield
    finally:
        for h in handlers:
            logger.removeHandler(h)
            h.close()
        logger.setLevel(level)
