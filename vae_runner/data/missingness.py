"""Missing entries, drawn reproducibly from a seed: masks (True = missing) over an (N, F) table or any tensor, by the
mechanisms the imputation literature simulates (`missing.kind`; `rate` is the share of each column hidden):

- `mcar` (missing completely at random): every entry is missing with probability `rate`, independently.
- `mar` (missing at random; Muzellec et al. 2020's logistic MAR, the generator of most imputation benchmarks): a
  share `inputs` of the variables stays fully observed, and each other column's entries are missing with a logistic
  probability of the row's observed variables (random positive weights scaled to give each logit sd 1, and an
  intercept fitted so that `rate` of the column goes missing): whether a value is missing depends on observed values
  only, the mechanism under which multiple imputation is valid.
- `mnar_logistic` (missing not at random): as `mar`, and then the input variables are themselves hidden MCAR at
  `rate`, so the other columns' missingness depends on values that may be missing (Muzellec et al.'s MNAR logistic).
- `self_masking` (missing not at random): each entry is missing with a logistic probability of its own value (slope
  one per standard deviation, intercept fitted per column): large values hide more often (as Ipsen et al. 2021,
  not-MIWAE; Muzellec et al.'s self-masked MNAR).
- `mnar` (not at random, by a threshold): in each column the 2 `rate` N largest entries (ties broken at random, so a
  binary or few-valued column hits the rate too) are missing with probability 1/2: about `rate` of the column.

A logistic mechanism is fitted on the training split (input variables, weights, standardisation, intercepts) and
applied to every split, each with its own draws. A one-hot group of columns (a categorical variable,
`DataSplits.categorical_columns`) is one variable: an input as a whole, or hidden as a whole by its first column's
draw. A row may lose every entry; callers that need one observed entry per row keep it with `keep_one_per_row`.

`hide_missing` applies a mask to every split of a table or of images (`missing.*` in the run config; images are
masked pixel by pixel after their binarisation, so the truth is the binarised image): each split gets its own mask
from the seed, its hidden entries become NaN in `x` (what the model sees: the encoder reads them as 0, the
likelihood scores observed entries only), and validation and test keep the complete values in `Split.truth` for
scoring imputations. The training split keeps no copy of what it hides.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

from vae_runner.errors import UserError

KINDS = ("none", "mcar", "mar", "mnar_logistic", "self_masking", "mnar")
LOGISTIC = ("mar", "mnar_logistic", "self_masking")


def mcar_mask(shape: tuple[int, ...], rate: float, seed: int) -> Tensor:
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"missing.rate={rate}: a fraction in [0, 1)")
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g) < rate


def mnar_mask(x: Tensor, rate: float, seed: int) -> Tensor:
    """(N, F): in each column the round(2 rate N) largest entries, ties in random order, are missing with probability
    1/2 (an entry missing already, NaN, never counts as large)."""
    if not 0.0 <= rate <= 0.5:
        raise ValueError(f"missing.rate={rate} with MNAR by threshold: a fraction in [0, 0.5]")
    g = torch.Generator().manual_seed(seed)
    values = x.double().nan_to_num(float("-inf"), float("inf"), float("-inf"))
    shuffled = torch.argsort(torch.rand(x.shape, generator=g), dim=0)  # (N, F): a random order of each column's rows
    ranked = torch.sort(values.gather(0, shuffled), dim=0, descending=True, stable=True).indices
    largest = shuffled.gather(0, ranked)[: round(2 * rate * len(x))]  # rows of each column's largest entries
    large = torch.zeros(x.shape, dtype=torch.bool).scatter_(0, largest, True)
    return large & (torch.rand(x.shape, generator=g) < 0.5)


@dataclass(frozen=True)
class Logistic:
    """P(entry (n, t) missing) = sigmoid(z[n] @ weights[:, t] + intercepts[t]) for each target column t, where z are
    the input columns standardised by the fitted split's mean and sd (a missing input counts as the mean)."""

    inputs: Tensor  # (I,) column indices
    targets: Tensor  # (T,) column indices
    mean: Tensor  # (I,)
    scale: Tensor  # (I,)
    weights: Tensor  # (I, T)
    intercepts: Tensor  # (T,)

    def logits(self, x: Tensor) -> Tensor:
        z = ((x[:, self.inputs].double() - self.mean) / self.scale).nan_to_num(0.0)  # (N, I)
        return z @ self.weights + self.intercepts  # (N, T)

    def mask(self, x: Tensor, rate: float, kind: str, seed: int) -> Tensor:
        """(N, F): the targets drawn with their probabilities; `mnar_logistic`'s inputs MCAR at `rate` too."""
        g = torch.Generator().manual_seed(seed)
        mask = torch.zeros(x.shape, dtype=torch.bool)
        p = torch.sigmoid(self.logits(x))
        mask[:, self.targets] = torch.rand(p.shape, generator=g, dtype=torch.float64) < p
        if kind == "mnar_logistic":
            mask[:, self.inputs] = torch.rand((len(x), len(self.inputs)), generator=g) < rate
        return mask


