"""A multimodal VAE inside the ordinary `VAE` (vae-run's `modalities.use`): the data are packed rows, the
modalities side by side (data/modalities.py), and four small modules split them:

- `ModalityEncoders`: one expert q_m(z | x_m) per modality; `JointPosterior` joins the experts of the modalities a
  row has (`modalities.joint`: poe, the product of experts with the prior expert N(0, I), MVAE, Wu & Goodman 2018,
  a diagonal Gaussian; moe, MMVAE's mixture; mopoe, the mixture of subsets' products; model/joint_posteriors.py),
  a posterior of the contract every objective option, prior and evaluation read (model/posteriors/base.py). A
  modality is missing when its whole block is NaN; a missing entry inside a present block reads as 0. In
  training, `dropout` hides each present modality from the joint with that probability (each row keeps one): MVAE's
  sub-sampled terms, which train the unimodal posteriors that cross-modal generation needs (the likelihood still
  scores everything the row has);
- `ModalityDecoders`: one decoder per modality, their outputs flattened side by side;
- `ModalityLikelihood`: one likelihood per modality; log p(x | z) is the sum over the present modalities of each
  one's log-density of its observed entries.

The image's encoder, decoder and likelihood come from the run's `architecture` and `likelihood` groups; the label's
(categorical) and the attributes' (Gaussian with a learned sigma per column) are MLPs of `modalities.hidden`.
"""

from __future__ import annotations

import torch
import torch.distributions as td
from torch import Tensor, nn

from vae_runner.data.modalities import blocks, present
from vae_runner.model.decoders import MLPDecoder
from vae_runner.model.encoders import MLPEncoder
from vae_runner.model.joint_posteriors import JOINTS
from vae_runner.model.likelihoods import Categorical, Gaussian
from vae_runner.model.posteriors.base import Posterior


