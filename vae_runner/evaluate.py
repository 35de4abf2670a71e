"""Evaluation on a whole split: the objective's terms averaged over examples, in nats per example.

Deterministic: the posterior samples come from a forked RNG seeded with `seed`, so evaluating leaves the training
RNG stream untouched (a resumed run matches an uninterrupted one) and the same model always gets the same numbers.
"""
from __future__ import annotations

import torch

from vae_runner.data import Split, eval_batches


@torch.no_grad()
def evaluate_split(model, objective, split: Split, batch_size: int, seed: int = 0) -> dict[str, float]:
    was_training = model.training
    model.eval()
    device = split.x.device
    devices = [device] if device.type == "cuda" else []
    sums = None
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for x, _ in eval_batches(split, batch_size):
            terms = objective(model, x)
            batch = torch.stack([t.sum() for t in terms.values()])  # (T,), summed on device
            sums = batch if sums is None else sums + batch
    model.train(was_training)
    return {k: v / len(split) for k, v in zip(terms.keys(), sums.tolist())}
