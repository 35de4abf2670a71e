"""Reproduce the published log-likelihood table (Exemplar-VAE, Norouzi et al. 2020, Table 1: test log p(x) in nats,
importance sampling with 5000 samples) with the reference protocol (configs/experiment/ll_protocol.yaml), for every
prior and several seeds, and write reproduction/REPRODUCTION.md.

    python reproduction/reproduce.py                 # Fashion-MNIST (+ MNIST where its files exist)
    python reproduction/reproduce.py --priors gaussian vamp --seeds 14 15 16 --jobs 2
    python reproduction/reproduce.py --report-only   # just rewrite the table from the runs
    python reproduction/reproduce.py --priors gaussian --seeds 14 --ablate all  # each protocol part off in turn
    python reproduction/reproduce.py --priors gaussian vamp --posteriors iaf mixture  # richer q(z|x) beside

Every (dataset, prior, seed) is one `vae-run experiment=ll_<dataset>_<prior> seed=<seed>` in
<root>/ll_<dataset>_<prior>/seed<seed>. Re-running the script is resuming it: a finished run (metrics.json) is
skipped, an interrupted one continues from checkpoints/last.pt (vae-run's own run-directory policy), so the table
can be built over several sessions or machines. Rows that have not finished say how far they got.

A finished run's numbers are also kept in the ledger, reproduction/<run>.json (committed with the code): the table is
built from the run directories and the ledger together, so it outlives a run directory (a wiped machine, a GPU
borrowed for a day) and rows finished on different machines land in one table. The same table is written into
docs/reproduction.md between README_MARKERS (when --out is the repository's reproduction/REPRODUCTION.md, or with
--readme), so the docs' copy is never edited by hand.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEEDS = [14, 15, 16]  # the reference code's default seed and the next two
LEDGER = Path(__file__).resolve().parent  # reproduction/: this script, the ledger, REPRODUCTION.md
# What the ledger keeps of a finished run's metrics.json.
KEPT = (
    "test/log_likelihood",
    "test/log_likelihood_stderr",
    "test/elbo",
    "best_epoch",
    "epochs",
    "epoch_time_s",
    "train_time_s",
    "device",
    "test/active_units",
)
PRIORS = ["gaussian", "vamp", "mog", "gtm", "gtm_vamp", "flow"]
POSTERIORS = ["iaf", "mixture", "full", "lowrank"]  # beside the protocol's Gaussian posterior (--posteriors)
DATASETS = {"fashion_mnist": "Fashion-MNIST", "mnist": "dynamic MNIST"}
# One protocol part off at a time (what the part is replaced by): where a row misses the paper, these show which part
# the gap comes from. Each runs as ll_<dataset>_<prior>/ablate-<name>/seed<seed>.
ABLATIONS = {
    "adam": ["optimizer=adam"],  # plain Adam instead of AdamNormGrad
    "analytic_kl": ["objective.analytic_kl=true"],  # closed-form KL where the prior has one
    "step_warmup": ["objective.warmup_per_epoch=false"],  # warm-up ramped per step, not per epoch
    "no_warmup": ["objective.warmup_epochs=0", "objective.warmup_per_epoch=false"],
    "no_logvar_clamp": ["architecture.logvar_clamp=null"],
    "no_prob_clamp": ["likelihood.prob_clamp=null"],
    "torch_init": ["architecture.init=torch"],  # PyTorch's default Linear initialisation instead of He
    "shuffled_split": ["dataset.split_seed=0"],  # a seeded random validation set instead of the file's tail
    "vamp_init_0.05": ["prior.init_mean=0.05", "prior.init_std=0.01"],  # vae_vampprior's pseudo-input init
}
# Exemplar-VAE (NeurIPS 2020) Table 1: mean ± std over their runs, nats.
PAPER = {
    ("fashion_mnist", "gaussian"): (-228.70, 0.15),
    ("fashion_mnist", "vamp"): (-227.35, 0.05),
    ("mnist", "gaussian"): (-84.45, 0.12),
    ("mnist", "vamp"): (-82.43, 0.06),
}


def run_dir(
    root: Path, dataset: str, prior: str, seed: int, ablation: str | None = None, posterior: str | None = None
) -> Path:
    """<root>/ll_<dataset>_<prior>[/ablate-<name> | /posterior-<name>]/seed<seed>."""
    base = root / f"ll_{dataset}_{prior}"
    if ablation is not None:
        base = base / f"ablate-{ablation}"
    if posterior is not None:
        base = base / f"posterior-{posterior}"
    return base / f"seed{seed}"


def command(dataset: str, prior: str, seed: int, out: Path, threads: int | None, extra: list[str]) -> list[str]:
    exe = shutil.which("vae-run") or str(Path(sys.executable).parent / "vae-run")
    cmd = [
        exe,
        f"experiment=ll_{dataset}_{prior}",
        f"seed={seed}",
        f"hydra.run.dir={out}",
        "logger.progress_bar=false",
        *extra,
    ]
    return cmd + ([f"trainer.num_threads={threads}"] if threads else [])


def have_mnist() -> bool:
    """Whether MNIST's files are on this machine (torchvision's layout in the dataset's root)."""
    from vae_runner.config.compose import build_option
    from vae_runner.errors import UserError

    try:
        build_option("dataset", "mnist")  # its yaml's root and system folders
        return True
    except UserError:
        return False


