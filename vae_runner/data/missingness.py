"""Missing entries, drawn reproducibly from a seed: masks (True = missing) over an (N, F) table or any tensor.

- MCAR (missing completely at random): every entry is missing with probability `rate`, independently.
- MNAR (missing not at random, by a threshold): in each column, the entries above that column's (1 - 2 rate)
  quantile are missing with probability 1/2 and the others are observed, so about `rate` of the column is missing and
  whether a value is missing depends on the value itself (large values hide), the case imputers handle worst.

A row may lose every entry; callers that need one observed entry per row keep it with `keep_one_per_row`.
"""

from __future__ import annotations

import torch
from torch import Tensor


def mcar_mask(shape: tuple[int, ...], rate: float, seed: int) -> Tensor:
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"missing.rate={rate}: a fraction in [0, 1)")
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g) < rate


def mnar_mask(x: Tensor, rate: float, seed: int) -> Tensor:
    """(N, F): large values of each column are missing, about `rate` of every column."""
    if not 0.0 <= rate <= 0.5:
        raise ValueError(f"missing.rate={rate} with MNAR by threshold: a fraction in [0, 0.5]")
    threshold = torch.quantile(x.double(), 1.0 - 2.0 * rate, dim=0, keepdim=True)
    g = torch.Generator().manual_seed(seed)
    return (x.double() > threshold) & (torch.rand(x.shape, generator=g) < 0.5)


def keep_one_per_row(mask: Tensor, seed: int) -> Tensor:
    """`mask` with one random entry observed again in every row that had lost them all."""
    mask = mask.clone()
    empty = mask.all(dim=1).nonzero(as_tuple=True)[0]
    if len(empty):
        g = torch.Generator().manual_seed(seed + 1)
        mask[empty, torch.randint(mask.shape[1], (len(empty),), generator=g)] = False
    return mask
