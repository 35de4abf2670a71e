"""The command line checked before Hydra runs anything: a wrong option, an unknown key, a value of the wrong type,
an added (`+key`) or deleted (`~key`) key each get one paragraph naming the fix ("did you mean ...?", the valid
options), printed by cli.py with exit status 2, instead of Hydra's traceback-like report with status 1. Every value
of a sweep is checked, so a sweep never fails half-way on a typo. `hydra.*` overrides are left to Hydra.
"""

from __future__ import annotations

import difflib
from importlib.resources import files

from hydra._internal.utils import get_args_parser
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from vae_runner.config.compose import compose_config


def groups() -> dict[str, list[str]]:
    """Each config group and its options: the folders of configs/ and their yaml files."""
    root = files("vae_runner.configs")
    return {
        d.name: sorted(f.name[: -len(".yaml")] for f in d.iterdir() if f.name.endswith(".yaml"))
        for d in root.iterdir()
        if d.is_dir() and not d.name.startswith(("_", "."))
    }


def did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.6)
    return f" Did you mean {' or '.join(close)}?" if close else ""


OPEN_MAPPINGS = ("dataset.columns.",)  # config mappings whose keys are the user's (a table's column names)


def problem(argv: list[str]) -> str | None:
    """What is wrong with vae-run's command line `argv`, as one paragraph; None when Hydra may go ahead."""
    args = get_args_parser().parse_args(argv)
    if args.help or args.hydra_help or args.info or args.shell_completion:
        return None
    try:
        overrides = OverridesParser.create().parse_overrides(args.overrides)
    except HydraException as err:
        return f"{str(err).strip().splitlines()[0]}. Write overrides as key=value (a sweep: key=a,b)."
    ours = [o for o in overrides if not o.key_or_group.startswith("hydra")]
    options = groups()
    for o in ours:
        key = o.key_or_group
        if o.type == OverrideType.ADD and key.startswith(OPEN_MAPPINGS):
            continue  # a key of a mapping the user fills (dataset.columns.<name>), read whole by its code
        if o.type != OverrideType.CHANGE:
            if o.type == OverrideType.ADD:
                return (
                    f"{o.input_line} adds a key, which vae-run would accept and ignore: it reads only the keys of "
                    f"its config. Change an existing setting with key=value, without the +."
                    f"{did_you_mean(key, _leaf_keys(compose_config()))}"
                )
            return f"{o.input_line} deletes a setting every run needs; give it a value instead ({key}=<value>)."
        if key in options:
            for value in _values(o):
                if value not in options[key] and not (key in ("experiment", "hparams_search") and value == "null"):
                    return (
                        f"{key}={value}: no such option in the {key} group.{did_you_mean(value, options[key])} "
                        f"Options: {', '.join(options[key])}."
                    )
    # one composition with every sweep at its first value, then each further value of each sweep
    firsts = [_first(o) for o in ours]
    tries = [firsts] + [
        [*firsts[:i], f"{o.key_or_group}={value}", *firsts[i + 1 :]]
        for i, o in enumerate(ours)
        if o.is_sweep_override()
        for value in _values(o)[1:]
    ]
    for lines in tries:
        try:
            compose_config(lines)
        except (HydraException, OmegaConfBaseException) as err:
            return _explain(ours, lines, options, err)
    return None


def _explain(ours: list[Override], lines: list[str], options: dict, err: Exception) -> str:
    """The paragraph for a command line that does not compose: an unknown key (with its neighbours), else the
    offending override and the first line of what OmegaConf said."""
    chosen = [line for o, line in zip(ours, lines) if o.key_or_group in options]
    cfg = compose_config(chosen)
    leaves = _leaf_keys(cfg)
    for o in ours:
        key = o.key_or_group
        if key in options or OmegaConf.select(cfg, key, default=_ABSENT) is not _ABSENT:
            continue
        parent = key.rpartition(".")[0]
        while parent and not isinstance(OmegaConf.select(cfg, parent, default=None), DictConfig):
            parent = parent.rpartition(".")[0]
        node = OmegaConf.select(cfg, parent) if parent else cfg
        return (
            f"{key} is not a setting of vae-run's config{' with ' + ' '.join(chosen) if chosen else ''}."
            f"{did_you_mean(key, leaves)} "
            f"Settings{f' of {parent}' if parent else ''}: {', '.join(f'{parent}.{k}' if parent else k for k in node)}."
        )
    cause = err.__cause__ or err
    full_key = getattr(cause, "full_key", None)
    line = next((ln for o, ln in zip(ours, lines) if full_key and o.key_or_group == full_key), " ".join(lines))
    first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    return f"{line}: {first}. Fix the value (vae-run --cfg job prints the config with every setting's value)."


_ABSENT = object()


def _values(o: Override) -> list[str]:
    return [str(v) for v in o.sweep_string_iterator()] if o.is_sweep_override() else [o.get_value_element_as_str()]


def _first(o: Override) -> str:
    return f"{o.key_or_group}={_values(o)[0]}" if o.is_sweep_override() else o.input_line


def _leaf_keys(cfg: DictConfig, prefix: str = "") -> list[str]:
    keys = []
    for k, v in cfg.items_ex(resolve=False):
        keys += _leaf_keys(v, f"{prefix}{k}.") if isinstance(v, DictConfig) else [prefix + str(k)]
    return keys
