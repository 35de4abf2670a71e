"""The disentanglement tables of the README from finished runs: per setting (the runs' overrides without `seed`),
mean ± standard deviation over seeds of the scores and the ELBO terms, n, each seed's active units, and the median
time of each score; then the MIG of each factor (the gap between its two most informative dimensions, from the
runs' stored factor x latent mutual information), to show which factors a setting separates.

    python studies/disentanglement_table.py /root/dsprites-sweep/beta /root/dsprites-sweep/tcvae

Reads each run's metrics.json and .hydra/overrides.yaml (any sweep directory written by `vae-run -m`).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from collections import defaultdict
from pathlib import Path

import yaml

from vae_runner.config.keys import is_setting, override_keys
from vae_runner.evaluation.disentanglement import factor_gaps

SCORES = [
    ("test/mig", "MIG"),
    ("test/sap", "SAP"),
    ("test/dci_disentanglement", "DCI D"),
    ("test/dci_completeness", "DCI C"),
    ("test/dci_informativeness", "DCI I"),
    ("test/beta_vae_score", "BetaVAE"),
    ("test/factor_vae_score", "FactorVAE"),
    ("test/recon", "recon"),
    ("test/kl", "KL"),
    ("test/elbo", "ELBO"),
]
TIMES = ["mig", "sap", "dci", "beta_vae", "factor_vae"]


def setting(run_dir: Path) -> str:
    overrides = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())
    return " ".join(o for o in overrides if (key := override_keys([o])) and is_setting(key[0]))  # vae-report's


def natural(text: str) -> list:
    """A sort key that orders numbers by value: beta=1, beta=4, beta=16."""
    return [
        (0, float(part), "") if part[:1].isdigit() else (1, 0.0, part) for part in re.split(r"(\d+(?:\.\d+)?)", text)
    ]


def cell(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweeps", nargs="+", type=Path)
    parser.add_argument(
        "--factor-names", nargs="+", help="the factors' names in order, for runs without test/mig_<factor>"
    )
    args = parser.parse_args()
    found: dict[str, list[dict]] = defaultdict(list)
    for sweep in args.sweeps:
        for metrics_file in sorted(sweep.glob("*/metrics.json")):
            found[setting(metrics_file.parent)].append(json.loads(metrics_file.read_text()))
    groups = dict(sorted(found.items(), key=lambda item: natural(item[0])))
    print("| setting | n | " + " | ".join(name for _, name in SCORES) + " | active units |")
    print("|---|---|" + "---|" * (len(SCORES) + 1))
    for name, runs in groups.items():
        cells = [cell([r[key] for r in runs if key in r]) if any(key in r for r in runs) else "-" for key, _ in SCORES]
        active = ", ".join(str(r["test/active_units"]) for r in runs if "test/active_units" in r)
        print(f"| `{name}` | {len(runs)} | " + " | ".join(cells) + f" | {active} |")
    every = [r for runs in groups.values() for r in runs]
    times = {t: [r[f"test/{t}_time_s"] for r in every if f"test/{t}_time_s" in r] for t in TIMES}
    medians = ", ".join(f"{t} {statistics.median(s):.2f}" for t, s in times.items() if s)
    print(f"\nmedian seconds per score (all runs): {medians}")
    factor_table(groups, args.factor_names)


def factor_table(groups: dict[str, list[dict]], names: list[str] | None) -> None:
    """MIG per factor, mean ± std over seeds: each run's `test/mig_<factor>`, or for runs that predate it, the same
    gaps of its stored `test/factor_mutual_information` (dims x factors, in `names`' order)."""
    runs_with = {k: [r for r in v if "test/factor_mutual_information" in r] for k, v in groups.items()}
    width = max((len(r["test/factor_mutual_information"][0]) for v in runs_with.values() for r in v), default=0)
    if not width:
        return
    if names is None:
        keys = [
            k for v in groups.values() for r in v for k in r if k.startswith("test/mig_") and k != "test/mig_time_s"
        ]
        names = list(dict.fromkeys(k.removeprefix("test/mig_") for k in keys))
    if len(names) != width:
        names = [f"factor {k}" for k in range(width)]
    print("\n| setting | " + " | ".join(f"MIG {n}" for n in names) + " |")
    print("|---|" + "---|" * width)
    for name, runs in runs_with.items():
        gaps = [
            [r[f"test/mig_{n}"] for n in names]
            if all(f"test/mig_{n}" in r for n in names)
            else factor_gaps(r["test/factor_mutual_information"]).tolist()
            for r in runs
        ]
        if gaps:
            print(f"| `{name}` | " + " | ".join(cell([g[k] for g in gaps]) for k in range(width)) + " |")


if __name__ == "__main__":
    main()
