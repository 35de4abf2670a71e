"""`VAE(encoder, decoder, prior, likelihood, posterior)`: composition only; the objective lives in objectives.py.
The encoder's output parameterises the approximate posterior, q(z|x) = posterior(encoder(x)) (model/posteriors/:
the `posterior=` group, a diagonal Gaussian by default); an encoder returns a tensor (..., B, posterior.outputs), or
the pair (mu, logvar) of the Gaussian posterior.

Mixed precision: inside `with vae.precision("bf16")` the encoder and decoder run under bfloat16 autocast (their
matrix products and convolutions in bf16); their outputs are cast back to float32 before they parameterise q(z|x)
and p(x|z), so the likelihood, the prior, the KL and every reduction stay float32.

Missing entries (NaN in x, `missing.*`): after `accept_missing()` every encoder call reads them as 0 (a forward
pre-hook, so posterior(), the log-likelihood and the diagnostics all see the same input; the data are standardised,
so 0 is the column's observed mean) and the likelihood scores the observed entries only (MIWAE's zero-imputed
encoder and observed-data bound, Mattei & Frellsen 2019).
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

import torch
import torch.distributions as td
from torch import Tensor, nn

from vae_runner.model.encoders import encoder_output
from vae_runner.model.posteriors.gaussian import GaussianPosterior

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}  # name -> autocast dtype (None: no autocast)


def autocast(device: torch.device, precision: str):
    """torch.autocast for `precision` on `device`'s type (no context at all for fp32)."""
    dtype = PRECISIONS[precision]
    return nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def zero_missing(module: nn.Module, args: tuple) -> tuple:
    """Encoder pre-hook: NaN entries of the input read as 0."""
    x = args[0]
    return (torch.where(torch.isnan(x), torch.zeros_like(x), x), *args[1:])


class VAE(nn.Module):
    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        prior: nn.Module,
        likelihood: nn.Module,
        posterior: nn.Module | None = None,
    ):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.prior = prior
        self.likelihood = likelihood
        self.variational = GaussianPosterior(prior.latent_dim) if posterior is None else posterior  # the q family
        self.network_precision = "fp32"

    def adapt_to(self, data, start: bool = True) -> VAE:
        """What the data (DataSplits) need: missing entries accepted, a table's binary columns Bernoulli, and
        (`start`: a model about to train from scratch, not one whose weights a checkpoint will replace) the
        likelihood's data-dependent start."""
        if data.has_missing:
            self.accept_missing()
        if data.binary_columns is not None and any(data.binary_columns + data.count_columns):
            counts = torch.tensor(data.count_columns) if data.count_columns else None
            self.likelihood.model_binary_columns(
                torch.tensor(data.binary_columns), data.categorical_columns, counts, data.ordinal_columns
            )
        if start:
            self.likelihood.start_from(data.train.x)
            if data.binary_columns is not None:
                self.likelihood.start_discrete(data.train.x)
        return self

    def accept_missing(self) -> VAE:
        """Train and evaluate on data whose missing entries are NaN (see the module docstring); idempotent."""
        if not self.likelihood.observed_only:
            self.encoder.register_forward_pre_hook(zero_missing)
            self.likelihood.observed_only = True
        return self

    @contextmanager
    def precision(self, name: str):
        """Within: the encoder and decoder compute in `name` (fp32 | bf16)."""
        old, self.network_precision = self.network_precision, name
        try:
            yield
        finally:
            self.network_precision = old

    def encode(self, x: Tensor) -> Tensor:
        """The encoder's output for x, (..., B, posterior.outputs), in float32 whatever the network precision."""
        with autocast(x.device, self.network_precision):
            params = self.encoder(x)
        return encoder_output(params).float()

    def posterior(self, x: Tensor) -> td.Distribution:
        """q(z|x), batch shape (B,), event shape (D,): the contract of model/posteriors/base.py."""
        return self.variational(self.encode(x))

    def decode_params(self, z: Tensor) -> Tensor:
        """The decoder's output for z (B, D), in float32 whatever the network precision."""
        with autocast(z.device, self.network_precision):
            params = self.decoder(z)
        return params.float()

    def decode(self, z: Tensor) -> td.Distribution:
        """p(x|z), batch shape (B,), event shape the data shape."""
        return self.likelihood(self.decode_params(z))

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        """Means of p(x|z) for n draws z ~ p(z) from the model's own prior."""
        return self.decode(self.prior.sample(n)).mean

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        return self.decode(self.posterior(x).mean).mean
