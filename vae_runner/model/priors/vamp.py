"""VampPrior (Tomczak & Welling 2018): p(z) = (1/K) sum_k q(z | u_k), with K learnable pseudo-inputs u_k in data
space encoded by the model's own encoder. Pseudo-inputs start as random training images (`init: data`), noise around
the data's mean (`init: noise`), both kept in the data range by u = sigmoid(raw) for [0, 1] images, or as the
reference code does it (`init: reference`): raw ~ N(init_mean, init_std) (0.05, 0.01) and u = Hardtanh(0, 1)(raw)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vae_runner.errors import UserError
from vae_runner.model.priors.pseudo_inputs import PseudoInputPrior, squash

EPS = 1e-3  # keeps the logit of a 0/1 training pixel finite


class PseudoInputs(nn.Module):
    """K points in data space: sigmoid-squashed for [0, 1] data (hard-clipped to [0, 1] with `init: reference`),
    unconstrained for real-valued data."""

    def __init__(self, data, n: int, init: str, init_mean: float, init_std: float):
        super().__init__()
        self.squash = data.in_unit_range
        self.hard = init == "reference"
        if self.hard:
            if not data.in_unit_range:
                raise UserError(
                    "prior.init=reference clips pseudo-inputs to [0, 1], but this dataset is "
                    "real-valued; use prior.init=data or prior.init=noise."
                )
            self.raw = nn.Parameter(init_mean + init_std * torch.randn(n, *data.shape))  # (K, *shape)
            return
        if init == "data":
            x = data.train.floats(torch.randint(len(data.train), (n,), device=data.train.x.device)).cpu()
        else:
            ref = data.train.floats(slice(0, 1000)).cpu()
            x = ref.mean(0) + ref.std(0).clamp_min(0.05) * torch.randn(n, *data.shape)
        raw = torch.logit(x.clamp(0, 1), eps=EPS) if self.squash else x
        self.raw = nn.Parameter(raw)  # (K, *shape)

    def forward(self) -> Tensor:
        if self.hard:
            return nn.functional.hardtanh(self.raw, 0.0, 1.0)  # no gradient where a pixel sits outside [0, 1]
        return squash(self.raw, self.squash)


class VampPrior(PseudoInputPrior):
    def __init__(
        self,
        latent_dim: int,
        encoder: nn.Module,
        data,
        n_components: int,
        init: str,
        init_mean: float,
        init_std: float,
        posterior: nn.Module | None = None,
    ):
        super().__init__(latent_dim, encoder, posterior)
        self.pseudo_inputs = PseudoInputs(data, n_components, init, init_mean, init_std)  # a module: u = its output

    def picture_batches(self, decode) -> dict[str, tuple[Tensor, int]]:
        return {"pseudo_inputs": (self.pseudo_inputs()[:64], 8)}