class ModalityEncoders(nn.Module):
    reads_missing = True  # NaN blocks mean absent modalities: no zero-filling pre-hook (model/vae.py)

    def __init__(self, layout, experts: dict[str, nn.Module], dropout: float):
        super().__init__()
        self.layout = tuple(layout)
        self.blocks = blocks(layout)
        self.experts = nn.ModuleDict(experts)
        self.dropout = float(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """The experts' means, log-variances and presence side by side, (..., B, E * (2D + 1)): JointPosterior's
        input."""
        have = present(x, self.layout)  # (E, ..., B)
        if self.training and self.dropout > 0:
            have = drop_some(have, self.dropout)
        x = torch.nan_to_num(x, nan=0.0)
        mus, logvars = zip(
            *(
                self.experts[n](x[..., cols].reshape(*x.shape[:-1], *shape)).chunk(2, dim=-1)
                for n, cols, shape in self.blocks
            )
        )
        experts = [torch.stack(t).movedim(0, -2).flatten(-2) for t in (mus, logvars)]  # (..., B, E * D) each
        return torch.cat([*experts, have.movedim(0, -1).to(experts[0].dtype)], dim=-1)


class JointPosterior(Posterior):
    """q(z | the modalities present) from ModalityEncoders' output, `joint` (modalities.joint) one of
    model/joint_posteriors.py's: poe (a diagonal Gaussian), moe, mopoe (mixtures, model/posteriors/mixture.py's
    GaussianMixture with weight 0 on the components an example cannot have; the weights are constants, so a draw
    picks its component and is reparameterised within it); `subset_prior` (modalities.subset_prior, mopoe): the
    subsets whose product has the prior expert, `every` or the `full` one only."""

    def __init__(self, latent_dim: int, experts: int, joint: str, subset_prior: str = "every"):
        super().__init__(latent_dim)
        self.experts, self.joint, self.subset_prior = int(experts), str(joint), str(subset_prior)

    @property
    def outputs(self) -> int:
        return self.experts * (2 * self.latent_dim + 1)

    def forward(self, params: Tensor) -> td.Distribution:
        e, d = self.experts, self.latent_dim
        mu, logvar = (params[..., i * e * d : (i + 1) * e * d].unflatten(-1, (e, d)).movedim(-2, 0) for i in (0, 1))
        have = params[..., 2 * e * d :].movedim(-1, 0) > 0.5  # (E, ..., B)
        more = {"subset_prior": self.subset_prior} if self.joint == "mopoe" else {}
        return JOINTS[self.joint](mu, logvar, have, **more)


def drop_some(have: Tensor, rate: float) -> Tensor:
    """`have` (E, ..., B) with each modality further hidden with probability `rate`, every row keeping one."""
    kept = have & (torch.rand(have.shape, device=have.device) >= rate)
    lost = ~kept.any(0) & have.any(0)  # rows left with none keep one of theirs, at random
    if lost.any():
        score = torch.rand(have.shape, device=have.device).masked_fill(~have, -1.0)
        first = torch.zeros_like(have).scatter_(0, score.argmax(0, keepdim=True), True)
        kept = kept | (first & lost)
    return kept


class ModalityDecoders(nn.Module):
    def __init__(self, layout, decoders: dict[str, nn.Module]):
        super().__init__()
        self.blocks = blocks(layout)
        self.decoders = nn.ModuleDict(decoders)

    def forward(self, z: Tensor) -> Tensor:
        outs = [self.decoders[n](z) for n, _, _ in self.blocks]  # (..., B, *shape_m)
        return torch.cat([o.reshape(*z.shape[:-1], -1) for o in outs], dim=-1)


class Joined(td.Distribution):
    """p(x | z) of packed rows: the modalities' distributions side by side; log_prob sums the present ones."""

    arg_constraints: dict = {}

    def __init__(self, parts: list[tuple[td.Distribution, slice, tuple[int, ...], bool]], batch_shape):
        self.parts = parts
        super().__init__(batch_shape, validate_args=False)

    def log_prob(self, x: Tensor) -> Tensor:
        total = 0.0
        for dist, cols, shape, whole in self.parts:
            block = x[..., cols]
            if whole:  # a categorical label: present or not as a whole
                have = ~torch.isnan(block).any(-1)
                lp = dist.log_prob(torch.nan_to_num(block, nan=0.0))
                total = total + torch.where(have, lp, torch.zeros_like(lp))
            else:  # observed entries only (likelihoods.ObservedOnly)
                total = total + dist.log_prob(block.reshape(*block.shape[:-1], *shape))
        return total

    def _flat(self, values: list[Tensor], lead: int) -> Tensor:
        return torch.cat([v.reshape(*v.shape[:lead], -1) for v in values], dim=-1)

    @property
    def mean(self) -> Tensor:
        return self._flat([dist.mean for dist, *_ in self.parts], len(self.batch_shape))

    def sample(self, sample_shape=()) -> Tensor:
        shape = torch.Size(sample_shape)
        return self._flat([d.sample(shape) for d, *_ in self.parts], len(shape) + len(self.batch_shape))


class ModalityLikelihood(nn.Module):
    binary = False

    def __init__(self, layout, likelihoods: dict[str, nn.Module]):
        super().__init__()
        self.blocks = blocks(layout)
        self.likelihoods = nn.ModuleDict(likelihoods)
        for lik in self.likelihoods.values():
            lik.observed_only = True  # NaN entries: missing
        self.observed_only = True  # model/vae.py: nothing more to set for missing data
        self.binary_columns = None

    def start_from(self, x: Tensor) -> None:
        """Each modality's likelihood its data-dependent start from its own block of the packed training rows."""
        for n, cols, shape in self.blocks:
            self.likelihoods[n].start_from(x[:, cols].reshape(len(x), *shape))

    def forward(self, params: Tensor) -> td.Distribution:
        parts = []
        for n, cols, shape in self.blocks:
            lik = self.likelihoods[n]
            p = params[..., cols].reshape(*params.shape[:-1], *shape)
            parts.append((lik(p), cols, shape, isinstance(lik, Categorical)))
        return Joined(parts, params.shape[:-1])


def join_modalities(layout, image: tuple[nn.Module, nn.Module, nn.Module], latent_dim: int, spec) -> tuple:
    """(encoder, decoder, likelihood) of the packed modalities `layout`: the image's from the run's groups (`image`:
    encoder, decoder, likelihood), the others MLPs of `spec.hidden`; `spec.dropout` for the encoders."""
    hidden = list(spec.hidden)
    encoders = {"image": image[0]}
    decoders = {"image": image[1]}
    likelihoods = {"image": image[2]}
    for name, shape in layout[1:]:
        encoders[name] = MLPEncoder(shape, latent_dim, hidden)
        decoders[name] = MLPDecoder(shape, latent_dim, hidden)
        likelihoods[name] = Categorical(shape) if name == "label" else Gaussian(shape, 0.5, 0.001)
    return (
        ModalityEncoders(layout, encoders, spec.dropout),
        ModalityDecoders(layout, decoders),
        ModalityLikelihood(layout, likelihoods),
    )
