"""The one vocabulary of config keys: which keys say what a run computes and which only say how or where it runs.
Every consumer reads its list here (a key names a node and everything under it: `evaluation` covers
`evaluation.iw_samples`):

- MODEL_KEYS: what a checkpoint's model is (a saved run serves only these values), but for LOCATION_KEYS;
- EXECUTION_KEYS: may differ when a run is taken up again (resume, skip-if-finished) and are left out of a sweep
  job's name (sweeps/names.py): how a command uses a run, where the data lives, the host, how long it trains and
  how it is evaluated;
- NOT_A_SETTING: vae-report's repeats of one setting differ only in these (report/table.py): the seed and what
  leaves the numbers as they are; the epochs and the evaluation do change them, so they are settings there;
- MEMBER_KEYS: what may differ between the members of one stack (stacking/stack.py);
- HPARAMS_LEFT_OUT: not a hyper-parameter in TensorBoard's HParams tab (loggers/hparams.py).
"""

from __future__ import annotations

# dataset-group keys read by the run (build.load_data), not passed to the loader
RUN_KEYS = ("binarize", "name")
MODEL_KEYS = ("dataset", "architecture", "posterior", "prior", "likelihood", "latent_dim")
LOCATION_KEYS = ("dataset.root", "dataset.download", "dataset.system_dirs")  # where the data lives on this machine

ACTION = ("mode", "n")  # what the command does with a run
SOURCE = ("ckpt", "resume")  # which saved run it starts from
OUTPUT = ("logger", "optimized_metric")  # what is logged, and what a sweeper is given
HOST = ("trainer.device", "trainer.num_threads", "trainer.compile", "trainer.flush_denormal")  # same numbers
EXTENDABLE = ("trainer.epochs", "evaluation")  # a finished run may train longer or be evaluated again

EXECUTION_KEYS = ACTION + SOURCE + OUTPUT + HOST + EXTENDABLE + LOCATION_KEYS
NOT_A_SETTING = ("seed",) + HOST + OUTPUT + SOURCE
# Values that change no tensor shape and that the stacked step applies per member: the random streams, the KL
# weight's schedule, the gradient clip, the learning rate (and `resume`, null for every new run).
MEMBER_KEYS = (
    "seed",
    "beta",
    "objective.beta",
    "objective.warmup_epochs",
    "objective.warmup_steps",
    "objective.warmup_start",
    "trainer.grad_clip",
    "trainer.lr",
    "optimizer.lr",
    "resume",
)
HPARAMS_LEFT_OUT = ACTION + SOURCE + ("logger",)


def covers(keys: tuple[str, ...], key: str) -> bool:
    """Whether `key` is one of `keys` or lies under one of them (`evaluation.iw_samples` under `evaluation`)."""
    return any(key == k or key.startswith(k + ".") for k in keys)


def is_execution_key(key: str) -> bool:
    return covers(EXECUTION_KEYS, key)


def is_setting(key: str) -> bool:
    """vae-report: whether runs that differ in `key` are different settings (not repeats of one)."""
    return not covers(NOT_A_SETTING, key)


def override_key(override: str) -> str:
    """The config key one override sets (`+key=`, `~key` as `key`)."""
    return override.split("=", 1)[0].lstrip("+~")


def override_keys(overrides) -> list[str]:
    """The config keys a command line's overrides set (`+key=`, `~key` as `key`), Hydra's own left out."""
    keys = [override_key(o) for o in overrides]
    return [k for k in keys if k != "hydra" and not k.startswith("hydra.") and not k.startswith("hydra/")]
