"""Datasets as in-memory tensors: the split containers, seeded carving, binarisation and index batching.

Every loader (`dataset/*.yaml` -> `_target_`) returns a `DataSplits`. `prepare()` applies the binarisation protocol
and moves the tensors to the training device once; the training loop then batches by index (no Dataset/DataLoader
on the hot path).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import Tensor

# Validation and test sets are binarised once, whatever the run's seed, so every run of every sweep is scored on the
# same binary test set: one numpy RandomState(777) stream draws validation then test, on the CPU, as the VampPrior /
# Exemplar-VAE code does (np.random.seed(777); np.random.binomial(1, x_val); np.random.binomial(1, x_test)), so on
# the same split the binary sets are theirs, and a CUDA run scores the same test set as a CPU run.
EVAL_BINARIZE_SEED = 777
STATIC_TRAIN_SEED = 778  # binarize=static: the training set's one draw


@dataclass
class Split:
    x: Tensor  # (N, *shape): uint8 in 0..255 (images, converted per batch) or float32
    y: Tensor | None = None  # (N,) int64 labels, when the dataset has them
    factors: Tensor | None = None  # (N, F) int64 indices of the generative factors, where the dataset knows them
    # (N, *shape) the complete values where x has missing entries (NaN), for scoring imputations: validation and test
    # splits only (data/missingness.py); a training split never holds the values it hides
    truth: Tensor | None = None

    def __len__(self) -> int:
        return self.x.shape[0]

    def take(self, idx: Tensor) -> Split:
        pick = lambda t: None if t is None else t[idx]  # noqa: E731
        return Split(self.x[idx], pick(self.y), pick(self.factors), pick(self.truth))

    def to(self, device) -> Split:
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return Split(self.x.to(device), move(self.y), move(self.factors), move(self.truth))

    def floats(self, idx=None) -> Tensor:
        """x[idx] as float32; uint8 images are scaled to [0, 1]."""
        x = self.x if idx is None else self.x[idx]
        return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


@dataclass
class DataSplits:
    train: Split
    val: Split
    test: Split
    in_unit_range: bool = True  # all values lie in [0, 1] (images); False for real-valued data (synthetic points)
    binarize: str = "none"  # the protocol applied by prepare(): none | static | dynamic
    classes: tuple[str, ...] | None = None  # the name of each label value, where the dataset has them
    factor_names: tuple[str, ...] | None = None  # the generative factors (Split.factors' columns), where known
    factor_sizes: tuple[int, ...] | None = None  # how many values each factor takes
    binary: bool = False  # every value is 0 or 1 (255) already: a Bernoulli likelihood needs no binarisation
    columns: tuple[str, ...] | None = None  # a table's column names (dataset=tabular); its x is (N, F)
    binary_columns: tuple[bool, ...] | None = None  # which of a table's columns hold 0/1 values (Bernoulli)
    # (start, stop) of each one-hot group of columns (a categorical variable, e.g. a class of more than two values):
    # one categorical per group, hidden and imputed as a whole
    categorical_columns: tuple[tuple[int, int], ...] = ()
    ordinal_columns: tuple[tuple[int, int], ...] = ()  # those of the groups whose levels are ordered (cumulative logit)
    count_columns: tuple[bool, ...] = ()  # which of a table's columns hold counts (Poisson), where any do
    schema: object = field(default=None, compare=False)  # a table file's columns and their types (column_types.Schema)
    # a table's standardisation, per column (F,): original = x * scale + offset (data/tabular.py)
    offset: Tensor | None = None
    scale: Tensor | None = None
    native_missing: bool = False  # the data came with missing entries (NaN) of their own, with no truth behind them
    # ((name, shape), ...): the modalities side by side in each flat row (data/modalities.py), where there are several
    modalities: tuple | None = None
    # factor indices (N, F) -> their images (N, *shape) uint8 on the CPU, where any combination can be had
    render: Callable[[Tensor], Tensor] | None = field(default=None, compare=False)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])

    @property
    def has_missing(self) -> bool:
        """Entries to treat as missing: hidden by `missing.*` (their truth kept) or missing in the file itself."""
        return self.test.truth is not None or self.native_missing

    @property
    def is_image(self) -> bool:
        return len(self.shape) == 3


def bootstrap_resample(data: DataSplits, seed: int) -> DataSplits:
    """The training split replaced by n rows drawn from it with replacement (trainer.bootstrap), from a stream of
    `seed`'s own (numpy's SeedSequence of (seed, 'bootstrap')): members seed=0..M-1 get different resamples, each
    reproducible; validation and test rows stay as they are."""
    n = len(data.train)
    rng = np.random.default_rng([seed, int.from_bytes(b"boot", "big")])
    rows = torch.from_numpy(rng.integers(0, n, n)).to(data.train.x.device)
    return replace(data, train=data.train.take(rows))


def carve(n: int, n_val: int, n_test: int, seed: int | None) -> tuple[Tensor, Tensor, Tensor]:
    """A fixed seeded permutation of range(n) cut into (train, val, test) index tensors; seed None: no permutation,
    file order (train first, then val, then test: the reference code's fixed validation set is the file's tail)."""
    if seed is None:
        perm = torch.cat([torch.arange(n - n_val - n_test, n), torch.arange(n - n_val - n_test)])
    else:
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[n_val + n_test :], perm[:n_val], perm[n_val : n_val + n_test]


def binarize_once(split: Split, rng: int | np.random.RandomState) -> Split:
    """x ~ Bernoulli(pixels), drawn once on the CPU from numpy's RandomState (`rng`, or a new one seeded with it)
    with p = pixel / 255 in float64; the result is float32 on the split's device, the same on every device."""
    rng = np.random.RandomState(rng) if isinstance(rng, int) else rng
    x = split.x.cpu()
    p = x.numpy() / 255.0 if x.dtype == torch.uint8 else x.double().numpy()
    binary = torch.from_numpy(rng.binomial(1, p).astype(np.float32))
    return replace(split, x=binary.to(split.x.device))


