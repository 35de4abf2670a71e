"""FactorVAE's discriminator (Kim & Mnih 2018), for `objective.factor_vae_weight` > 0: it tells codes z ~ q(z) from
codes whose dimensions were shuffled independently across the batch (samples of prod_d q(z_d)), so its logit
difference estimates the total correlation, log q(z) / prod_d q(z_d).

It lives on the model (`VAE.critic`, built by build.build_model), so checkpoints, resume and `mode=eval` carry it; it
has its own parameter group in the run's optimizer (`objective.critic_lr`, betas (0.5, 0.9) as in the paper). One
backward pass trains both: the critic's loss sees detached codes, and the VAE's TC term sees the critic's parameters
detached, so each part gets only its own gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call


def permute_dims(z: Tensor) -> Tensor:
    """(B, D): each dimension's values shuffled independently across the batch (from torch's RNG)."""
    return torch.stack([z[torch.randperm(len(z), device=z.device), d] for d in range(z.shape[1])], dim=1)


class FactorCritic(nn.Module):
    def __init__(self, latent_dim: int, hidden: list[int]):
        super().__init__()
        layers, width = [], latent_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.LeakyReLU(0.2)]
            width = h
        self.net = nn.Sequential(*layers, nn.Linear(width, 2))  # logits: 0 = from q(z), 1 = dimensions shuffled

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)

    def total_correlation(self, z: Tensor) -> Tensor:
        """(B,) logit_0 - logit_1 at z with the critic's parameters detached: gradients reach only z."""
        frozen = {name: p.detach() for name, p in self.named_parameters()}
        logits = functional_call(self, frozen, (z,))
        return logits[:, 0] - logits[:, 1]

    def loss(self, z: Tensor) -> Tensor:
        """(B,) the critic's cross-entropy on the batch's codes (class 0) and their shuffled copy (class 1)."""
        z = z.detach()
        real = F.cross_entropy(self(z), torch.zeros(len(z), dtype=torch.long, device=z.device), reduction="none")
        shuffled = permute_dims(z)
        fake = F.cross_entropy(self(shuffled), torch.ones(len(z), dtype=torch.long, device=z.device), reduction="none")
        return 0.5 * (real + fake)


def parameter_groups(model: nn.Module, critic_lr: float | None) -> list[dict]:
    """The optimizer's groups: the VAE's parameters, and the critic's (if the model has one) at `critic_lr` with
    betas (0.5, 0.9), as Kim & Mnih train it."""
    critic = getattr(model, "critic", None)
    if critic is None:
        return [{"params": list(model.parameters())}]
    own = {id(p) for p in critic.parameters()}
    vae = [p for p in model.parameters() if id(p) not in own]
    return [{"params": vae}, {"params": list(critic.parameters()), "lr": critic_lr, "betas": (0.5, 0.9)}]
