"""Evaluation on a whole split, in nats per example: the objective's terms, and the importance-sampled
log-likelihood (IWAE bound, Burda et al. 2016) that papers report as "test log-likelihood".

Deterministic: posterior samples come from a forked RNG seeded with `seed`, so evaluating leaves the training RNG
stream untouched (a resumed run matches an uninterrupted one) and the same model always gets the same numbers.
"""
from __future__ import annotations

import math
from contextlib import contextmanager

import torch
import torch.distributions as td

from vae_runner.data import Split, eval_batches
from vae_runner.model.vae import autocast


@contextmanager
def seeded(device: torch.device, seed: int):
    """A forked global RNG seeded with `seed`; the caller's RNG state is restored afterwards."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


@torch.no_grad()
def evaluate_split(model, objective, split: Split, batch_size: int, seed: int = 0) -> dict[str, float]:
    was_training = model.training
    model.eval()
    sums = None
    with seeded(split.x.device, seed):
        for x, y in eval_batches(split, batch_size):
            terms = objective(model, x, y)
            batch = torch.stack([t.sum() for t in terms.values()])  # (T,), summed on device
            sums = batch if sums is None else sums + batch
    model.train(was_training)
    return {k: v / len(split) for k, v in zip(terms.keys(), sums.tolist())}


@torch.no_grad()
def log_likelihood(model, split: Split, k: int = 1000, chunk_rows: int = 10000, seed: int = 0,
                   limit: int | None = None, precision: str = "fp32") -> torch.Tensor:
    """Per-example importance-sampled estimates log (1/k) sum_j p(x, z_j) / q(z_j|x), z_j ~ q(z|x), as (N,).

    Images go through the encoder once; the decoder sees chunks of at most `chunk_rows` (image, sample) rows (the
    memory bound: about chunk_rows x (data size + widest decoder layer) floats at a time); the prior's parameters
    are computed once (`Prior.log_prob_fn`). precision="bf16" runs the decoder's matrix products in bfloat16
    (autocast; fp32 accumulation), the likelihood, prior and posterior terms and the log-sum-exp stay in fp32.
    """
    was_training = model.training
    model.eval()
    n_total = len(split) if limit is None else min(limit, len(split))
    images = max(1, chunk_rows // k)  # images per encoder batch
    samples = min(k, chunk_rows)  # samples per decoder forward, per image
    log_prior = model.prior.log_prob_fn()
    out = []
    with seeded(split.x.device, seed):
        for start in range(0, n_total, images):
            x = split.floats(slice(start, min(start + images, n_total)))  # (n, *shape)
            mu, logvar = model.encoder(x)  # (n, D) each, once per image
            q = td.Normal(mu, torch.exp(0.5 * logvar))
            log_w = []
            for s0 in range(0, k, samples):
                s = min(samples, k - s0)
                z = q.sample((s,))  # (s, n, D)
                log_q = q.log_prob(z).sum(-1)  # (s, n)
                log_p = log_prior(z.flatten(0, 1)).view(s, -1)  # (s, n)
                with autocast(split.x.device, precision):
                    params = model.decoder(z.flatten(0, 1)).float()  # (s*n, *shape)
                log_px = model.likelihood(params.view(s, x.shape[0], *x.shape[1:])).log_prob(x)  # (s, n)
                log_w.append(log_px + log_p - log_q)
            out.append(torch.logsumexp(torch.cat(log_w), dim=0) - math.log(k))  # (n,)
    model.train(was_training)
    return torch.cat(out)
