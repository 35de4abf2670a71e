"""`vae-report <sweep or outputs dir> [more sweeps]`: one table of every run's overrides and final metrics (printed,
and written as report.md and report.csv), and a plot of a metric against a swept parameter, one line per value of
another.

Seeds are a sweep axis of their own: when runs differ in `seed`, runs whose settings differ only in the seed (and in
where/how they ran: threads, device, logging) form one group, and the table, the CSV and the plot show each metric's
mean ± sample standard deviation over the group's finished runs, with n (the per-run table goes to runs.md/runs.csv).

Works on a partly finished sweep: a run without metrics.json is listed as unfinished (with the last epoch of its
checkpoint when it has one). It reads only the run directories' files, never the models.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
from pathlib import Path

import yaml

from vae_runner.config.keys import is_setting
from vae_runner.report.plots import SE_SUFFIX, montage, plot
from vae_runner.runs.directory import METRICS, checkpoint_path, read_metrics

DEFAULT_METRICS = ["test/elbo", "test/log_likelihood", "test/kl", "test/active_units", "val/elbo"]
RUN_INFO = ("best_epoch", "epochs", "train_time_s", "train_steps_s", "epoch_time_s")


def group_by_seed(rows: list[dict], params: list[str], metrics: list[str]) -> list[dict]:
    """One row per setting (params other than seed and execution keys), in the order of their values: n finished
    runs, their seeds, and mean and sample std of each metric over them (std None for n < 2)."""
    settings = [p for p in params if is_setting(p)]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(str(r.get(p, "")) for p in settings), []).append(r)
    out = []
    for key, members in sorted(groups.items(), key=lambda item: [_by_value(v) for v in item[0]]):
        done = sorted(
            (r for r in members if r["status"] == "finished"), key=lambda r: _by_value(str(r.get("seed", "")))
        )
        row = dict(zip(settings, key))
        row.update({"n": len(done), "runs": len(members), "seeds": " ".join(str(r.get("seed", "")) for r in done)})
        for m in metrics + list(RUN_INFO):
            values = [r[m] for r in done if isinstance(r.get(m), (int, float))]
            row[m] = statistics.fmean(values) if values else None
            row[m + " std"] = statistics.stdev(values) if len(values) > 1 else None
        out.append(row)
    return out


def mean_std(row: dict, metric: str, spread: str = " std") -> str:
    """`-102 ± 2`: the value and its spread (a seed group's std, or a run's own standard error: SE_SUFFIX)."""
    if row.get(metric) is None:
        return ""
    return fmt(row[metric]) + ("" if row.get(metric + spread) is None else f" ± {row[metric + spread]:.2g}")


def find_runs(root: Path) -> list[Path]:
    """Run directories under root: those with Hydra's .hydra/overrides.yaml or a metrics.json."""
    found = {p.parent.parent for p in root.rglob(".hydra/overrides.yaml")} | {p.parent for p in root.rglob(METRICS)}
    return sorted(found, key=lambda p: [_natural(s) for s in p.relative_to(root).parts])


def _natural(name: str) -> tuple:
    """Sort key of a directory name: sweep jobs `2_beta=4` before `10_beta=1` (and `2` before `10`)."""
    number = name.split("_", 1)[0]
    return (int(number), name) if number.isdigit() else (float("inf"), name)


def _by_value(value: str) -> tuple:
    """Sort key of a setting's value: numbers by value (beta=1, 4, 16), then text, then unset."""
    try:
        return (0, float(value), "")
    except ValueError:
        return (1 if value else 2, 0.0, value)


