"""Missing entries, drawn reproducibly from a seed: masks (True = missing) over an (N, F) table or any tensor.

- MCAR (missing completely at random): every entry is missing with probability `rate`, independently.
- MNAR (missing not at random, by a threshold): in each column, the entries above that column's (1 - 2 rate)
  quantile are missing with probability 1/2 and the others are observed, so about `rate` of the column is missing and
  whether a value is missing depends on the value itself (large values hide), the case imputers handle worst.

A row may lose every entry; callers that need one observed entry per row keep it with `keep_one_per_row`. A one-hot
group of columns (a categorical variable, `DataSplits.categorical_columns`) is hidden as a whole, by its first
column's draw.

`hide_missing` applies a mask to every split of a table or of images (`missing.*` in the run config; images are
masked pixel by pixel after their binarisation, so the truth is the binarised image): each split gets its own mask
from the seed, its hidden entries become NaN in `x` (what the model sees: the encoder reads them as 0, the
likelihood scores observed entries only), and validation and test keep the complete values in `Split.truth` for
scoring imputations. The training split keeps no copy of what it hides.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from vae_runner.errors import UserError

KINDS = ("none", "mcar", "mnar")


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


def whole_groups(mask: Tensor, groups, by_first: bool) -> Tensor:
    """`mask` with each (start, stop) column group hidden as a whole: where its first column is (`by_first`), or
    where all of its columns are (after `keep_one_per_row` may have revealed one)."""
    mask = mask.clone()
    for start, stop in groups:
        hidden = mask[:, start] if by_first else mask[:, start:stop].all(1)
        mask[:, start:stop] = hidden[:, None]
    return mask


def hide_missing(data, kind: str, rate: float, seed: int):
    """`data` (DataSplits) with entries hidden as NaN: MCAR or MNAR at `rate`, one mask per split (seeds 3 seed,
    3 seed + 1, 3 seed + 2 for train, val, test), every row keeping one observed entry."""
    if kind == "none":
        return data
    if kind not in KINDS:
        raise UserError(f"missing.kind={kind}: choose one of {', '.join(KINDS)}.")

    def hide(split, split_seed: int, keep_truth: bool):
        x = split.floats()  # images: in [0, 1] (binarised already where the protocol binarises)
        flat = x.reshape(len(x), -1).cpu()
        mask = mcar_mask(flat.shape, rate, split_seed) if kind == "mcar" else mnar_mask(flat, rate, split_seed)
        groups = data.categorical_columns
        mask = whole_groups(keep_one_per_row(whole_groups(mask, groups, True), split_seed), groups, False)
        mask = mask.view_as(x).to(x.device)
        return replace(split, x=x.masked_fill(mask, float("nan")), truth=x if keep_truth else None)

    return replace(
        data,
        train=hide(data.train, 3 * seed, keep_truth=False),
        val=hide(data.val, 3 * seed + 1, keep_truth=True),
        test=hide(data.test, 3 * seed + 2, keep_truth=True),
    )


def check_missing_pixels(binarize: str, several: bool) -> None:
    """Missing pixels are hidden once, after a binarisation drawn once (the truth of a hidden pixel is one value)."""
    if several:
        raise UserError(
            "missing.kind hides entries of one table or image; with modalities.use, whole modalities go missing "
            "with modalities.missing. Set missing.kind=none (or modalities.use=[image])."
        )
    if binarize == "dynamic":
        raise UserError(
            "missing.kind with dataset.binarize=dynamic: a hidden pixel's true value must be drawn once, and "
            "dynamic binarisation redraws the training images every step. Set dataset.binarize=static (or auto)."
        )