def ledger_path(ledger: Path, out: Path) -> Path:
    """The ledger file of the run in `out` (<root>/ll_<dataset>_<prior>[/ablate-<name>|/posterior-<name>]/seed<s>)."""
    variant = out.parent.name.startswith(("ablate-", "posterior-"))
    parts = [out.parent.name, out.name] if variant else [out.name]
    base = out.parent.parent if len(parts) == 2 else out.parent
    return ledger / ("_".join([base.name, *parts]) + ".json")


def keep(ledger: Path, out: Path, metrics: dict) -> dict:
    """A finished run's numbers, where it ran, when and its command line: written into the ledger once, read after."""
    path = ledger_path(ledger, out)
    if path.is_file():
        return json.loads(path.read_text())
    overrides = out / ".hydra" / "overrides.yaml"
    entry = {key: metrics[key] for key in KEPT if key in metrics}
    entry["command"] = (
        "vae-run " + " ".join(line.strip()[2:] for line in overrides.read_text().splitlines() if line.startswith("- "))
        if overrides.is_file()
        else ""
    )
    entry["run_dir"] = str(out)
    from vae_runner.runs.directory import METRICS

    entry["recorded"] = f"{datetime.datetime.fromtimestamp((out / METRICS).stat().st_mtime):%Y-%m-%d %H:%M}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entry, indent=1) + "\n")
    return entry


def progress(out: Path, ledger: Path | None = None) -> dict:
    """A run's state: its metrics.json when finished (kept in the ledger as well), else the ledger's record of it,
    else what its last checkpoint says."""
    from vae_runner.runs.checkpoint import load_checkpoint
    from vae_runner.runs.directory import METRICS, checkpoint_path, read_metrics

    if (out / METRICS).is_file():
        metrics = read_metrics(out)
        return {"status": "finished", **metrics, **(keep(ledger, out, metrics) if ledger is not None else {})}
    if ledger is not None and ledger_path(ledger, out).is_file():
        return {"status": "finished", **json.loads(ledger_path(ledger, out).read_text())}
    last = checkpoint_path(out)
    if not last.is_file():
        return {"status": "not started"}
    state = load_checkpoint(last)
    return {
        "status": "training",
        "epoch": state["epoch"],
        "best_epoch": state.get("best_epoch"),
        "best_val_elbo": state["best_val_elbo"],
    }


def fmt_ms(values: list[float]) -> str:
    if not values:
        return ""
    mean = statistics.fmean(values)
    return f"{mean:.2f}" + (f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else "")


def per_seed(runs: list[dict], key: str, spec: str = "{}") -> str:
    """One finished row's `key` for each of its seeds, "/"-separated; "—" for a run that did not record it."""
    return "/".join(spec.format(r[key]) if key in r else "—" for r in runs)


