"""Cross-modal scores of a multimodal run (`modalities.use`), part of the final evaluation, on the complete test rows
(the truth where modalities were hidden), the first `evaluation.test_limit`:

- conditional log-likelihoods, nats per test example: log p(x_t | x_g) = log p(x_t, x_g) - log p(x_g) for every
  target modality t given each other one (and, with three, given the other two), each term by importance sampling
  with K = `evaluation.imputation.samples` and q(z | the modalities it conditions on) as the proposal (metrics.py's
  estimator on rows with the other modalities hidden: consistent as K grows);
- label accuracy given each other modality: the decoded label's argmax at the posterior mean;
- coherence label -> image: images decoded from one draw z ~ q(z | label), classified by a logistic regression
  fitted to the first `evaluation.probe_train_points` real training images (its accuracy on the real test images
  is reported beside it);
- attributes: RMSE (standardised units) of the decoded attributes given each other modality, and the calibration of
  their M = `evaluation.imputation.draws` multiple imputations (the imputation report's estimator,
  evaluation/imputation_report.py): coverage of the central `evaluation.imputation.level` interval, and CRPS;
- a picture: for each class, images decoded from draws z ~ q(z | label).
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from torch import Tensor

from vae_runner.data import Split
from vae_runner.data.modalities import blocks, hide, image_block
from vae_runner.evaluation.imputation import crps, interval_coverage
from vae_runner.evaluation.metrics import log_likelihood
from vae_runner.evaluation.pictures import image_grid, label_rows
from vae_runner.host.cpu_features import chosen_precision
from vae_runner.imputation.importance import importance_imputations
from vae_runner.rng import seeded


def conditions(names: list[str]) -> list[tuple[str, tuple[str, ...]]]:
    """(target, given) pairs: each target given each other modality, and given all the others when there are three."""
    pairs = [(t, (g,)) for t, g in itertools.permutations(names, 2)]
    if len(names) > 2:
        pairs += [(t, tuple(n for n in names if n != t)) for t in names]
    return pairs


@torch.no_grad()
def cross_modal_scores(model, data, cfg, metrics: dict, logger, step: int) -> None:
    ev, layout = cfg.evaluation, data.modalities
    names, cols = [n for n, _ in layout], {n: c for n, c, _ in blocks(layout)}
    test = data.test
    n = len(test) if ev.test_limit is None else min(ev.test_limit, len(test))
    x, y = (test.x if test.truth is None else test.truth)[:n], test.y[:n]
    only = lambda keep: hide(x, layout, [m for m in names if m not in keep])  # noqa: E731
    cache: dict[frozenset, Tensor] = {}
    precision = chosen_precision(ev.precision, x.device)

    def log_p(keep) -> Tensor:  # (n,) log p(x_keep)
        key = frozenset(keep)
        if key not in cache:
            cache[key] = log_likelihood(
                model,
                Split(only(key)),
                ev.imputation.samples,
                ev.chunk_rows,
                cfg.seed,
                precision=precision,
            )
        return cache[key]

    model.eval()
    for target, given in conditions(names):
        tag = f"given_{'_'.join(given)}"
        metrics[f"test/log_p_{target}_{tag}"] = (log_p({target, *given}) - log_p(given)).mean().item()
        mean = model.decode(model.posterior(only(given)).mean).mean
        if target == "label":
            metrics[f"test/label_accuracy_{tag}"] = (mean[:, cols["label"]].argmax(1) == y).float().mean().item()
        elif target == "attributes":
            error = mean[:, cols["attributes"]] - x[:, cols["attributes"]]
            metrics[f"test/attributes_rmse_{tag}"] = error.pow(2).mean().sqrt().item()
            imp = ev.imputation
            _, draws, _ = importance_imputations(model, only(given), None, imp.samples, imp.draws, cfg.seed)
            truth, drawn = x[:, cols["attributes"]].cpu().numpy(), draws[..., cols["attributes"]].cpu().numpy()
            every = np.ones(truth.shape, bool)
            metrics[f"test/attributes_coverage_{tag}"] = interval_coverage(drawn, truth, every, imp.level)
            metrics[f"test/attributes_crps_{tag}"] = crps(drawn, truth, every)
    if "label" in names:
        label_to_image(model, data, x, y, only, cfg, metrics, logger, step)


def label_to_image(model, data, x, y, only, cfg, metrics: dict, logger, step: int) -> None:
    """Coherence label -> image (the classifier fitted to the first `evaluation.probe_train_points` training rows
    that have their image), and the picture of images given each label."""
    from sklearn.linear_model import LogisticRegression  # where it is used: start-up (tests/test_startup.py)

    layout, seed = data.modalities, cfg.seed
    seen = (~torch.isnan(data.train.x[:, blocks(layout)[0][1]]).all(1)).nonzero()[:, 0]
    seen = seen[: cfg.evaluation.probe_train_points]  # training rows that have their image
    flat = lambda t: image_block(t, layout).flatten(1).cpu().numpy()  # noqa: E731
    classifier = LogisticRegression(max_iter=1000).fit(flat(data.train.x[seen]), data.train.y[seen].cpu().numpy())
    with seeded(x.device, seed):
        generated = model.decode(model.posterior(only(["label"])).sample()).mean
        _, label_cols, (classes,) = next(b for b in blocks(layout) if b[0] == "label")
        per_class = 8
        onehot = torch.eye(classes, device=x.device).repeat_interleave(per_class, 0)
        rows = torch.full((len(onehot), x.shape[1]), float("nan"), device=x.device)
        rows[:, label_cols] = onehot
        pictures = model.decode(model.posterior(rows).sample()).mean
    truth = y.cpu().numpy()
    metrics["test/image_coherence_given_label"] = float((classifier.predict(flat(generated)) == truth).mean())
    metrics["test/coherence_classifier_accuracy"] = float((classifier.predict(flat(x)) == truth).mean())
    grid = image_grid(image_block(pictures, layout), nrow=per_class)
    labels = list(data.classes) if data.classes is not None else [str(c) for c in range(classes)]
    logger.image("test/images_given_label", label_rows(grid, labels), step, "images_given_label.png")
