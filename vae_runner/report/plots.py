"""vae-report's pictures: a metric against a swept parameter (one series per value of another, with error bars from
standard errors), and a montage of one picture (samples.png, latent_density.png, ...) from every run side by side."""

from __future__ import annotations

import math
from pathlib import Path

SE_SUFFIX = "_stderr"  # metrics.json: test/log_likelihood_stderr, the estimate's standard error over test images


def _number(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return v


def error_of(row: dict, metric: str) -> tuple[float | None, str]:
    """A point's standard error and what it is: over seeds (a seed-grouped row: std / sqrt(n)) or the run's own
    estimate's (metrics.json's <metric>_stderr)."""
    std, n = row.get(metric + " std"), row.get("n")
    if std is not None and n:
        return std / math.sqrt(n), "standard error of the mean over seeds"
    if isinstance(row.get(metric + SE_SUFFIX), (int, float)):
        return row[metric + SE_SUFFIX], "standard error of the estimate over test images"
    return None, ""


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot(rows: list[dict], metric: str, x: str, group: str | None, path: Path) -> bool:
    """figure() saved to path; False when no finished run has both metric and x."""
    fig = figure(rows, metric, x, group)
    if fig is None:
        return False
    fig.savefig(path, bbox_inches="tight")
    _pyplot().close(fig)
    return True


def figure(rows: list[dict], metric: str, x: str, group: str | None):
    """metric against x, a series per value of group. A numeric x gets lines; a categorical one (prior=gaussian,
    mog) gets points only, each series shifted a little so their error bars do not hide each other."""
    points = [r for r in rows if isinstance(r.get(metric), (int, float)) and x in r]
    if not points:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    groups = sorted({str(r.get(group, "")) for r in points}) if group else [""]
    numeric = all(isinstance(_number(r[x]), float) for r in points)
    categories = sorted({str(r[x]) for r in points})
    meaning = set()
    for i, g in enumerate(groups):
        sel = [r for r in points if not group or str(r.get(group, "")) == g]
        sel.sort(key=lambda r: _number(r[x]) if numeric else str(r[x]))
        if numeric:
            xs = [_number(r[x]) for r in sel]
        else:
            shift = (i - (len(groups) - 1) / 2) * 0.3 / max(1, len(groups))
            xs = [categories.index(str(r[x])) + shift for r in sel]
        errors = [error_of(r, metric) for r in sel]
        meaning |= {m for _, m in errors if m}
        ax.errorbar(
            xs,
            [r[metric] for r in sel],
            yerr=[e or 0.0 for e, _ in errors] if any(e for e, _ in errors) else None,
            marker="o",
            linestyle="-" if numeric else "none",
            capsize=3,
            label=f"{group}={g}" if group else None,
        )
    if not numeric:
        ax.set_xticks(range(len(categories)), categories)
        ax.set_xlim(-0.5, len(categories) - 0.5)
    ax.set_xlabel(x)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} vs {x}" + (f"\nerror bars: {'; '.join(sorted(meaning))}" if meaning else ""))
    if group:
        ax.legend()
    ax.grid(alpha=0.3)
    return fig


def montage(runs: list[tuple[str, Path]], picture: str, path: Path) -> int:
    """One figure of `<run dir>/<picture>.png` from every run that has it, titled by the run's label (its varying
    settings); returns how many runs it shows (0: nothing written)."""
    found = [(label, run / f"{picture}.png") for label, run in runs if (run / f"{picture}.png").is_file()]
    if not found:
        return 0
    plt = _pyplot()
    cols = min(4, len(found))
    rows = math.ceil(len(found) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.5 * rows), dpi=100, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (label, png) in zip(axes.flat, found):
        ax.imshow(plt.imread(png), interpolation="nearest")
        ax.set_title(label, fontsize=8)
    fig.suptitle(picture)
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return len(found)
