"""The disentanglement table of the README from finished runs: per setting (the runs' overrides without `seed`),
mean ± standard deviation over seeds of the scores and the ELBO terms, n, and the median time of each score.

    python scripts/disentanglement_table.py /root/dsprites-sweep/beta /root/dsprites-sweep/tcvae

Reads each run's metrics.json and .hydra/overrides.yaml (any sweep directory written by `vae-run -m`).
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

import yaml

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
IGNORED = ("seed", "logger.", "trainer.num_threads", "hydra.")


def setting(run_dir: Path) -> str:
    overrides = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())
    return " ".join(o for o in overrides if not o.startswith(IGNORED))


def cell(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweeps", nargs="+", type=Path)
    args = parser.parse_args()
    groups: dict[str, list[dict]] = defaultdict(list)
    for sweep in args.sweeps:
        for metrics_file in sorted(sweep.glob("*/metrics.json")):
            groups[setting(metrics_file.parent)].append(json.loads(metrics_file.read_text()))
    print("| setting | n | " + " | ".join(name for _, name in SCORES) + " |")
    print("|---|---|" + "---|" * len(SCORES))
    for name, runs in groups.items():
        cells = [cell([r[key] for r in runs if key in r]) if any(key in r for r in runs) else "-" for key, _ in SCORES]
        print(f"| `{name}` | {len(runs)} | " + " | ".join(cells) + " |")
    every = [r for runs in groups.values() for r in runs]
    times = {t: [r[f"test/{t}_time_s"] for r in every if f"test/{t}_time_s" in r] for t in TIMES}
    medians = ", ".join(f"{t} {statistics.median(s):.2f}" for t, s in times.items() if s)
    print(f"\nmedian seconds per score (all runs): {medians}")


if __name__ == "__main__":
    main()
