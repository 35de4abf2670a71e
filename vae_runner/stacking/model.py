"""M VAEs of one shape as one model, for a sweep trained in one process: `stack_vaes` turns every nn.Linear of the
members' encoders and decoders into a `StackedLinear` that holds the M members' weights on a leading axis and runs
one batched matrix product (torch.baddbmm) where M runs would each run a small one. The member axis then leads every
tensor: x (M, B, *shape), z (M, B, D), the objective's terms (M, B); the priors, likelihoods and the objective
broadcast over it unchanged. `member_state_dict` and `member_optimizer_state` give member m's weights and Adam
moments back in the standalone model's layout, so its checkpoint is an ordinary run's.

On CPU, batched layers beat vmap over stacked nn.Linear modules (`torch.func.stack_module_state`, measured in
benchmarks/bench_batched.py): vmap transposes and copies every weight at every call.

What stacks: encoders and decoders made of nn.Linear and element-wise modules (architecture=mlp, gated_mlp), the
priors in STACKED_PRIORS (all six: their parameters get a leading member axis, their networks are stacked
layers), and the likelihoods in STACKED_LIKELIHOODS (bernoulli and mse, without parameters; gaussian, whose learned
sigma (*shape) becomes (M, 1, *shape), one per member, broadcasting over the batch axis). `not_stackable` names what
does not, so that run trains alone.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

ELEMENTWISE = (nn.ReLU, nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.Identity, nn.Sequential)
# Priors whose parameters stack on a leading member axis: their density code (priors/mixture.py) broadcasts over it,
# and the VampPrior's pseudo-inputs go through the stacked encoder.
# A prior's own networks are stacked too (the flow's coupling nets; GTM's grid network, whose first layer reads the
# fixed grid every member shares: the prior's class names that network `grid_network`).
STACKED_PRIORS = ("GaussianPrior", "MoGPrior", "VampPrior", "GTMPrior", "GTMVampPrior", "FlowPrior")
# Likelihoods that broadcast over the member axis: without parameters, or (Gaussian) with parameters shaped like one
# example that act on the decoder's output element-wise: stacked as (M, 1, *shape), they broadcast over (M, B, *shape).
STACKED_LIKELIHOODS = ("Bernoulli", "MSE", "Gaussian")


class StackedLinear(nn.Module):
    """M linear maps: weight (M, in, out), bias (M, 1, out); x (M, ..., in) -> (M, ..., out), or with `shared_input`
    x (..., in), one input for every member (a prior's fixed grid), -> (M, ..., out)."""

    def __init__(self, layers: list[nn.Linear], shared_input: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.stack([layer.weight.detach().t() for layer in layers]).contiguous())
        self.bias = nn.Parameter(torch.stack([layer.bias.detach()[None] for layer in layers]).contiguous())
        self.shared_input = shared_input

    def forward(self, x: Tensor) -> Tensor:
        m, n_in, n_out = self.weight.shape
        if self.shared_input:
            x = x.expand(m, *x.shape)
        h = torch.baddbmm(self.bias, x.reshape(m, -1, n_in), self.weight)  # (M, N, out)
        return h.view(*x.shape[:-1], n_out)

    def member(self, m: int) -> dict[str, Tensor]:
        """Member m's parameters as nn.Linear holds them."""
        return {"weight": self.weight[m].t(), "bias": self.bias[m, 0]}


def not_stackable(model: nn.Module) -> str | None:
    """Why `model` cannot be one member of a stack (None: it can)."""
    if type(model.prior).__name__ not in STACKED_PRIORS:
        return f"its prior ({type(model.prior).__name__}) has no batched version (those that have: {STACKED_PRIORS})"
    if (kind := type(model.likelihood).__name__) not in STACKED_LIKELIHOODS:
        return f"its likelihood ({kind}) has no batched version (those that have: {STACKED_LIKELIHOODS})"
    for part in ("encoder", "decoder"):
        for name, module in getattr(model, part).named_modules():
            if not isinstance(module, (nn.Linear, *ELEMENTWISE)) and list(module.parameters(recurse=False)):
                return f"its {part} holds a {type(module).__name__} ({name}), which has no batched version"
    return None


def stack_vaes(models: list[nn.Module]) -> nn.Module:
    """One model computing all of `models` (same architecture; each checked with `not_stackable`)."""
    for model in models:
        reason = not_stackable(model)
        if reason is not None:
            raise ValueError(f"cannot stack this model: {reason}")
    stacked = copy.deepcopy(models[0])
    for part in ("encoder", "decoder"):
        linears = [name for name, m in getattr(stacked, part).named_modules() if isinstance(m, nn.Linear)]
        for name in linears:
            layers = [getattr(model, part).get_submodule(name) for model in models]
            parent, _, leaf = name.rpartition(".")
            getattr(stacked, part).get_submodule(parent).register_module(leaf, StackedLinear(layers))
    prior_linears = [name for name, m in stacked.prior.named_modules() if isinstance(m, nn.Linear)]
    grid_network = getattr(type(stacked.prior), "grid_network", None)
    grid_fed = next((n for n in prior_linears if n.startswith(f"{grid_network}.")), None) if grid_network else None
    for name in prior_linears:  # (the encoder a VampPrior reads is not a sub-module: stacked above)
        parent, _, leaf = name.rpartition(".")
        layers = [model.prior.get_submodule(name) for model in models]
        stacked.prior.get_submodule(parent).register_module(leaf, StackedLinear(layers, shared_input=name == grid_fed))
    stacked_prior = {f"{name}.{leaf}" for name in prior_linears for leaf in ("weight", "bias")}
    for name, _ in models[0].prior.named_parameters():  # (M, *shape): each member's own prior parameters
        if name in stacked_prior:
            continue
        owner, _, leaf = name.rpartition(".")
        module = stacked.prior.get_submodule(owner)
        setattr(module, leaf, nn.Parameter(torch.stack([m.prior.get_parameter(name).detach() for m in models])))
    for name, _ in models[0].likelihood.named_parameters():  # (M, 1, *shape): broadcast over the batch axis
        owner, _, leaf = name.rpartition(".")
        module = stacked.likelihood.get_submodule(owner)
        values = torch.stack([m.likelihood.get_parameter(name).detach() for m in models])
        setattr(module, leaf, nn.Parameter(values.unsqueeze(1).contiguous()))
    return stacked


def member_view(stacked: nn.Module, name: str, value: Tensor, m: int) -> Tensor:
    """Member m's part of `value`, a tensor shaped like the stacked model's entry `name` (a parameter, or its Adam
    moments), in the standalone layout; entries outside the stacked layers are shared and returned whole."""
    owner, _, leaf = name.rpartition(".")
    if isinstance(stacked.get_submodule(owner) if owner else stacked, StackedLinear):
        return value[m].t() if leaf == "weight" else value[m, 0]
    if name.startswith("prior.") and name in dict(stacked.named_parameters()):
        return value[m]  # a stacked prior parameter (not of a StackedLinear: handled above)
    if name.startswith("likelihood.") and name in dict(stacked.named_parameters()):
        return value[m, 0]  # a stacked likelihood parameter
    return value


def _copy(t: Tensor) -> Tensor:
    """A contiguous copy: a member's weight is a transposed view of its stack's, and torch's fused Adam computes
    wrong updates with non-contiguous moments loaded into it (found by resuming a member alone)."""
    return t.detach().clone(memory_format=torch.contiguous_format)


def member_state_dict(stacked: nn.Module, m: int) -> dict[str, Tensor]:
    """Member m's state_dict, key for key what the standalone model's state_dict() holds (copies)."""
    return {k: _copy(member_view(stacked, k, v, m)) for k, v in stacked.state_dict().items()}


def member_optimizer_state(stacked: nn.Module, optimizer_state: dict, m: int) -> dict:
    """Member m's part of the stacked model's optimizer.state_dict(): what the standalone run's optimizer holds
    (the stacked model lists its parameters in the standalone model's order, under the same names)."""
    names = [name for name, p in stacked.named_parameters() if p.requires_grad]
    state = {
        i: {k: _copy(member_view(stacked, names[i], v, m)) if v.dim() else v.clone() for k, v in entry.items()}
        for i, entry in optimizer_state["state"].items()
    }
    return {"state": state, "param_groups": copy.deepcopy(optimizer_state["param_groups"])}
