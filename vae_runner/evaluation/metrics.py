"""Evaluation on a whole split, in nats per example: the objective's terms, and the importance-sampled
log-likelihood (IWAE bound, Burda et al. 2016) that papers report as "test log-likelihood".

Deterministic and batching-free: the posterior noise of image i is `rng.index_noise(seed, stream, i, ...)`, so an
image's estimate does not depend on `trainer.eval_batch_size`, `evaluation.chunk_rows` or the images evaluated
beside it, evaluating leaves the training RNG untouched, and the same model always gets the same numbers.
"""

from __future__ import annotations

import inspect
import math

import torch

from vae_runner.data import Split, eval_batches
from vae_runner.rng import STREAM_ELBO, STREAM_LOG_LIKELIHOOD, index_noise, seeded


@torch.no_grad()
def evaluate_split(model, objective, split: Split, batch_size: int, seed: int = 0) -> dict[str, float]:
    was_training = model.training
    model.eval()
    sums, start = None, 0
    # A user objective (`objective._target_`) without a `noise=` parameter draws from the seeded global RNG instead.
    params = inspect.signature(objective.__call__ if not inspect.isfunction(objective) else objective).parameters
    takes_noise = "noise" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
    with seeded(split.x.device, seed):  # for what still draws from the global RNG (the triplet term's pairs)
        for x, y in eval_batches(split, batch_size):
            index = torch.arange(start, start + x.shape[0], device=x.device)
            start += x.shape[0]

            def noise(k: int, d: int, index=index) -> torch.Tensor:  # (k, B, d): the batch's images' own draws
                return index_noise(seed, STREAM_ELBO, index, range(k), d)

            terms = objective(model, x, y, noise=noise) if takes_noise else objective(model, x, y)
            batch = torch.stack([t.sum() for t in terms.values()])  # (T,), summed on device
            sums = batch if sums is None else sums + batch
    model.train(was_training)
    return {k: v / len(split) for k, v in zip(terms.keys(), sums.tolist())}


@torch.no_grad()
def log_likelihood(
    model,
    split: Split,
    k: int = 1000,
    chunk_rows: int = 10000,
    seed: int = 0,
    limit: int | None = None,
    precision: str = "fp32",
) -> torch.Tensor:
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
    for start in range(0, n_total, images):
        x = split.floats(slice(start, min(start + images, n_total)))  # (n, *shape)
        index = torch.arange(start, start + x.shape[0], device=x.device)
        q = model.posterior(x)  # once per image
        log_w = []
        for s0 in range(0, k, samples):
            s = min(samples, k - s0)
            z = q.from_noise(index_noise(seed, STREAM_LOG_LIKELIHOOD, index, range(s0, s0 + s), q.noise_dim))
            log_q = q.log_prob(z)  # (s, n)
            log_p = log_prior(z.flatten(0, 1)).view(s, -1)  # (s, n)
            with model.precision(precision):
                params = model.decode_params(z.flatten(0, 1))  # (s*n, *shape)
            log_px = model.likelihood(params.view(s, x.shape[0], *x.shape[1:])).log_prob(x)  # (s, n)
            log_w.append(log_px + log_p - log_q)
        out.append(torch.logsumexp(torch.cat(log_w), dim=0) - math.log(k))  # (n,)
    model.train(was_training)
    return torch.cat(out)
