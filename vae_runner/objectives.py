"""Objectives: the model and a batch in, named per-example terms out (each (B,), in nats).

`elbo` is the true ELBO (beta = 1), `recon` = E_q log p(x|z) (one sample), `kl` = KL(q(z|x) || p(z)) (closed form
when the prior offers one, else the single-sample Monte-Carlo estimate), and `loss` is what is optimised.
"""
from __future__ import annotations

from torch import Tensor


class ELBO:
    """The beta-ELBO (Higgins et al. 2017): loss = -(recon - beta * kl); beta = 1 is Kingma & Welling (2014) eq. 3."""

    def __init__(self, beta: float = 1.0):
        self.beta = float(beta)

    def __call__(self, model, x: Tensor) -> dict[str, Tensor]:
        q = model.posterior(x)
        z = q.rsample()  # (B, D), reparameterised
        recon = model.decode(z).log_prob(x)  # (B,)
        kl = model.prior.analytic_kl(q)
        if kl is None:
            kl = q.log_prob(z) - model.prior.log_prob(z)  # (B,) Monte-Carlo KL at the same z
        return {"elbo": recon - kl, "recon": recon, "kl": kl, "loss": -(recon - self.beta * kl)}
