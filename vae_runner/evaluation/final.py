"""The final evaluation of a model, run at the end of training and by `vae-run mode=eval`: every number goes into
the returned metrics (-> metrics.json) and TensorBoard, every picture into TensorBoard and a PNG.

Numbers: val/test ELBO terms; `test/log_likelihood` (importance-sampled, K = evaluation.iw_samples) with its
standard error; active units; KL per latent dimension; ELBO surgery; linear-probe and triplet accuracy (labelled
data); MIG, SAP, DCI, BetaVAE and FactorVAE scores (datasets with known factors); imputations of missing entries
beside mean/kNN/MICE (data with missing entries); cross-modal log-likelihoods, accuracies and coherence (several
modalities, evaluation/cross_modal.py). Pictures: samples,
reconstructions, the prior's own, latent traversals, interpolations, latent scatter, KL per dimension.
"""

from __future__ import annotations

import math

import torch

from vae_runner.data import Split, binarize_once
from vae_runner.data.modalities import hide
from vae_runner.evaluation import diagnostics as dx
from vae_runner.evaluation.cross_modal import cross_modal_scores
from vae_runner.evaluation.disentanglement_report import disentanglement_scores
from vae_runner.evaluation.imputation_report import imputation_scores
from vae_runner.evaluation.metrics import evaluate_split, log_likelihood
from vae_runner.evaluation.pictures import (
    bar_picture,
    interpolation_picture,
    latent_scatter_picture,
    log_pictures,
    traversal_picture,
)
from vae_runner.host.cpu_features import chosen_precision
from vae_runner.loggers.console import stage


@torch.no_grad()
def final_report(model, objective, data, cfg, logger, step: int) -> dict:
    ev, seed = cfg.evaluation, cfg.seed
    metrics: dict = {}
    with stage("validation and test ELBO"):
        for split_name in ("val", "test"):
            values = evaluate_split(model, objective, getattr(data, split_name), cfg.trainer.eval_batch_size, seed)
            metrics.update({f"{split_name}/{k}": v for k, v in values.items()})
    model.eval()
    if ev.lean:  # a fit inside a pipeline: the ELBO, and the imputation scores where entries were hidden
        if not data.modalities:
            hidden_entry_scores(model, data, cfg, metrics, logger, step)
        return metrics
    metrics.update(test_log_likelihood(model, data.test, ev, seed))
    with stage("active units, KL per dimension, ELBO surgery"):
        params = dx.encode_params(model, data.test, cfg.trainer.eval_batch_size)
        mu, activity, active = latent_diagnostics(model, params, ev, seed, metrics, logger, step)
    extra_scores(model, data, cfg, mu, metrics, logger, step)
    with stage("pictures"):
        pictures(model, data, cfg, logger, step, mu, activity, active, metrics)
    return metrics


def extra_scores(model, data, cfg, mu, metrics: dict, logger, step: int) -> None:
    """What the data allow beyond the ELBO: the probe (labels), cross-modal scores (modalities), imputation scores
    (hidden entries), disentanglement (known factors)."""
    if data.test.y is not None and data.train.y is not None:
        linear_probe_and_triplets(model, data, cfg, mu, metrics)
    if data.modalities:
        with stage("cross-modal log-likelihoods, accuracies and coherence"):
            cross_modal_scores(model, data, cfg, metrics, logger, step)
    else:
        hidden_entry_scores(model, data, cfg, metrics, logger, step)
    if data.test.factors is not None:
        with stage("disentanglement scores"):
            disentanglement_scores(model, data, cfg, metrics, logger, step)


def hidden_entry_scores(model, data, cfg, metrics: dict, logger, step: int) -> None:
    """Where missing.* hid entries: the imputations scored against what was hidden, beside the baselines'."""
    if data.test.truth is not None:
        with stage("imputations of the missing test entries, and the baselines'"):
            imputation_scores(model, data, cfg, metrics, logger, step)


def test_log_likelihood(model, test, ev, seed: int) -> dict:
    """The importance-sampled log-likelihood of the test images (the first `ev.test_limit`), with its standard error."""
    n_ll = len(test) if ev.test_limit is None else min(ev.test_limit, len(test))
    what = "rows" if test.x.dim() == 2 else "images"  # a table's (N, F) rows
    with stage(f"log-likelihood with K={ev.iw_samples} importance samples on {n_ll} test {what}"):
        ll = log_likelihood(
            model,
            test,
            k=ev.iw_samples,
            chunk_rows=ev.chunk_rows,
            seed=seed,
            limit=ev.test_limit,
            precision=chosen_precision(ev.precision, test.x.device),
        )
    return {
        "test/log_likelihood": ll.mean().item(),
        "test/log_likelihood_stderr": (ll.std() / math.sqrt(len(ll))).item() if len(ll) > 1 else 0.0,
        "test/iw_samples": ev.iw_samples,
        "test/log_likelihood_images": len(ll),
    }