def variables(n_columns: int, groups) -> list[list[int]]:
    """The table's variables as lists of columns: a one-hot group is one, every other column one of its own."""
    grouped = {c for start, stop in groups for c in range(start, stop)}
    singles = [[c] for c in range(n_columns) if c not in grouped]
    return sorted(singles + [list(range(start, stop)) for start, stop in groups])


def fit_logistic(x: Tensor, rate: float, kind: str, inputs: float | None, seed: int, groups=()) -> Logistic:
    """The logistic mechanism of `kind` fitted on `x` (N, F): its inputs (a share `inputs` of the variables, at least
    one, leaving one; self_masking: each column its own input), weights and per-column intercepts."""
    g = torch.Generator().manual_seed(seed)
    n_columns = x.shape[1]
    if kind == "self_masking":
        chosen, targets = torch.arange(n_columns), torch.arange(n_columns)
        weights = torch.eye(n_columns, dtype=torch.float64)
    else:
        if inputs is None:
            raise ValueError(f"missing.kind={kind} needs `inputs`, the share of the variables it depends on")
        found = variables(n_columns, groups)
        if len(found) < 2:
            raise UserError(f"missing.kind={kind} needs at least two variables (columns); this data has one.")
        order = torch.randperm(len(found), generator=g).tolist()
        n_in = min(max(1, round(inputs * len(found))), len(found) - 1)
        chosen = torch.tensor(sorted(c for v in order[:n_in] for c in found[v]))
        targets = torch.tensor(sorted(c for v in order[n_in:] for c in found[v]))
        weights = torch.rand((len(chosen), len(targets)), generator=g, dtype=torch.float64)
    values = x[:, chosen].double()
    mean = values.nanmean(0)
    scale = (values - mean).pow(2).nanmean(0).sqrt().clamp_min(1e-12)
    z = ((values - mean) / scale).nan_to_num(0.0)
    weights = weights / (z @ weights).std(0).clamp_min(1e-12)  # each target's logit with sd 1
    intercepts = fit_intercepts(z @ weights, rate)
    return Logistic(chosen, targets, mean, scale, weights, intercepts)


def fit_intercepts(logits: Tensor, rate: float, steps: int = 100) -> Tensor:
    """(T,) b with mean(sigmoid(logits[:, t] + b[t])) = rate, by bisection (the mean is increasing in b)."""
    lo = torch.full((logits.shape[1],), -60.0, dtype=torch.float64)
    hi = torch.full((logits.shape[1],), 60.0, dtype=torch.float64)
    for _ in range(steps):
        mid = (lo + hi) / 2
        above = torch.sigmoid(logits + mid).mean(0) > rate
        hi = torch.where(above, mid, hi)
        lo = torch.where(above, lo, mid)
    return (lo + hi) / 2


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


def hide_missing(data, kind: str, rate: float, seed: int, inputs: float | None = None):
    """`data` (DataSplits) with entries hidden as NaN by `kind` at `rate`, one mask per split (seeds 3 seed,
    3 seed + 1, 3 seed + 2 for train, val, test), every row keeping one observed entry. `inputs`: the share of the
    variables a `mar` or `mnar_logistic` mechanism depends on (needed by those two; the mechanism is fitted on the
    training split, seeded by `seed`)."""
    if kind == "none":
        return data
    if kind not in KINDS:
        raise UserError(f"missing.kind={kind}: choose one of {', '.join(KINDS)}.")
    groups = data.categorical_columns
    flat = lambda split: split.floats().reshape(len(split), -1).cpu()  # noqa: E731
    mechanism = fit_logistic(flat(data.train), rate, kind, inputs, seed, groups) if kind in LOGISTIC else None

    def draw(x: Tensor, split_seed: int) -> Tensor:
        if kind == "mcar":
            return mcar_mask(x.shape, rate, split_seed)
        return mnar_mask(x, rate, split_seed) if kind == "mnar" else mechanism.mask(x, rate, kind, split_seed)

    def hide(split, split_seed: int, keep_truth: bool):
        x = split.floats()  # images: in [0, 1] (binarised already where the protocol binarises)
        mask = draw(flat(split), split_seed)
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
