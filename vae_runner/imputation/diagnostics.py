"""What a statistician looks at beside `mode=impute`'s files, in the table's own units (as R mice's `md.pattern` and
`densityplot`):

- `missing_patterns.csv`: each distinct pattern of missing cells, how many rows have it, 1 where a column is observed
  and 0 where it is missing, and how many cells it misses; a last row of each column's missing cells;
- `imputed_densities.png`: per column with missing cells, the observed values' histogram beside the imputed ones'
  (every multiple imputation's filled cells), so an imputation far from the observed spread shows. Under MAR the two
  may differ for good reason (the cells that went missing are not a random sample); under MCAR they should agree.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import torch


def write_missing_patterns(path: Path, columns: list[str], missing: torch.Tensor) -> None:
    """missing (N, F) bool -> its patterns as CSV (rows, 1 where observed / 0 where missing), most frequent first."""
    patterns, counts = torch.unique(missing, dim=0, return_counts=True)
    order = sorted(zip(counts.tolist(), (~patterns).int().tolist()), key=lambda p: (-p[0], p[1]))
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["rows", *columns, "missing_cells"])
        for rows, observed in order:
            writer.writerow([rows, *observed, len(observed) - sum(observed)])
        writer.writerow(["missing", *missing.sum(0).tolist(), int(missing.sum())])


def plot_imputed_densities(path: Path, columns: list[str], x: torch.Tensor, multiple: torch.Tensor) -> None:
    """x (N, F) with NaN holes, multiple (M, N, F) imputations -> one panel per column with holes: observed values'
    histogram and the imputed cells' (density-scaled, so the counts' difference does not hide the shapes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    missing = torch.isnan(x)
    shown = [j for j in range(x.shape[1]) if missing[:, j].any() and (~missing[:, j]).any()]
    if not shown:
        return
    wide = min(4, len(shown))
    fig, axes = plt.subplots(
        math.ceil(len(shown) / wide), wide, figsize=(3.2 * wide, 2.4 * math.ceil(len(shown) / wide))
    )
    for ax, j in zip(np.atleast_1d(axes).flat, shown):
        observed, imputed = x[~missing[:, j], j].numpy(), multiple[:, missing[:, j], j].flatten().numpy()
        bins = np.histogram_bin_edges(np.concatenate([observed, imputed]), bins=20)
        ax.hist(observed, bins=bins, density=True, alpha=0.6, color="tab:blue", label=f"observed ({len(observed)})")
        ax.hist(
            imputed,
            bins=bins,
            density=True,
            alpha=0.6,
            color="tab:red",
            label=f"imputed ({int(missing[:, j].sum())} x {len(multiple)})",
        )
        ax.set_title(columns[j], fontsize=9)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    for ax in np.atleast_1d(axes).flat[len(shown) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
