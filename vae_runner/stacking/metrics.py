"""A stack's members evaluated on one split together: for each member, the numbers `evaluate_split` and
`active_units` give it alone (the same images, each member's own per-image noise from its seed, its own beta in the
reported loss), from one stacked forward pass per batch instead of M.
"""

from __future__ import annotations

import torch

from vae_runner.data import Split, eval_batches
from vae_runner.evaluation.diagnostics import active_units
from vae_runner.rng import STREAM_ELBO, index_noise


@torch.no_grad()
def evaluate_members(
    model, objective, betas: torch.Tensor, split: Split, batch_size: int, seeds: list[int], active_threshold: float
) -> list[dict[str, float]]:
    """model: the stacked VAE (stacking/model.py); betas: (M, 1) each member's KL weight for the reported loss."""
    was_training = model.training
    model.eval()
    sums = None
    mus = []
    start = 0
    m = len(seeds)
    for x, _ in eval_batches(split, batch_size):
        index = torch.arange(start, start + x.shape[0], device=x.device)
        start += x.shape[0]

        def noise(k: int, d: int, index=index) -> torch.Tensor:  # (k, M, B, d): each member's own draws
            return torch.stack([index_noise(seed, STREAM_ELBO, index, range(k), d) for seed in seeds], dim=1)

        xs = x.expand(m, *x.shape)
        terms = objective(model, xs, noise=noise, weight=betas)
        batch = torch.stack([t.sum(-1) for t in terms.values()], 1)  # (M, T)
        sums = batch if sums is None else sums + batch
        mus.append(model.posterior(xs).mean)  # (M, B, D)
    model.train(was_training)
    mu = torch.cat(mus, dim=1)
    results = []
    for i, row in enumerate(sums.tolist()):
        metrics = {k: v / len(split) for k, v in zip(terms.keys(), row)}
        metrics["active_units"] = len(active_units(mu[i], active_threshold)[1])
        results.append(metrics)
    return results
