"""One override written so that it parses back to the value it was given: `override` for Hydra's grammar (what
`compose_config` and `vae-run` read), `shell_override` for a command printed for a user to paste into a shell.

Why: a sweep's run directories are named after their overrides (`0_dataset.table=wine,seed=0`), and Hydra reads an
unquoted `=` as a parse error and a `,` as a sweep, so `resume=<such a directory>` fails as printed. A value with
any character Hydra's grammar gives a meaning is single-quoted, its quotes (and the backslashes before them) and
`${` escaped. `typed_paths` does the same for such a path typed on vae-run's command line as it is.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

PLAIN = re.compile(r"[A-Za-z0-9_./:@+\-]*")  # characters a Hydra value may hold unquoted and mean as themselves


def hydra_value(value: object) -> str:
    """`value` as Hydra's grammar reads it back unchanged: as it is where that is plain, else single-quoted."""
    text = str(value)
    if PLAIN.fullmatch(text):
        return text
    quoted = re.sub(r"(\\*)('|$)", lambda m: m.group(1) * 2 + ("\\'" if m.group(2) else ""), text)
    return "'" + quoted.replace("${", "\\${") + "'"  # backslashes only escape before a quote (and at the end)


def override(key: str, value: object) -> str:
    """`key=value` for compose_config or a Hydra command line, `value` quoted where it has to be."""
    return f"{key}={hydra_value(value)}"


def shell_override(key: str, value: object) -> str:
    """`key=value` as a shell argument for a printed command: Hydra's quoting inside the shell's (double quotes
    where nothing in it means anything to a shell there: `"resume='outputs/0_seed=0'"`)."""
    text = override(key, value)
    if PLAIN.fullmatch(text.replace("=", "", 1)):
        return text
    return f'"{text}"' if not set(text) & set('"$`\\!') else shlex.quote(text)


# keys whose value is a path on this machine
PATH_KEYS = ("ckpt", "resume", "dataset.table", "evaluation.imputation.table")


def typed_paths(argv: list[str]) -> list[str]:
    """vae-run's arguments with each PATH_KEYS path typed as it is (a sweep member's
    `outputs/x/0_beta=1,seed=0`) quoted for Hydra, where it names an existing file or directory and Hydra would
    misread it; every other argument, and a value already quoted, as given."""
    out = []
    for arg in argv:
        key, equals, value = arg.partition("=")
        if equals and key in PATH_KEYS and not PLAIN.fullmatch(value) and value[:1] not in "'\"":
            if Path(value).expanduser().exists():
                arg = override(key, value)
        out.append(arg)
    return out
