"""`CountMacs`: the multiply-adds of the matrix products and convolutions torch runs inside it (what
host/threads.py sizes a run's threads by), counted as torch.utils.flop_counter counts them.

torch's FlopCounterMode would do, but its dispatch hook is wrapped to keep torch.compile out, which imports
torch._dynamo on first use: 1.8 s of every run's start-up on a 2-core EPYC for a count that takes milliseconds.
"""

from __future__ import annotations

import math

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten


def macs(op, args, out) -> int:
    """Multiply-adds of one call of `op` (an aten overload packet) on `args` giving `out`; 0 for other ops."""
    if op in (aten.mm, aten.bmm):  # (.., n, k) @ (.., k, m): every output element is k products
        return out.numel() * args[0].shape[-1]
    if op in (aten.addmm, aten.baddbmm):  # bias + a @ b
        return out.numel() * args[1].shape[-1]
    if op is aten.convolution:  # weight (C_out, C_in / groups, *kernel), or (C_in, C_out / groups, *kernel) transposed
        x, weight, transposed = args[0], args[1], args[6]
        per_element = math.prod(weight.shape[1:])
        return (x if transposed else out).numel() * per_element
    return 0


class CountMacs(TorchDispatchMode):
    """`with CountMacs() as c: ...` runs the block as usual and leaves its multiply-adds in `c.macs`."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:  # nothing inside is compiled: no need to import torch._dynamo
        return False

    def __init__(self):
        super().__init__()
        self.macs = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.macs += macs(func.overloadpacket, args, out)
        return out