def prepare(data: DataSplits, binarize: str, device: torch.device) -> DataSplits:
    """Apply the binarisation protocol on the CPU, then move every split to `device`.

    static: every split binarised once with a fixed seed; dynamic: val/test binarised once with a fixed seed, train
    resampled x ~ Bernoulli(pixels) for every batch (by `TrainBatches`).
    """
    train = data.train
    val = data.val
    test = data.test
    if binarize in ("static", "dynamic"):
        rng = np.random.RandomState(EVAL_BINARIZE_SEED)  # one stream: validation first, then test
        val, test = binarize_once(val, rng), binarize_once(test, rng)
    if binarize == "static":
        train = binarize_once(train, STATIC_TRAIN_SEED)
    train, val, test = (s.to(device) for s in (train, val, test))
    return replace(data, train=train, val=val, test=test, binarize=binarize)


class TrainBatches:
    """Shuffled index batches over the training split, drawn from torch's global RNG (checkpointed with the run);
    with `dynamic`, each batch freshly binarised (`resample_binary`)."""

    def __init__(self, split: Split, batch_size: int, dynamic: bool, limit: int | None = None):
        self.split = split
        self.batch_size = batch_size
        self.dynamic = dynamic
        n_batches = -(-len(split) // batch_size)
        self.n_batches = n_batches if limit is None else min(limit, n_batches)

    def __len__(self) -> int:
        return self.n_batches

    def permutation(self) -> Tensor:
        return torch.randperm(len(self.split), device=self.split.x.device)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor | None]]:
        return self.iterate(self.permutation())

    def iterate(self, perm: Tensor, start: int = 0) -> Iterator[tuple[Tensor, Tensor | None]]:
        """The batches of one epoch in the order `perm`, from batch `start` on (a resumed epoch)."""
        for i in range(start, self.n_batches):
            idx = perm[i * self.batch_size : (i + 1) * self.batch_size]
            x = resample_binary(self.split.x[idx]) if self.dynamic else self.split.floats(idx)  # (B, *shape)
            yield x, None if self.split.y is None else self.split.y[idx]


def resample_binary(x: Tensor) -> Tensor:
    """x ~ Bernoulli(pixels) as float32, from the global RNG, by comparison with uniform draws: for uint8 images
    r < x with r uniform on {0, ..., 254} (P(r < x) = x / 255 exactly), for floats in [0, 1] u < x with u ~ U[0, 1).
    ~4x faster on CPU than torch.bernoulli, whose per-element sampling was 10 % of a Fashion-MNIST MLP step."""
    if x.dtype == torch.uint8:
        return (torch.randint(0, 255, x.shape, dtype=torch.uint8, device=x.device) < x).float()
    return (torch.rand(x.shape, device=x.device) < x).float()


def eval_batches(split: Split, batch_size: int) -> Iterator[tuple[Tensor, Tensor | None]]:
    """The split in order, in batches of `batch_size` (already binarised by `prepare` where the protocol says so)."""
    for i in range(0, len(split), batch_size):
        idx = slice(i, i + batch_size)
        yield split.floats(idx), None if split.y is None else split.y[idx]
