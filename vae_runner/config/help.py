"""`vae-run --help`: each config group with what it chooses (the comment on its line of train.yaml's defaults list),
its default and its options (the group folder's files), and where to go from there. Read from the config files
themselves, without composing the config (Hydra's own help composes it once per group: ~3 s) and without torch.
Hydra's flags stay under `vae-run --hydra-help`."""

from __future__ import annotations

import re
import textwrap
from importlib.resources import files

from vae_runner.config.command_line import groups

HEADER = "vae-run: train and evaluate a VAE chosen from config groups; every number in nats per example."
USAGE = """\
Usage: vae-run [group=option ...] [key=value ...]       one run (outputs/<date>/<time>/)
       vae-run -m group=a,b key=1,2                     a sweep: every combination (multirun/)"""
FOOTER = """\
Every other setting: key=value (vae-run --cfg job [overrides] prints the whole config, with each value).
Continue a stopped run: vae-run resume=<run dir>; evaluate or sample a trained one: vae-run mode=eval ckpt=<run dir>.
docs/config-groups.md documents every group and option; Hydra's own flags: vae-run --hydra-help."""
ENTRY = re.compile(r"^\s*-\s*(\w+):\s*(\S+)\s*(?:#\s*(.*))?$")  # "  - prior: gaussian   # p(z)"


def described_groups() -> list[tuple[str, str, str]]:
    """(group, default, what it chooses) in the defaults list's order."""
    text = files("vae_runner.configs").joinpath("train.yaml").read_text()
    entries = [ENTRY.match(line) for line in text.split("\ndefaults:\n", 1)[1].split("\n\n", 1)[0].splitlines()]
    return [(m[1], m[2], m[3] or "") for m in entries if m]


def help_text(width: int = 100) -> str:
    options = groups()
    lines = [HEADER, "", USAGE, "", "Config groups (group=option; the default marked *):"]
    for group, default, what in described_groups():
        names = [f"{o}*" if o == default else o for o in options.get(group, [])]
        lines.append(f"  {group:<16}{what}")
        lines += textwrap.wrap(", ".join(names), width, initial_indent=" " * 18, subsequent_indent=" " * 18)
    return "\n".join([*lines, "", FOOTER])
