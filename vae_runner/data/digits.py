"""scikit-learn's bundled 8x8 handwritten digits (1797 images): the default dataset, available offline everywhere."""

from __future__ import annotations

import torch
from sklearn.datasets import load_digits as _sk_load_digits

from vae_runner.data import DataSplits, Split, carve


def load_digits(val_fraction: float, test_fraction: float, split_seed: int) -> DataSplits:
    """Grey levels 0..16 scaled to [0, 1], shape (1, 8, 8); a fixed seeded train/val/test split."""
    bunch = _sk_load_digits()
    x = torch.from_numpy(bunch.data).float().div_(16.0).reshape(-1, 1, 8, 8)  # (1797, 1, 8, 8)
    y = torch.from_numpy(bunch.target).long()
    n = x.shape[0]
    tr, va, te = carve(n, round(n * val_fraction), round(n * test_fraction), split_seed)
    whole = Split(x, y)
    return DataSplits(whole.take(tr), whole.take(va), whole.take(te), classes=tuple(map(str, bunch.target_names)))