def latent_diagnostics(model, params, ev, seed: int, metrics: dict, logger, step: int):
    """Active units, KL per dimension (and its picture) and ELBO surgery of the test codes (the encoder's outputs
    `params`) into `metrics`; returns the codes (the posterior means), the dimensions' activity and the active ones."""
    q = model.variational(params)
    mu = q.mean
    activity, active = dx.active_units(mu, ev.active_threshold)
    metrics.update(
        {
            "test/active_units": len(active),
            "test/active_dims": active,
            "test/activity": [round(v, 6) for v in activity.tolist()],
        }
    )
    kl_d = dx.mean_kl_per_dim(model.prior, q, ev.kl_samples, seed)
    if kl_d is not None:
        metrics["test/kl_per_dim"] = [round(v, 6) for v in kl_d.tolist()]
        logger.image(
            "test/kl_per_dim", bar_picture(kl_d, "KL per latent dimension (test)", "nats"), step, "kl_per_dim.png"
        )
    m = min(ev.surgery_points, len(params))
    surgery = dx.elbo_surgery(model.prior, model.variational(params[:m]), ev.surgery_samples, seed)
    if surgery is None:  # posterior=iaf: model/posteriors/iaf.py
        return mu, activity, active
    metrics.update({f"test/{k}": v for k, v in surgery.items() if k in ("avg_kl", "mutual_information", "marginal_kl")})
    metrics.update({"test/surgery_points": m, "test/surgery_samples": ev.surgery_samples})
    return mu, activity, active


def linear_probe_and_triplets(model, data, cfg, mu, metrics: dict) -> None:
    ev, seed = cfg.evaluation, cfg.seed
    n = min(ev.probe_train_points, len(data.train))
    seen_label = bool(data.modalities) and "label" in [name for name, _ in data.modalities]
    what = " (codes of the inputs without their label, which the encoder reads)" if seen_label else ""
    with stage(f"linear probe ({n} training images) and triplets{what}"):
        probe = data.train.take(torch.arange(n, device=data.train.x.device))
        if data.binarize == "dynamic":  # the test set is binarised; so are the probe's training inputs
            probe = binarize_once(probe, seed)
        if seen_label:  # a probe of codes that saw the label would score the label's copy: 0.99 on digits
            probe = Split(hide(probe.x, data.modalities, ["label"]), probe.y)
            test = Split(hide(data.test.x, data.modalities, ["label"]), data.test.y)
            mu = dx.encode_split(model, test, cfg.trainer.eval_batch_size).mean
        train_mu = dx.encode_split(model, probe, cfg.trainer.eval_batch_size).mean
        metrics["test/linear_probe_accuracy"] = dx.linear_probe_accuracy(train_mu, probe.y, mu, data.test.y)
        triplets = dx.fixed_triplets(data.test.y, ev.triplets)
        if len(triplets):
            metrics["test/triplet_accuracy"] = dx.triplet_accuracy(mu, triplets)


def factor_labels(dim_factor: list[str] | None, active: list[int]) -> list[str] | None:
    """The traversal rows' factor names, for active dimensions only: an inactive dimension's means barely move, and
    binning them can still find a little mutual information with some factor."""
    return None if dim_factor is None else [name if d in active else "" for d, name in enumerate(dim_factor)]


# How a number was computed (sample sizes, counts, seeds), not a result: in metrics.json, never a logger's scalar (a
# one-point chart among the results, and a metric column in TensorBoard's HParams tab).
HOW_COMPUTED = (
    "test/iw_samples",
    "test/log_likelihood_images",
    "test/surgery_points",
    "test/surgery_samples",
    "test/disentanglement_points",
    "test/disentanglement_seed",
    "test/impute_draws",
    "test/impute_entries",
    "test/impute_rows",
    "test/impute_samples",
)


def final_scalars(metrics: dict) -> dict[str, float]:
    """The final numbers a logger charts: the test/ results that are numbers, not the counts in HOW_COMPUTED."""
    return {
        k: v
        for k, v in metrics.items()
        if k.startswith("test/") and isinstance(v, (int, float)) and k not in HOW_COMPUTED
    }


def pictures(model, data, cfg, logger, step: int, mu, activity, active, metrics: dict) -> None:
    ev, seed = cfg.evaluation, cfg.seed
    logger.scalars(final_scalars(metrics), step)
    log_pictures(model, data, logger, logger.n_images, step, seed, prefix="test/")
    if data.is_image:
        dims = active + [d for d in torch.argsort(activity, descending=True).tolist() if d not in active]
        logger.image(
            "test/traversals",
            traversal_picture(
                model,
                mu,
                dims[: ev.traversal_dims],
                ev.traversal_steps,
                metrics.get("test/kl_per_dim"),
                factor_labels(metrics.get("test/dim_factor"), active),
            ),
            step,
            "traversals.png",
        )
        x = data.test.floats(slice(0, 2 * ev.interpolations))
        logger.image(
            "test/interpolations",
            interpolation_picture(model, x, mu, ev.interpolations, ev.interpolation_steps),
            step,
            "interpolations.png",
        )
    logger.image(
        "test/latent_scatter", latent_scatter_picture(mu, data.test.y, data.classes), step, "latent_scatter.png"
    )
