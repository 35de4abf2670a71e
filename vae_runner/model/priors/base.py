"""The prior contract every `prior=` option implements; the VAE and the objective see nothing else.

- constructor: receives `latent_dim=`, plus, when it names them as parameters, the VAE's `encoder=` and
  `posterior=` family (VampPrior) and the prepared `data=` (a `DataSplits`: shape, value range, training images
  for initialisation).
- `log_prob(z)`: (B, D) -> (B,) log p(z) in nats, summed over latent dimensions.
- `sample(n)`: (n, D) draws from the prior (on the prior's device).
- `analytic_kl(q)`: KL(q(z|x) || p(z)) per example (B,) in closed form for this posterior (model/posteriors/), or
  None when there is none; the objective
  then uses the Monte-Carlo estimate log q(z|x) - log p(z) at the sampled z.
- `analytic_kl_per_dim(q_marginal)`: for a factorised prior with a closed form, the (B, D) per-dimension KL of the
  posterior's Normal marginals; None otherwise (free bits then uses `marginal_log_prob`).
- `log_prob_fn()`: `log_prob` with the prior's parameters (VampPrior pseudo-input encodings, GTM means, ...)
  computed once, for evaluation loops under `torch.no_grad`; by default `log_prob` itself.
- `marginal_log_prob(z)`: (B, D) -> (B, D) log p(z_d) of each dimension's marginal, or None where it has no closed
  form (the flow); used for the KL per latent dimension.
- `picture_batches(decode)`: optional pictures that show what the prior learnt, as name -> (images (N, *shape),
  images per row); `decode` maps latents to images. Logged as `prior/<name>` and `<name>.png`.
"""

from __future__ import annotations

import torch.distributions as td
from torch import Tensor, nn


class Prior(nn.Module):
    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim

    def log_prob(self, z: Tensor) -> Tensor:
        raise NotImplementedError

    def sample(self, n: int) -> Tensor:
        raise NotImplementedError

    def analytic_kl(self, q: td.Distribution) -> Tensor | None:
        return None

    def analytic_kl_per_dim(self, q_base: td.Normal) -> Tensor | None:
        return None

    def log_prob_fn(self):
        return self.log_prob

    def marginal_log_prob(self, z: Tensor) -> Tensor | None:
        return None

    def kl_per_dim(self, q_marginal: td.Distribution | None, z: Tensor) -> Tensor | None:
        """The KL per latent dimension, (B, D), between q's marginals q(z_d|x) (`q.marginal()`, batch (B, D)) and
        the prior's: the closed form where there is one (Normal marginals), else log q(z_d|x) - log p(z_d) at the
        given draws z (B, D); None when the prior or the posterior has no marginals (the flows). The one copy of
        this formula: free bits (objectives.py) and the diagnostics both use it."""
        if q_marginal is None:
            return None
        closed = self.analytic_kl_per_dim(q_marginal) if isinstance(q_marginal, td.Normal) else None
        if closed is not None:
            return closed
        marginal = self.marginal_log_prob(z)
        return None if marginal is None else q_marginal.log_prob(z) - marginal

    def picture_batches(self, decode) -> dict[str, tuple[Tensor, int]]:
        return {}