def ablation_rows(root: Path, ledger: Path, datasets: list[str], priors: list[str], seeds: list[int]) -> list[str]:
    """Markdown rows of the ablations that have runs: the protocol with one part off vs the full protocol."""
    rows = []
    for dataset in datasets:
        for prior in priors:
            full = [progress(run_dir(root, dataset, prior, s), ledger) for s in seeds]
            full_ll = [r["test/log_likelihood"] for r in full if r["status"] == "finished"]
            for name, overrides in ABLATIONS.items():
                outs = [run_dir(root, dataset, prior, s, name) for s in seeds]
                if not outs[0].parent.is_dir() and not any(ledger_path(ledger, out).is_file() for out in outs):
                    continue
                runs = [progress(out, ledger) for out in outs]
                lls = [r["test/log_likelihood"] for r in runs if r["status"] == "finished"]
                diff = f"{statistics.fmean(lls) - statistics.fmean(full_ll):+.2f}" if lls and full_ll else ""
                waiting = [f"epoch {r['epoch']}" for r in runs if r["status"] == "training"]
                rows.append(
                    f"| {DATASETS[dataset]} | {prior} | {name} | `{' '.join(overrides)}` | {fmt_ms(lls)} | "
                    f"{diff} | {len(lls)} | {', '.join(waiting)} |"
                )
    return rows


def posterior_rows(root: Path, ledger: Path, datasets: list[str], priors: list[str], seeds: list[int]) -> list[str]:
    """Markdown rows of the protocol with a richer posterior (`--posteriors`) beside the Gaussian posterior's:
    log p(x), the ELBO, the gap log p(x) - ELBO (amortisation + approximation) and the active units."""
    rows = []
    for dataset in datasets:
        for prior in priors:
            gaussian = [progress(run_dir(root, dataset, prior, s), ledger) for s in seeds]
            base = [r["test/log_likelihood"] for r in gaussian if r["status"] == "finished"]
            block = []
            for name in ["gaussian", *POSTERIORS]:
                outs = [run_dir(root, dataset, prior, s, posterior=None if name == "gaussian" else name) for s in seeds]
                if name != "gaussian" and not outs[0].parent.is_dir():
                    if not any(ledger_path(ledger, out).is_file() for out in outs):
                        continue
                runs = [progress(out, ledger) for out in outs]
                done = [r for r in runs if r["status"] == "finished"]
                lls = [r["test/log_likelihood"] for r in done]
                diff = f"{statistics.fmean(lls) - statistics.fmean(base):+.2f}" if lls and base else ""
                gaps = [r["test/log_likelihood"] - r["test/elbo"] for r in done if "test/elbo" in r]
                waiting = [f"epoch {r['epoch']}" for r in runs if r["status"] == "training"]
                block.append(
                    f"| {DATASETS[dataset]} | {prior} | {name} | {fmt_ms(lls)} | {diff} | "
                    f"{fmt_ms([r['test/elbo'] for r in done if 'test/elbo' in r])} | {fmt_ms(gaps)} | "
                    f"{per_seed(done, 'test/active_units')} | {len(done)} | {', '.join(waiting)} |"
                )
            rows += block if len(block) > 1 else []  # a prior with no richer posterior on record: no row
    return rows


# docs/reproduction.md's copy of the table lies between these two lines; report() rewrites it with REPRODUCTION.md.
README_MARKERS = (
    "<!-- the table below is written by reproduction/reproduce.py with REPRODUCTION.md: edit the script, not it -->",
    "<!-- end of the table written by reproduction/reproduce.py -->",
)


def write_readme_table(readme: Path, table: list[str], when: str) -> None:
    """Put `table` between README_MARKERS in `readme`, in place of what was there."""
    text = readme.read_text()
    start, end = README_MARKERS
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        raise SystemExit(
            f"{readme} has no single pair of the lines\n{start}\n{end}\naround its reproduction table, so the table "
            "was written only to REPRODUCTION.md. Put the two lines where the README's table belongs, or pass "
            "--readme none."
        )
    head, rest = text.split(start)
    tail = rest.split(end)[1]
    where = "[REPRODUCTION.md](reproduction/REPRODUCTION.md) has the status note, and the ablations where run"
    block = [start, f"As of {when} ({where}):", ""]
    readme.write_text(head + "\n".join([*block, *table, end]) + tail)


