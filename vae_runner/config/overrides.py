"""One override written so that it parses back to the value it was given: `override` for Hydra's grammar (what
`compose_config` and `vae-run` read), `shell_override` for a command printed for a user to paste into a shell.

Why: a sweep's run directories are named after their overrides (`0_dataset.table=wine,seed=0`), and Hydra reads an
unquoted `=` as a parse error and a `,` as a sweep, so `resume=<such a directory>` fails as printed. A value with
any character Hydra's grammar gives a meaning is single-quoted, its quotes (and the backslashes before them) and
`${` escaped.
"""

from __future__ import annotations

import re
import shlex

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
