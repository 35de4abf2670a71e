"""The final evaluation's disentanglement part, for datasets that know their generative factors (dataset=dsprites,
factor_squares): the scores of evaluation/disentanglement.py on the model's posterior means, each timed, written
into the metrics as `test/mig`, `test/sap`, `test/dci_disentanglement`, `test/dci_completeness`,
`test/dci_informativeness`, `test/beta_vae_score`, `test/factor_vae_score` (the last two only where the dataset can
render any factor combination) and MIG per factor (`test/mig_<factor>`), with the sample sizes and seed that
produced them; and the factor x latent mutual information as numbers and a heat map, whose best factor per dimension
labels the traversals.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from vae_runner.data import Split
from vae_runner.evaluation import diagnostics as dx
from vae_runner.evaluation import disentanglement as dis
from vae_runner.evaluation.pictures import heatmap_picture


def codes_of(model, data, batch_size: int):
    """factor indices (numpy) -> posterior means (numpy): render, then encode on the model's device."""
    device = next(model.parameters()).device

    def encode(indices: np.ndarray) -> np.ndarray:
        x = data.render(torch.from_numpy(indices)).to(device)
        mu = dx.encode_split(model, Split(x), batch_size).mean
        return mu.float().cpu().numpy()

    return encode


def dimension_labels(share: np.ndarray, names, floor: float = 0.1, shared: float = 0.8) -> list[str]:
    """Each dimension's factor for its traversal row: the factor with the largest share of its entropy in it (at least
    `floor`), joined by those within `shared` of it ("shape/scale": one dimension holding both); "" where none."""
    labels = []
    for row in np.asarray(share):
        order = [k for k in np.argsort(-row, kind="stable") if row[k] >= max(floor, shared * row.max())]
        labels.append("/".join(names[k] for k in order))
    return labels


def factor_mi(z: np.ndarray, f: np.ndarray, names, bins: int, metrics: dict, logger, step: int) -> None:
    """I(z_d; v_k) / H(v_k) as `test/factor_mutual_information` (D lists of F) and a heat map; `test/mig_<factor>`:
    MIG's summand of each factor; `test/dim_factor`: the traversal labels (dimension_labels)."""
    share = dis.normalised_mutual_information(z, f, bins)
    metrics["test/factor_mutual_information"] = np.round(share, 4).tolist()
    metrics.update({f"test/mig_{name}": float(gap) for name, gap in zip(names, dis.factor_gaps(share))})
    metrics["test/dim_factor"] = dimension_labels(share, names)
    if logger is not None:
        rows = [f"z{d}" for d in range(len(share))]
        title = "I(z_d; factor) / H(factor) (test)"
        picture = heatmap_picture(share, rows, list(names), title)
        logger.image("test/factor_mutual_information", picture, step, "factor_mutual_information.png")


@torch.no_grad()
def disentanglement_scores(model, data, cfg, metrics: dict, logger=None, step: int = 0) -> None:
    ev, batch_size = cfg.evaluation.disentanglement, cfg.trainer.eval_batch_size
    n = min(ev.points, len(data.train))
    n_test = min(ev.points // 2, len(data.test))
    z = dx.encode_split(model, data.train, batch_size, limit=n).mean
    z_test = dx.encode_split(model, data.test, batch_size, limit=n_test).mean
    z, z_test = z.float().cpu().numpy(), z_test.float().cpu().numpy()
    f, f_test = data.train.factors[:n].cpu().numpy(), data.test.factors[:n_test].cpu().numpy()
    timed: dict[str, float] = {}

    def run(name: str, score):
        start = time.perf_counter()
        value = score()
        timed[name] = round(time.perf_counter() - start, 3)
        return value

    metrics["test/mig"] = run("mig", lambda: dis.mig(z_test, f_test, ev.bins))
    factor_mi(z_test, f_test, data.factor_names, ev.bins, metrics, logger, step)
    metrics["test/sap"] = run("sap", lambda: dis.sap(z, f, z_test, f_test))
    for key, value in run("dci", lambda: dis.dci(z, f, z_test, f_test, ev.trees, ev.seed)).items():
        metrics[f"test/dci_{key}"] = value
    if data.render is not None and data.factor_sizes is not None:
        votes = (codes_of(model, data, batch_size), data.factor_sizes, ev.votes, ev.votes // 2, ev.batch, ev.seed)
        metrics["test/beta_vae_score"] = run("beta_vae", lambda: dis.beta_vae_score(*votes))
        metrics["test/factor_vae_score"] = run("factor_vae", lambda: dis.factor_vae_score(*votes))
    metrics.update({f"test/{name}_time_s": seconds for name, seconds in timed.items()})
    metrics.update({"test/disentanglement_points": n, "test/disentanglement_seed": ev.seed})