def report(
    root: Path,
    ledger: Path,
    datasets: list[str],
    priors: list[str],
    seeds: list[int],
    path: Path,
    note: str,
    readme: Path | None = None,
) -> str:
    intro = (
        "Test log p(x) in nats (importance sampling, 5000 samples per test image) with the reference protocol "
        "of the VampPrior / Exemplar-VAE code (`configs/experiment/ll_protocol.yaml`; docs/reproduction.md). Paper: "
        "Exemplar-VAE (Norouzi et al., NeurIPS 2020), Table 1. Ours: mean ± "
        "sample standard deviation over the finished seeds (n)."
    )
    now = f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}"
    written = (
        f"Written {now} by `python reproduction/reproduce.py --report-only "
        f"--root {root}`. Run directories: `{root}/ll_<dataset>_<prior>/seed<seed>`; finished runs are kept in "
        f"`{ledger.relative_to(ROOT) if ledger.is_relative_to(ROOT) else ledger}/` (one JSON per run, with its "
        "command)."
    )
    lines = ["# Reproducing published log-likelihoods", "", intro, "", written, ""]
    if note:
        lines += [note, ""]
    table = [
        "| dataset | prior | paper | ours | difference | n | best epoch | epochs | s/epoch | device | status |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for dataset in datasets:
        for prior in priors:
            runs = {s: progress(run_dir(root, dataset, prior, s), ledger) for s in seeds}
            done = [r for r in runs.values() if r["status"] == "finished"]
            lls = [r["test/log_likelihood"] for r in done]
            paper = PAPER.get((dataset, prior))
            paper_text = f"{paper[0]:.2f} ± {paper[1]:.2f}" if paper else "—"
            diff = f"{statistics.fmean(lls) - paper[0]:+.2f}" if paper and lls else ""
            status = []
            for s, r in runs.items():
                if r["status"] == "training":
                    status.append(
                        f"seed {s}: epoch {r['epoch']}, best val ELBO {r['best_val_elbo']:.2f} "
                        f"(epoch {r['best_epoch']})"
                    )
                elif r["status"] == "not started":
                    status.append(f"seed {s}: not started")
                else:
                    when = f" ({r['recorded'][:10]})" if "recorded" in r else ""
                    status.append(f"seed {s}: {r['test/log_likelihood']:.2f}{when}")
            devices = sorted({r.get("device", "?") for r in done})
            # s/epoch per seed, like the epochs: seeds may have trained on different devices or thread counts
            table.append(
                f"| {DATASETS[dataset]} | {prior} | {paper_text} | {fmt_ms(lls)} | {diff} | {len(done)} | "
                f"{per_seed(done, 'best_epoch')} | {per_seed(done, 'epochs')} | "
                f"{per_seed(done, 'epoch_time_s', '{:.2f}')} | {', '.join(devices)} | {'; '.join(status)} |"
            )
    runs_line = (
        f"Each row's runs: `vae-run experiment=ll_<dataset>_<prior> seed=<seed>` (seeds "
        f"{' '.join(map(str, seeds))}); `vae-report {root}` groups them over seeds."
    )
    lines += [*table, "", runs_line, ""]
    ablations = ablation_rows(root, ledger, datasets, priors, seeds)
    if ablations:
        explain = (
            "Each row: the protocol with the overrides shown (`--ablate <name>`); the difference is to the "
            "full protocol's mean over the same seeds."
        )
        lines += [
            "## Ablations: one protocol part off",
            "",
            explain,
            "",
            "| dataset | prior | part off | overrides | ours | vs protocol | n | unfinished |",
            "|---|---|---|---|---|---|---|---|",
            *ablations,
            "",
        ]
    posteriors = posterior_rows(root, ledger, datasets, priors, seeds)
    if posteriors:
        lines += [
            "## Richer posteriors",
            "",
            "Each row: the protocol with `posterior=<name>` (`--posteriors <name>`); the difference is to the "
            "Gaussian posterior's mean over the same seeds; gap = log p(x) - ELBO, the amortisation and "
            "approximation gap that a richer q can close.",
            "",
            "| dataset | prior | posterior | log p(x) | vs Gaussian q | ELBO | gap | active units | n | unfinished |",
            "|---|---|---|---|---|---|---|---|---|---|",
            *posteriors,
            "",
        ]
    text = "\n".join(lines)
    path.write_text(text)
    if readme is not None:
        write_readme_table(readme, table, now)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=ROOT / "outputs" / "reproduce", help="where the runs live")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--priors", nargs="+", default=PRIORS, choices=PRIORS)
    parser.add_argument("--seeds", nargs="+", type=int, default=SEEDS)
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (CPU: each gets cores // jobs threads)")
    parser.add_argument("--report-only", action="store_true", help="only write reproduction/REPRODUCTION.md")
    parser.add_argument(
        "--ablate",
        nargs="+",
        default=[],
        choices=["all", *ABLATIONS],
        help="also run the protocol with each named part switched off (all: every one)",
    )
    parser.add_argument(
        "--posteriors",
        nargs="+",
        default=[],
        choices=POSTERIORS,
        help="also run the protocol with each of these posteriors (posterior=<name>) in place of the Gaussian",
    )
    parser.add_argument("--out", type=Path, default=LEDGER / "REPRODUCTION.md")
    parser.add_argument("--ledger", type=Path, default=LEDGER, help="where finished runs are kept (one JSON each)")
    parser.add_argument("--note", default="", help="a paragraph to put above the table")
    parser.add_argument(
        "--readme",
        default=None,
        help="a Markdown page whose table (between README_MARKERS) is rewritten too, or none; default: this "
        "repository's docs/reproduction.md when --out is its reproduction/REPRODUCTION.md, else none",
    )
    parser.add_argument("extra", nargs="*", help="further vae-run overrides (after --), e.g. trainer.device=cuda")
    args = parser.parse_args()
    datasets = [d for d in args.datasets if d != "mnist" or have_mnist()]
    note = args.note
    if args.readme is None:
        ours = args.out.resolve() == (LEDGER / "REPRODUCTION.md").resolve()
        readme = ROOT / "docs" / "reproduction.md" if ours else None
    else:
        readme = None if args.readme == "none" else Path(args.readme)
    if "mnist" in args.datasets and "mnist" not in datasets:
        missing = (
            "Dynamic MNIST rows: MNIST's files are not on this machine (~/.cache/vae-runner/data/MNIST/raw, "
            "torchvision's layout; no download here), so they were not run."
        )
        print(missing, file=sys.stderr)
        note = f"{note}\n\n{missing}" if note else missing
    if not args.report_only:
        threads = max(1, (os.cpu_count() or 1) // args.jobs) if args.jobs > 1 else None
        ablations = list(ABLATIONS) if "all" in args.ablate else args.ablate
        todo = [
            (d, p, s, a, None)
            for s in args.seeds
            for d in datasets
            for p in args.priors
            for a in [None, *ablations]
            if a != "vamp_init_0.05" or p == "vamp"
        ]
        todo += [(d, p, s, None, q) for s in args.seeds for d in datasets for p in args.priors for q in args.posteriors]

        def one(job):
            d, p, s, a, q = job
            out = run_dir(args.root, d, p, s, a, q)
            if progress(out, args.ledger)["status"] == "finished":
                print(f"{out}: finished ({ledger_path(args.ledger, out)})", flush=True)
                return
            out.parent.mkdir(parents=True, exist_ok=True)
            extra = args.extra + (ABLATIONS[a] if a else []) + ([f"posterior={q}"] if q else [])
            with open(out.parent / f"seed{s}.log", "a") as log:
                done = subprocess.run(command(d, p, s, out, threads, extra), stdout=log, stderr=log, check=False)
            print(f"{out}: exit {done.returncode}", flush=True)
            progress(out, args.ledger)  # a finished run goes into the ledger now

        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(one, todo))
    # the table covers every prior and seed on record, not only those this call ran (a subset would shrink it)
    seeds = sorted(set(SEEDS) | set(args.seeds))
    print(report(args.root, args.ledger, datasets, PRIORS, seeds, args.out, note, readme))


if __name__ == "__main__":
    main()
