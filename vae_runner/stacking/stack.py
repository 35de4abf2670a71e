"""A sweep's members trained as one stacked model (stacking/model.py): their own random streams and one optimizer step
for all of them.

Each member draws its data order, its binarisation and its reparameterisation noise from its own copy of torch's
RNG state, seeded as a standalone run with its seed is and drawn in the same order, so member m follows the run it
stands for (to float rounding: a batched matrix product sums in another order). Adam is element-wise, so one Adam
over the stacked parameters with the sum of the members' mean losses is M Adams. Gradient norms, clipping and the
non-finite checks are per member: a member that diverges does not touch the others' updates.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import Tensor, nn

from vae_runner import build
from vae_runner.config.compose import construct
from vae_runner.config.keys import MEMBER_KEYS
from vae_runner.data import TrainBatches
from vae_runner.stacking.model import stack_vaes
from vae_runner.stacking.optimizer import StackedAdam


class MemberStreams:
    """Member m's RNG state (CPU, and the current CUDA device's when the data live there), swapped in for its draws."""

    def __init__(self, states: list[dict]):
        self.states = states

    @staticmethod
    def capture(device: torch.device) -> dict:
        """torch's global RNG state now: what a standalone run would draw from next."""
        state = {"cpu": torch.get_rng_state()}
        if device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(device)
        return state

    @contextmanager
    def stream(self, m: int, device: torch.device):
        outside = self.capture(device)
        self._set(self.states[m], device)
        try:
            yield
        finally:
            self.states[m] = self.capture(device)
            self._set(outside, device)

    @staticmethod
    def _set(state: dict, device: torch.device) -> None:
        torch.set_rng_state(state["cpu"])
        if "cuda" in state:
            torch.cuda.set_rng_state(state["cuda"], device)


class MemberBatches:
    """Each member's epoch of training batches, drawn in its own stream: (M, B, *shape) per step, and the members'
    reparameterisation noise (1, M, B, D) drawn right after each member's batch, where a standalone run's
    rsample draws it."""

    def __init__(self, batches: TrainBatches, streams: MemberStreams, latent_dim: int):
        self.batches = batches
        self.streams = streams
        self.latent_dim = latent_dim
        self.device = batches.split.x.device

        self.iterators: list[Iterator] = []  # the members' current epochs
        self.perms: list[Tensor] = []  # and their orders (a checkpoint in mid-epoch holds them)

    def keep(self, members: list[int]) -> None:
        self.streams.states = [self.streams.states[m] for m in members]
        self.iterators = [self.iterators[m] for m in members] if self.iterators else []
        self.perms = [self.perms[m] for m in members] if self.perms else []

    def epoch(self) -> Iterator[tuple[Tensor, Tensor]]:
        self.iterators = []
        self.perms = []
        for m in range(len(self.streams.states)):
            with self.streams.stream(m, self.device):
                self.perms.append(self.batches.permutation())
                self.iterators.append(self.batches.iterate(self.perms[-1]))
        for _ in range(len(self.batches)):
            xs, noise = [], []
            for m in range(len(self.iterators)):  # fewer once a member is dropped
                with self.streams.stream(m, self.device):
                    x, _ = next(self.iterators[m])
                    xs.append(x)
                    noise.append(torch.empty(1, len(x), self.latent_dim, device=self.device).normal_())
            yield torch.stack(xs), torch.stack(noise, dim=1)


def member_grad_norms(params: list[Tensor]) -> Tensor:
    """(M,) each member's global gradient norm over the stacked parameters (member axis first)."""
    squares = [p.grad.detach().pow(2).flatten(1).sum(1) for p in params if p.grad is not None]
    return torch.stack(squares).sum(0).sqrt()


def clip_members_(params: list[Tensor], max_norms: Tensor) -> Tensor:
    """Clip each member's gradient to its max norm, as clip_grad_norm_ does for one run; returns the norms before."""
    norms = member_grad_norms(params)
    scale = (max_norms / (norms + 1e-6)).clamp(max=1.0)
    for p in params:
        if p.grad is not None:
            p.grad.mul_(scale.view(-1, *[1] * (p.grad.dim() - 1)))
    return norms


def stack_key(cfg) -> str:
    """Configs with equal keys train as one stack: the resolved config without MEMBER_KEYS."""
    values = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    for key in MEMBER_KEYS:
        *parents, leaf = key.split(".")
        node = values
        for parent in parents:
            node = node.get(parent, {})
        node.pop(leaf, None)
    return json.dumps(values, sort_keys=True, default=str)


