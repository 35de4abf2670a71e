"""`hydra/launcher=batched` (the class Hydra sees is in hydra_plugins/vae_runner_batched): a sweep's jobs whose
configs differ only in what a stack trains per member (config/keys.py MEMBER_KEYS: seed, beta, warm-up, grad
clip, learning rate) and whose models stack (an MLP or gated MLP; any of the six priors;
a Bernoulli, MSE or Gaussian likelihood; fp32; Adam or AdamNormGrad) train together, each group as one stack in
this process (stacking/loop.py).
Then every job runs as Hydra's basic launcher runs it, in job order: a stacked member's job finds its trained run
and does the final evaluation; the other jobs train alone as usual. A job that has a checkpoint or has finished
already (a re-launched sweep) is never stacked: it resumes or is skipped as in any sweep.
"""

from __future__ import annotations

import copy
import logging
import sys
from collections import defaultdict
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import configure_log, filter_overrides, run_job, setup_globals
from omegaconf import OmegaConf, open_dict, read_write

from vae_runner.host.cpu_features import chosen_device, chosen_precision
from vae_runner.host.signals import Interrupted
from vae_runner.runs.directory import CHECKPOINTS, METRICS
from vae_runner.stacking.model import STACKED_LIKELIHOODS, STACKED_PRIORS

log = logging.getLogger("vae_runner")

STACKED_ENCODERS = ("MLPEncoder", "GatedMLPEncoder")
STACKED_OPTIMIZERS = (  # stacking/optimizer.py (torch.optim.Adam: the optimizer=adam of runs saved before 2026-12-07)
    "vae_runner.optimizers.Adam",
    "vae_runner.optimizers.AdamNormGrad",
    "torch.optim.Adam",
)


def why_alone(cfg) -> str | None:
    """Why this job's run cannot be a stack member (None: it can)."""
    name = lambda node: str(node._target_).rsplit(".", 1)[-1]  # noqa: E731
    checks = [
        (getattr(cfg.mode, "value", cfg.mode) == "train" and not cfg.resume, "it is not a new training run"),
        (name(cfg.architecture.encoder) in STACKED_ENCODERS, f"architecture {name(cfg.architecture.encoder)}"),
        (name(cfg.posterior) == "GaussianPosterior", f"posterior {name(cfg.posterior)}"),
        (name(cfg.prior) in STACKED_PRIORS, f"prior {name(cfg.prior)}"),
        (name(cfg.likelihood) in STACKED_LIKELIHOODS, f"likelihood {name(cfg.likelihood)}"),
        (cfg.objective.k == 1 and not cfg.objective.triplet_weight, "objective k > 1 or a triplet loss"),
        (cfg.objective.gradient == "pathwise", "objective.gradient=dreg"),
        (not penalised(cfg.objective), "a batch penalty (objective.tc_weight, dip, mmd_weight, factor_vae_weight)"),
        (str(cfg.optimizer._target_) in STACKED_OPTIMIZERS, f"optimizer {cfg.optimizer._target_}"),
        (training_precision(cfg) == "fp32" and not cfg.trainer.compile, "bf16 or torch.compile"),
        (cfg.missing.kind == "none" and cfg.dataset.name != "tabular", "missing entries or a table"),
        (list(cfg.modalities.use) == ["image"], "several modalities (modalities.use)"),
        (not cfg.trainer.bootstrap, "a bootstrap resample of its own (trainer.bootstrap)"),
    ]
    return next((why for ok, why in checks if not ok), None)


def training_precision(cfg) -> str:
    """trainer.precision as the run would resolve it on this machine (auto: bf16 where it is native)."""
    return chosen_precision(cfg.trainer.precision, chosen_device(cfg.trainer.device))


def penalised(objective) -> bool:
    return bool(objective.tc_weight or objective.dip != "none" or objective.mmd_weight or objective.factor_vae_weight)


def job_config(launcher, overrides, idx: int):
    sweep_config = launcher.hydra_context.config_loader.load_sweep_config(launcher.config, list(overrides))
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = idx
        sweep_config.hydra.job.num = idx
    return sweep_config


def run_dir_and_task_config(sweep_config) -> tuple[Path, object]:
    """The job's output directory and the config its task function gets, as hydra's run_job computes them."""
    HydraConfig.instance().set_config(sweep_config)
    out = Path(str(OmegaConf.select(sweep_config, "hydra.sweep.dir")))
    out = (out / str(OmegaConf.select(sweep_config, "hydra.sweep.subdir"))).absolute()
    task_cfg = copy.deepcopy(sweep_config)
    with read_write(task_cfg), open_dict(task_cfg):
        del task_cfg["hydra"]
    return out, task_cfg


def launch(launcher, job_overrides, initial_job_idx: int):
    from vae_runner.stacking.loop import train_stack
    from vae_runner.stacking.stack import stack_key

    setup_globals()
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    Path(str(launcher.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
    jobs = [job_config(launcher, o, initial_job_idx + i) for i, o in enumerate(job_overrides)]
    groups = defaultdict(list)
    for sweep_config in jobs:
        run_dir, cfg = run_dir_and_task_config(sweep_config)
        started = (run_dir / CHECKPOINTS).is_dir() or (run_dir / METRICS).is_file()
        why = "it has started already" if started else why_alone(cfg)
        if why is None:
            groups[stack_key(cfg)].append((cfg, run_dir))
        else:
            log.info("job %d trains alone: %s", sweep_config.hydra.job.num, why)
    for members in groups.values():
        if len(members) > 1:
            cfgs, run_dirs = zip(*members)
            try:
                train_stack(list(cfgs), list(run_dirs))
            except ValueError as err:  # a model that turned out not to stack: its jobs train alone below
                log.warning("these %d runs train one by one instead of as a stack: %s", len(members), err)
            except Interrupted as stop:  # every member checkpointed: stop the sweep as vae-run stops a run
                print(f"vae-run: {stop}", file=sys.stderr)
                sys.exit(128 + stop.signum)
    log.info("Launching %d jobs locally", len(jobs))
    returns = []
    for sweep_config in jobs:
        log.info(
            "\t#%d : %s", sweep_config.hydra.job.num, " ".join(filter_overrides(sweep_config.hydra.overrides.task))
        )
        returns.append(
            run_job(
                hydra_context=launcher.hydra_context,
                task_function=launcher.task_function,
                config=sweep_config,
                job_dir_key="hydra.sweep.dir",
                job_subdir_key="hydra.sweep.subdir",
            )
        )
        configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    return returns
