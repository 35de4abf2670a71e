"""One optimizer step for all the members of a stack (batched_training.Stack), equal to each member's own step.

Adam is element-wise, so torch's Adam over the stacked parameters (member axis first) is M Adams when the members
share their settings. What is per member is done per member here: AdamNormGrad's per-tensor gradient norm
(optimizers.py) is taken over each member's slice of a stacked tensor, and members with different learning rates
step through a shadow: torch's Adam with lr 1 writes minus each member's Adam direction into a zeroed copy, which is
added to the parameters scaled by each member's lr (the members then match their standalone runs to float rounding
rather than bit for bit). A member's non-finite gradient stays in its own slices either way.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vae_runner.optimizers import Adam, AdamNormGrad
from vae_runner.stacking.model import member_optimizer_state


def _per_member(values: Tensor, like: Tensor) -> Tensor:
    """(M,) values shaped to broadcast over a stacked tensor (M, ...)."""
    return values.view(-1, *[1] * (like.dim() - 1))


class StackedAdam:
    """Adam (or AdamNormGrad, with `norm_eps`) for stacked parameters with per-member learning rates `lrs`.
    `settings` are the standalone optimizer's Adam keywords (betas, eps, weight_decay, fused, ...), the same for
    every member."""

    def __init__(self, params: list[Tensor], lrs: list[float], settings: dict, norm_eps: float | None = None):
        self.params = list(params)
        self.lrs = list(lrs)
        self.settings = dict(settings)
        self.norm_eps = norm_eps
        self.shared_lr = len(set(self.lrs)) == 1
        adam = Adam if self.settings.get("fused") else torch.optim.Adam  # torch's: saved runs with fused=false
        if self.shared_lr:
            self.adam = adam(self.params, lr=self.lrs[0], **self.settings)
        else:
            self.weight_decay = self.settings.pop("weight_decay", 0.0)  # applied to the real parameters below
            self.shadows = [torch.zeros_like(p) for p in self.params]
            self.adam = adam(self.shadows, lr=1.0, **self.settings)
            self.lr = torch.tensor(self.lrs, device=self.params[0].device, dtype=self.params[0].dtype)

    @classmethod
    def for_members(cls, params: list[Tensor], optimizers: list) -> StackedAdam:
        """The stacked optimizer for members whose standalone optimizers (built on their own models) are
        `optimizers`: refuses (ValueError) what a stack cannot do per member."""
        kinds = {type(o) for o in optimizers}
        if len(kinds) > 1 or not kinds <= {Adam, AdamNormGrad, torch.optim.Adam}:
            names = ", ".join(sorted(k.__name__ for k in kinds))
            raise ValueError(f"optimizer {names}: only Adam and AdamNormGrad step per member, the runs cannot stack")
        groups = [o.param_groups for o in optimizers]
        if any(len(g) != 1 for g in groups):
            raise ValueError("an optimizer with several parameter groups: the runs cannot stack")
        settings = [{k: v for k, v in g[0].items() if k not in ("params", "lr", "initial_lr")} for g in groups]
        if any(s != settings[0] for s in settings):
            raise ValueError("the members' optimizers differ in more than the learning rate: the runs cannot stack")
        norm_eps = {getattr(o, "norm_eps", None) for o in optimizers}
        if len(norm_eps) > 1:
            raise ValueError("the members' AdamNormGrad norm_eps differ: the runs cannot stack")
        return cls(params, [g[0]["lr"] for g in groups], settings[0], norm_eps.pop())

    @torch.no_grad()
    def step(self) -> None:
        if any(p.grad is None for p in self.params):
            raise RuntimeError("StackedAdam.step() without a gradient for every stacked parameter")
        grads = [p.grad for p in self.params]
        if self.norm_eps is not None:  # AdamNormGrad: each member's tensor divided by its own norm
            for g in grads:
                g.div_(_per_member(g.flatten(1).norm(dim=1) + self.norm_eps, g))
        if self.shared_lr:
            self.adam.step()
            return
        for shadow, p, g in zip(self.shadows, self.params, grads, strict=True):
            shadow.zero_()
            shadow.grad = g.add(p, alpha=self.weight_decay) if self.weight_decay else g
        self.adam.step()  # shadow = -(Adam's direction) per element
        for shadow, p in zip(self.shadows, self.params, strict=True):
            p.add_(shadow * _per_member(self.lr, p))
            shadow.grad = None

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    def member_state(self, model: torch.nn.Module, m: int) -> dict:
        """Member m's optimizer state in its standalone optimizer's layout (its own lr in the param group)."""
        state = member_optimizer_state(model, self.adam.state_dict(), m)
        group = state["param_groups"][0]
        group.update(lr=self.lrs[m], **({} if self.shared_lr else {"weight_decay": self.weight_decay}))
        return state

    def keep(self, index: Tensor, params: list[Tensor]) -> StackedAdam:
        """The optimizer of the members at `index` (their stacked parameters `params`), moments carried over."""
        old = self.adam.state_dict()
        settings = {**self.settings, **({} if self.shared_lr else {"weight_decay": self.weight_decay})}
        kept = StackedAdam(params, [self.lrs[i] for i in index.tolist()], settings, self.norm_eps)
        state = {i: {k: v[index] if v.dim() else v for k, v in entry.items()} for i, entry in old["state"].items()}
        groups = kept.adam.state_dict()["param_groups"]
        kept.adam.load_state_dict({"state": state, "param_groups": groups})
        return kept