class Stack:
    """The members of `cfgs` (configs that differ only in values that keep tensor shapes: seed, beta, the objective's
    scalars, grad_clip) built as their standalone runs build them, each seeded with its own seed, then stacked: the
    model, one optimizer, each member's objective and stream of batches."""

    def __init__(self, cfgs, limit_batches: int | None = None):
        if len({stack_key(cfg) for cfg in cfgs}) > 1:
            raise ValueError(f"these configs differ in more than {', '.join(MEMBER_KEYS)}: they cannot stack")
        models, states = [], []
        for cfg in cfgs:
            self.device = build.setup(cfg)  # seeds torch with the member's seed, as a standalone run
            if not models:  # one dataset for all (equal stack keys); loading it draws nothing from torch's RNG
                self.data = build.load_data(cfg, self.device)
            models.append(build.build_model(cfg, self.data, self.device))
            states.append(MemberStreams.capture(self.device))  # the run's RNG where its training starts
        self.model = stack_vaes(models)
        self.models = models  # the members' own models: validation and pictures load a member's weights into its own
        self.alive = list(range(len(models)))  # stack position -> index into cfgs
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        own = [construct(cfg.optimizer)(m.parameters()) for cfg, m in zip(cfgs, models, strict=True)]
        self.optimizer = StackedAdam.for_members(self.params, own)  # each member's lr, AdamNormGrad per member
        self.objectives = [instantiate(cfg.objective) for cfg in cfgs]
        if any(o.penalised for o in self.objectives):  # their batch statistics are not written for a member axis
            raise ValueError("a batch penalty (objective.tc_weight, dip or mmd_weight) does not stack yet")
        trainer = cfgs[0].trainer
        limit = trainer.limit_batches if limit_batches is None else limit_batches
        batches = TrainBatches(self.data.train, trainer.batch_size, self.data.binarize == "dynamic", limit)
        self.batches = MemberBatches(batches, MemberStreams(states), cfgs[0].latent_dim)
        clips = [cfg.trainer.grad_clip for cfg in cfgs]
        self.clips = None if not any(clips) else torch.tensor([c or torch.inf for c in clips], device=self.device)
        self.step_in_epoch = 0
        self.epoch = 0
        self.global_step = 0

    def step(self, x: Tensor, noise: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        """One step of every member: the terms, (M, B) each, and the members' gradient norms (M,)."""
        progress = (self.epoch + self.step_in_epoch / len(self.batches.batches), self.global_step)
        weights = torch.tensor([[o.kl_weight(progress)] for o in self.objectives], device=self.device)
        terms = self.objectives[0](self.model, x, noise=lambda k, d: noise, weight=weights)
        self.optimizer.zero_grad(set_to_none=True)
        terms["loss"].mean(-1).sum().backward()
        norms = clip_members_(self.params, self.clips) if self.clips is not None else member_grad_norms(self.params)
        self.optimizer.step()  # element-wise: a member's non-finite gradient touches only its own slices
        self.global_step += 1
        self.step_in_epoch = (self.step_in_epoch + 1) % len(self.batches.batches)
        self.epoch += self.step_in_epoch == 0
        return terms, norms

    def nonfinite(self, terms: dict[str, Tensor], norms: Tensor) -> Tensor:
        """(M,) on the device: which members had a non-finite term or gradient norm in this step."""
        finite = torch.stack([t.detach().isfinite().all(-1) for t in terms.values()]).all(0) & norms.isfinite()
        return ~finite

    def drop(self, members: list[int]) -> None:
        """Take `members` out of the stack (a diverged member stops; the others go on exactly as before)."""
        keep = [m for m in range(len(self.objectives)) if m not in set(members)]
        if not keep:
            self.alive = []
            return
        index = torch.tensor(keep, device=self.device)
        for name, param in list(
            self.model.named_parameters()
        ):  # every one has the member axis first (stacking/model.py)
            owner, _, leaf = name.rpartition(".")
            setattr(self.model.get_submodule(owner), leaf, nn.Parameter(param.detach()[index].clone()))
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = self.optimizer.keep(index, self.params)
        self.objectives = [self.objectives[m] for m in keep]
        self.alive = [self.alive[m] for m in keep]
        self.batches.keep(keep)
        if self.clips is not None:
            self.clips = self.clips[index]
