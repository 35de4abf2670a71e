"""The optimizers of `optimizer=` (configs/optimizer/): `Adam`, torch's fused Adam without torch.optim's machinery,
and `AdamNormGrad` (the VampPrior code's Adam on normalised gradients). Any other torch optimizer is one `_target_`
away (`optimizer._target_=torch.optim.SGD`).

Why not torch.optim.Adam itself: every torch.optim method (the constructor's add_param_group, step, zero_grad,
state_dict) imports torch._dynamo on its first call, 1.7-1.8 s on a 2-core EPYC (benchmarks/BENCHMARKS.md
"Start-up"), which every run, sweep job and test process paid for a compiler it never uses. `Adam` calls the same
fused kernel with the same arguments, keeps the same param_groups and state layout (a checkpoint written by one loads
in the other) and steps bit for bit as torch.optim.Adam(fused=True) does (tests/test_optimizers.py).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

# torch.optim.Adam's group settings and their defaults, in its order: a state_dict's param_groups carry all of them.
DEFAULTS = {
    "betas": (0.9, 0.999),
    "eps": 1e-8,
    "weight_decay": 0,
    "amsgrad": False,
    "maximize": False,
    "foreach": None,
    "capturable": False,
    "differentiable": False,
    "fused": True,
    "decoupled_weight_decay": False,
}
# Settings of torch.optim.Adam this one does not have, with the value it needs.
FIXED = {"foreach": None, "capturable": False, "differentiable": False, "fused": True}


def _groups(params: Iterable, settings: dict) -> list[dict]:
    params = list(params)
    groups = params if params and isinstance(params[0], dict) else [{"params": params}]
    groups = [{**settings, **g, "params": list(g["params"])} for g in groups]
    for g in groups:
        wrong = {k: g[k] for k in FIXED if g[k] != FIXED[k]}
        if wrong:
            raise ValueError(
                f"vae_runner.optimizers.Adam is torch's fused Adam: {wrong} is not available; for torch's other "
                f"implementations use optimizer._target_=torch.optim.Adam"
            )
    return groups


class Adam:
    """Adam (Kingma & Ba 2015) as torch.optim.Adam(fused=True) computes it: `params` tensors or param-group dicts,
    torch's keywords (betas, eps, weight_decay, amsgrad, maximize, decoupled_weight_decay)."""

    def __init__(self, params: Iterable, lr: float, **settings):
        unknown = set(settings) - set(DEFAULTS)
        if unknown:
            raise TypeError(f"Adam got unexpected settings {sorted(unknown)}")
        self.defaults = {"lr": lr, **DEFAULTS, **settings}
        self.param_groups = _groups(params, self.defaults)
        self.state: dict[Tensor, dict] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.zero_()

    def _moments(self, p: Tensor, amsgrad: bool) -> dict:
        """p's state, created as torch creates it for fused Adam (a float32 step on p's device, zero moments)."""
        state = self.state.get(p)
        if state is None:
            zeros = {"memory_format": torch.preserve_format}
            state = {"step": torch.zeros((), dtype=torch.float32, device=p.device)}
            state.update(exp_avg=torch.zeros_like(p, **zeros), exp_avg_sq=torch.zeros_like(p, **zeros))
            if amsgrad:
                state["max_exp_avg_sq"] = torch.zeros_like(p, **zeros)
            self.state[p] = state
        return state

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            self._step_group(group)
        return loss

    def _step_group(self, group: dict) -> None:
        by_place: dict[tuple, list[list[Tensor]]] = {}  # (device, dtype) -> params, grads, moments, steps
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError("Adam does not support sparse gradients")
            s = self._moments(p, group["amsgrad"])
            lists = by_place.setdefault((p.device, p.dtype), [[], [], [], [], [], []])
            extra = [s["max_exp_avg_sq"]] if group["amsgrad"] else []
            for i, t in enumerate(([p], [p.grad], [s["exp_avg"]], [s["exp_avg_sq"]], extra, [s["step"]])):
                lists[i] += t
        beta1, beta2 = group["betas"]
        kernel = torch._fused_adamw_ if group["decoupled_weight_decay"] else torch._fused_adam_
        for params, grads, exp_avgs, exp_avg_sqs, max_sqs, steps in by_place.values():
            torch._foreach_add_(steps, 1)
            kernel(
                params,
                grads,
                exp_avgs,
                exp_avg_sqs,
                max_sqs,
                steps,
                amsgrad=group["amsgrad"],
                lr=group["lr"],
                beta1=beta1,
                beta2=beta2,
                weight_decay=group["weight_decay"],
                eps=group["eps"],
                maximize=group["maximize"],
                grad_scale=None,
                found_inf=None,
            )

    def state_dict(self) -> dict:
        """torch.optim's layout: state keyed by the parameters' running index, groups with their index lists."""
        index = {}
        groups = []
        for group in self.param_groups:
            ids = [index.setdefault(id(p), len(index)) for p in group["params"]]
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": ids})
        state = {index[id(p)]: s for p, s in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """A state_dict of this class or of torch.optim.Adam: the saved settings replace the groups' (as torch
        does), the moments are cast to each parameter's dtype and device, the step to float32 on its device."""
        saved = state_dict["param_groups"]
        if [len(g["params"]) for g in saved] != [len(g["params"]) for g in self.param_groups]:
            raise ValueError("the optimizer state's parameter groups do not match this model's")
        by_index = {i: p for g, sg in zip(self.param_groups, saved) for i, p in zip(sg["params"], g["params"])}
        self.param_groups = _groups(
            [
                {**{k: v for k, v in sg.items() if k != "param_names"}, "params": g["params"]}
                for g, sg in zip(self.param_groups, saved)
            ],
            self.defaults,
        )
        self.state = {}
        for i, entry in state_dict["state"].items():
            p = by_index[i]
            self.state[p] = {
                k: v.to(dtype=torch.float32 if k == "step" else p.dtype, device=p.device) for k, v in entry.items()
            }


class AdamNormGrad(Adam):
    """Adam on per-tensor normalised gradients (Tomczak & Welling 2018's code): before each step every parameter
    tensor's gradient g becomes g / (||g||_2 + norm_eps); the Adam update is torch's.

    The reference adds Adam's eps to sqrt(v) before bias correction (torch: after); with eps = 1e-8 and normalised
    gradients of size ~1/sqrt(numel) >> 1e-8 the two updates differ by far less than float32 rounding.
    """

    def __init__(self, params, lr: float, norm_eps: float, **adam_settings):
        super().__init__(params, lr=lr, **adam_settings)
        self.norm_eps = float(norm_eps)

    @torch.no_grad()
    def step(self, closure=None):
        grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
        if grads:
            norms = torch._foreach_norm(grads)  # one kernel for all tensors
            torch._foreach_add_(norms, self.norm_eps)
            torch._foreach_div_(grads, norms)
        return super().step(closure)
