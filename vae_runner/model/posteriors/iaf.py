"""posterior=iaf: inverse autoregressive flow on the Gaussian posterior (Kingma et al. 2016, Algorithm 1).

The encoder gives mu, logvar and a context h (`context` numbers); z_0 = mu + sigma * eps, then `depth` steps

    [m, s] = MADE_t(z_{t-1}, h),  g = sigmoid(s + 1),  z_t = g * z_{t-1} + (1 - g) * m,

with the order of the dimensions reversed between steps. Output d of a MADE sees z_<d only, so each step's
Jacobian is triangular with diagonal g and log q(z_T|x) = log N(z_0; mu, sigma) - sum_t sum_d log g_td (the
log-determinant is tested against autograd's Jacobian). The +1 starts the gates near 0.73, close to the identity.

The density of a draw is known from the way it was drawn (cached for the last draw); at any other z, `log_prob`
inverts the flow (D passes of each MADE: exact, slow), so the ELBO surgery's aggregate posterior, which needs q at
every other example's draws, is not computed (`aggregate_log_prob` is None), nor are the marginals q(z_d|x).
The point code `mean` is the flow applied to eps = 0 (the image of the base mean), not E_q[z], which has no closed
form.
"""

from __future__ import annotations

import torch
import torch.distributions as td
from torch import Tensor, nn

from vae_runner.model.posteriors.base import Draws, Posterior
from vae_runner.model.posteriors.gaussian import DiagonalGaussian


class MaskedLinear(nn.Linear):
    def __init__(self, mask: Tensor):
        super().__init__(mask.shape[1], mask.shape[0])
        self.register_buffer("mask", mask.float())

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """(z (..., D), h (..., H_c)) -> (m, s), each (..., D), output d a function of z_<d and h only (Germain et al.
    2015 masks: hidden unit k has degree k mod D and sees inputs of degree <= it; output d sees units of degree
    < d, with 1-based input degrees; degree-0 units see the context only)."""

    def __init__(self, latent_dim: int, context: int, hidden: int):
        super().__init__()
        d_in = torch.arange(1, latent_dim + 1)
        d_hidden = torch.arange(hidden) % latent_dim
        self.first = MaskedLinear(d_hidden[:, None] >= d_in[None, :])
        self.context = nn.Linear(context, hidden, bias=False) if context > 0 else None
        self.second = MaskedLinear(d_hidden[:, None] >= d_hidden[None, :])
        d_out = torch.cat([d_in, d_in])
        self.out = MaskedLinear(d_out[:, None] > d_hidden[None, :])

    def forward(self, z: Tensor, h: Tensor | None) -> tuple[Tensor, Tensor]:
        a = self.first(z)
        if self.context is not None:
            a = a + self.context(h)
        a = self.second(nn.functional.elu(a))
        return self.out(nn.functional.elu(a)).chunk(2, dim=-1)


def step(made: MADE, z: Tensor, h: Tensor | None) -> tuple[Tensor, Tensor]:
    """One IAF step: (z_t, log g) with z_t = g * z + (1 - g) * m."""
    m, s = made(z, h)
    return torch.sigmoid(s + 1) * z + torch.sigmoid(-(s + 1)) * m, nn.functional.logsigmoid(s + 1)


class FlowGaussian(Draws, td.Distribution):
    arg_constraints: dict = {}
    has_rsample = True

    def __init__(self, base: DiagonalGaussian, context: Tensor | None, steps: nn.ModuleList):
        self.base, self.h, self.steps = base, context, steps
        self.noise_dim = base.event_shape[-1]
        self._last: tuple[Tensor, Tensor] | None = None
        super().__init__(base.batch_shape, base.event_shape, validate_args=False)

    def flow(self, z0: Tensor) -> tuple[Tensor, Tensor]:
        """z_0 -> (z_T, log q(z_T|x))."""
        log_q, z = self.base.log_prob(z0), z0
        for i, made in enumerate(self.steps):
            z, log_g = step(made, z if i == 0 else z.flip(-1), self.h)
            log_q = log_q - log_g.sum(-1)
        return z, log_q

    def from_noise(self, eps: Tensor) -> Tensor:
        z, log_q = self.flow(self.base.from_noise(eps))
        self._last = (z, log_q)
        return z

    def reference(self) -> Tensor:
        return self.base.base_dist.loc

    @property
    def mean(self) -> Tensor:
        return self.flow(self.base.base_dist.loc)[0]

    def log_prob(self, z: Tensor) -> Tensor:
        if self._last is not None and z is self._last[0]:
            return self._last[1]
        log_det = torch.zeros(z.shape[:-1], device=z.device)
        for i in reversed(range(len(self.steps))):
            z, log_g = self.invert(self.steps[i], z)
            log_det = log_det + log_g.sum(-1)
            z = z if i == 0 else z.flip(-1)
        return self.base.log_prob(z) - log_det

    def invert(self, made: MADE, y: Tensor) -> tuple[Tensor, Tensor]:
        """x with step(made, x) = y, by D sweeps (after sweep d the first d entries are exact), and log g at x."""
        x = y
        for _ in range(y.shape[-1]):
            m, s = made(x, self.h)
            x = (y - torch.sigmoid(-(s + 1)) * m) / torch.sigmoid(s + 1)
        return x, nn.functional.logsigmoid(made(x, self.h)[1] + 1)

    def aggregate_log_prob(self, z: Tensor) -> None:
        return None

    def components(self):
        """The base Gaussian's (before the flow)."""
        return self.base.components()


class IAFPosterior(Posterior):
    def __init__(self, latent_dim: int, depth: int, hidden: int, context: int):
        super().__init__(latent_dim)
        self.context = int(context)
        self.steps = nn.ModuleList(MADE(latent_dim, self.context, int(hidden)) for _ in range(int(depth)))

    @property
    def outputs(self) -> int:
        return 2 * self.latent_dim + self.context

    def forward(self, params: Tensor) -> FlowGaussian:
        d = self.latent_dim
        h = params[..., 2 * d :] if self.context > 0 else None
        return FlowGaussian(DiagonalGaussian(params[..., :d], params[..., d : 2 * d]), h, self.steps)
