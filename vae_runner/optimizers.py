"""Optimizers that torch does not ship, for `optimizer=` (configs/optimizer/). torch's own are used by `_target_`
directly (`optimizer=adam` is `torch.optim.Adam`)."""

from __future__ import annotations

import torch


class AdamNormGrad(torch.optim.Adam):
    """Adam on per-tensor normalised gradients (Tomczak & Welling 2018's code): before each step every parameter
    tensor's gradient g becomes g / (||g||_2 + norm_eps); the Adam update is torch's.

    The reference adds Adam's eps to sqrt(v) before bias correction (torch: after); with eps = 1e-8 and normalised
    gradients of size ~1/sqrt(numel) >> 1e-8 the two updates differ by far less than float32 rounding.
    """

    def __init__(self, params, lr: float, norm_eps: float, **adam_kwargs):
        super().__init__(params, lr=lr, **adam_kwargs)
        self.norm_eps = float(norm_eps)

    @torch.no_grad()
    def step(self, closure=None):
        grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
        if grads:
            norms = torch._foreach_norm(grads)  # one kernel for all tensors
            torch._foreach_add_(norms, self.norm_eps)
            torch._foreach_div_(grads, norms)
        return super().step(closure)
