"""scikit-learn's bundled 8x8 handwritten digits (1797 images): the default dataset, available offline everywhere."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from vae_runner.data import DataSplits, Split, carve


def load_digits(val_fraction: float, test_fraction: float, split_seed: int) -> DataSplits:
    """Grey levels 0..16 scaled to [0, 1], shape (1, 8, 8); a fixed seeded train/val/test split."""
    pixels, labels = digits_file()
    x = torch.from_numpy(pixels).float().div_(16.0).reshape(-1, 1, 8, 8)  # (1797, 1, 8, 8)
    y = torch.from_numpy(labels).long()
    n = x.shape[0]
    tr, va, te = carve(n, round(n * val_fraction), round(n * test_fraction), split_seed)
    whole = Split(x, y)
    return DataSplits(whole.take(tr), whole.take(va), whole.take(te), classes=tuple(map(str, range(10))))


def digits_file() -> tuple[np.ndarray, np.ndarray]:
    """(1797, 64) grey levels and (1797,) labels, read from the file scikit-learn ships (sklearn/datasets/data/
    digits.csv.gz, pixels then the label on each line) without importing scikit-learn (~1 s of start-up); its
    load_digits where the file is not found (tests/test_startup.py checks both agree)."""
    spec = importlib.util.find_spec("sklearn")  # locates the package, imports nothing
    file = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
    if file is None or not file.exists():
        from sklearn.datasets import load_digits

        bunch = load_digits()
        return bunch.data, bunch.target
    table = np.loadtxt(file, delimiter=",")
    return table[:, :-1], table[:, -1].astype(int)
