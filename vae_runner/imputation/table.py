"""`vae-run mode=impute ckpt=<run>`: a run trained on a CSV table of one's own (`dataset.table=<file.csv>`) fills
that file's missing cells, for analysis downstream.

Two files go into the new run directory, every row of the table in the file's order, in the file's units:
- `imputed.csv`: the single imputation, E[x_mis | x_obs] (a binary column's cell: 1 where its imputed probability
  exceeds 1/2, else 0);
- `imputations.csv`: `evaluation.imputation.draws` multiple imputations in long format (a first column `imputation`,
  1..M, then the table; the layout of R mice's `complete(action="long")`): fit the analysis to each and pool the M
  results with Rubin's rules, so its standard errors carry the imputation uncertainty.
Observed cells are the file's values in both. The estimator is the final evaluation's
(imputation/importance.py: `evaluation.imputation.samples` proposals from q(z | x_obs),
importance-weighted), on the run's standardisation (the observed entries of its training split), seeded by `seed`.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from vae_runner.data.csv_table import is_table_file, read_table
from vae_runner.errors import UserError
from vae_runner.imputation.importance import importance_imputations

log = logging.getLogger(__name__)


def impute_table(cfg: DictConfig, state: dict, data, model, device: torch.device, run_dir: Path) -> dict:
    """Fill the missing cells of the table `cfg`'s run was trained on, with that run's `model` (build.from_checkpoint
    gives these), into imputed.csv and imputations.csv in `run_dir`."""
    table = OmegaConf.select(cfg, "dataset.table", default=None)
    if cfg.dataset.name != "tabular" or not is_table_file(str(table)):
        raise UserError(
            f"mode=impute fills the missing cells of the CSV table a run was trained on (dataset=tabular "
            f"dataset.table=<file.csv>); {state['path']} was trained on dataset={cfg.dataset.name}"
            f"{f' dataset.table={table}' if table else ''}. For other data, impute NaN entries with the Python API: "
            f"vae_runner.load(<run dir>).impute(x)."
        )
    x, columns, _ = read_table(str(table), drop_empty=False, dtype=torch.float64)
    if x.shape[1] != data.shape[0]:
        raise UserError(f"{table} now has {x.shape[1]} columns; the run was trained on {data.shape[0]}.")
    ev, missing = cfg.evaluation.imputation, torch.isnan(x)
    model.accept_missing()
    standard = ((x - data.offset) / data.scale).float().to(device)
    mean, draws, _ = importance_imputations(model, standard, None, ev.samples, ev.draws, cfg.seed)
    mean, draws = (t.cpu().double() * data.scale + data.offset for t in (mean, draws))
    binary = torch.tensor(data.binary_columns)
    mean = torch.where(binary, (mean > 0.5).double(), mean)
    single, multiple = torch.where(missing, mean, x), torch.where(missing, draws, x)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_csv(run_dir / "imputed.csv", columns, single)
    stacked = torch.cat(
        [torch.arange(1, len(multiple) + 1).repeat_interleave(len(x))[:, None], multiple.flatten(0, 1)], 1
    )
    write_csv(run_dir / "imputations.csv", ["imputation", *columns], stacked, integer_first=True)
    log.info(
        "%d missing cells of %s (%d rows) imputed by %s: %s (single imputation) and %s (%d multiple imputations)",
        int(missing.sum()),
        table,
        len(x),
        state["path"],
        run_dir / "imputed.csv",
        run_dir / "imputations.csv",
        len(multiple),
    )
    return {"imputed_cells": int(missing.sum()), "rows": len(x), "imputations": len(multiple)}


def write_csv(path: Path, columns: list[str], rows: torch.Tensor, integer_first: bool = False) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for row in rows.tolist():
            cells = [f"{v:.10g}" for v in row]
            writer.writerow([str(int(row[0])), *cells[1:]] if integer_first else cells)