def read_run(run_dir: Path, root: Path) -> dict:
    row: dict = {"run": str(run_dir.relative_to(root)) or "."}
    overrides_file = run_dir / ".hydra" / "overrides.yaml"
    if overrides_file.is_file():
        for item in yaml.safe_load(overrides_file.read_text()) or []:
            key, _, value = str(item).partition("=")
            if not key.startswith("hydra"):
                row[key.lstrip("+~")] = value
    if (run_dir / METRICS).is_file():
        metrics = read_metrics(run_dir)
        row["status"] = "finished"
        row.update({k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
    else:
        row["status"] = "unfinished" + (" (has checkpoint)" if checkpoint_path(run_dir).is_file() else "")
    return row


def fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.6g}"
    return "" if v is None else str(v)


def table(rows: list[dict], columns: list[str]) -> tuple[str, str]:
    """(aligned text, Markdown)."""
    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    text = "\n".join(
        ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
        + ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    )
    md = "\n".join(
        ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        + ["| " + " | ".join(row) + " |" for row in cells]
    )
    return text, md


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vae-report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "path", type=Path, nargs="+", help="sweep directories (outputs/multirun/<date>/<time>) or outputs/"
    )
    parser.add_argument(
        "--metric",
        default=None,
        help="metric to plot and tabulate, with its companions <metric>_<name> beside it (e.g. "
        "test/impute_rmse_mice beside test/impute_rmse; default: test/log_likelihood or test/elbo)",
    )
    parser.add_argument("--x", default=None, help="swept parameter on the x axis (default: the first that varies)")
    parser.add_argument(
        "--group", default=None, help="one line per value of this parameter (default: the second that varies)"
    )
    parser.add_argument(
        "--images",
        default=None,
        help="comma-separated pictures to show side by side across runs, e.g. latent_density,samples "
        "(montage_<name>.png)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="where report.md/.csv/.png go (default: path, or the paths' parent)"
    )
    return parser


def runs_under(paths: list[Path]) -> tuple[Path, list[Path]]:
    """The runs' common root and the run directories under `paths`; none (with an error printed) when there are none.
    Several sweeps (a beta sweep, a beta-TCVAE sweep) make one table; runs are named relative to their common parent."""
    missing = [str(p) for p in paths if not p.is_dir()]
    root = Path(os.path.commonpath(paths)) if len(paths) > 1 else paths[0]
    runs = [] if missing else list(dict.fromkeys(r for p in paths for r in find_runs(p)))
    if not runs:
        print(
            f"vae-report: error: not a directory: {', '.join(missing)}."
            if missing
            else f"vae-report: error: no vae-run runs under {', '.join(map(str, paths))} (a run directory holds "
            ".hydra/overrides.yaml or metrics.json).",
            "Pass a sweep directory (outputs/multirun/<date>/<time>), several, or the outputs/ folder.",
            file=sys.stderr,
        )
    return root, runs


def columns_of(rows: list[dict], metric: str | None) -> tuple[list[str], list[str], str, list[str]]:
    """(params shown, params that vary, the sentence naming the settings every run shares, metrics shown): a setting
    every run shares is said once under the table, not repeated in a column of every row."""
    params = [
        k
        for k in dict.fromkeys(k for r in rows for k in r)
        if "/" not in k and k not in ("run", "status", "steps", *RUN_INFO)
    ]
    varying = [p for p in params if len({str(r.get(p)) for r in rows}) > 1]
    constant = [f"{p}={fmt(rows[0].get(p))}" for p in params if p not in varying]
    same = f"\nSame in every run: {', '.join(constant)}." if constant and len(rows) > 1 else ""
    params = varying if len(rows) > 1 else params
    metrics = [m for m in DEFAULT_METRICS if any(m in r for r in rows)]
    if metric and metric not in metrics:
        metrics.append(metric)
        # its companions, e.g. test/impute_rmse_mean, _knn, _mice beside test/impute_rmse (timings left out)
        companions = {k for r in rows for k in r if k.startswith(metric + "_") and not k.endswith("_s")}
        metrics += sorted(companions)
    return params, varying, same, metrics


def write_tables(rows: list[dict], params: list[str], metrics: list[str], same: str, out: Path, by_seed: bool):
    """report.md and report.csv (one row per run; by seed: one per setting, the runs in runs.md and runs.csv); the
    text table to print and the rows to plot."""
    columns = ["run"] + params + ["status"] + metrics
    text, md = table([{**r, **{m: mean_std(r, m, SE_SUFFIX) for m in metrics}} for r in rows], columns)
    all_columns = columns + sorted({k for r in rows for k in r} - set(columns))
    write_csv(out / ("runs.csv" if by_seed else "report.csv"), rows, all_columns)
    (out / ("runs.md" if by_seed else "report.md")).write_text(md + "\n" + same + "\n")
    if not by_seed:
        return text, rows
    plotted = group_by_seed(rows, params, metrics)
    settings = [p for p in params if is_setting(p)]
    shown = [{**g, **{m: mean_std(g, m) for m in metrics + ["best_epoch"]}} for g in plotted]
    text, md = table(shown, settings + ["n", "seeds"] + metrics + ["best_epoch"])
    write_csv(
        out / "report.csv",
        plotted,
        settings + ["n", "runs", "seeds"] + [c for m in metrics + list(RUN_INFO) for c in (m, m + " std")],
    )
    (out / "report.md").write_text(md + "\n" + same + "\n")
    return text, plotted


def draw(args, plotted: list[dict], metric: str | None, candidates: list[str], out: Path, labelled) -> None:
    """The metric against the x parameter (one line per value of the group parameter), and the montages asked for."""
    x = args.x or (candidates[0] if candidates else None)
    group = args.group or next((p for p in candidates if p != x), None)
    if metric and x:
        name = f"report_{metric.replace('/', '_')}_vs_{x.replace('/', '_')}.png"
        if plot(plotted, metric, x, group, out / name):
            print(f"plot: {out / name}")
        else:
            print(f"no finished run has both {metric} and {x}; no plot")
    for picture in [p.strip() for p in (args.images or "").split(",") if p.strip()]:
        shown = montage(labelled, picture, out / f"montage_{picture}.png")
        print(
            f"montage of {picture}.png from {shown} runs: {out / f'montage_{picture}.png'}"
            if shown
            else f"no run has {picture}.png; no montage (pictures: the .png files in a run directory)"
        )


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    root, runs = runs_under([p.expanduser().resolve() for p in args.path])
    if not runs:
        return 2
    rows = [read_run(r, root) for r in runs]
    params, varying, same, metrics = columns_of(rows, args.metric)
    out = (args.out or root).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    by_seed = "seed" in varying
    text, plotted = write_tables(rows, params, metrics, same, out, by_seed)
    print(text + same)
    finished = sum(r["status"] == "finished" for r in rows)
    grouped = f", {len(plotted)} settings (mean ± std over seeds; per run: runs.md, runs.csv)" if by_seed else ""
    print(f"\n{len(rows)} runs ({finished} finished){grouped}; wrote {out / 'report.md'} and {out / 'report.csv'}")
    metric = args.metric or next((m for m in ("test/log_likelihood", "test/elbo") if m in metrics), None)
    candidates = [p for p in varying if not (by_seed and p == "seed")]
    labelled = [(", ".join(f"{p}={fmt(r.get(p))}" for p in candidates) or r["run"], run) for r, run in zip(rows, runs)]
    draw(args, plotted, metric, candidates, out, labelled)
    return 0


if __name__ == "__main__":
    sys.exit(main())
