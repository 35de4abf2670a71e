"""MNIST, Fashion-MNIST and CIFAR-10 through torchvision's dataset classes, with an offline fallback.

The training set is split into train/val with a fixed seed (`val_size` images go to validation); test is the
official test set. When `root` holds no copy, the raw IDX `.gz` files in `system_dirs` (Debian's
`dataset-fashion-mnist` installs them in /usr/share/datasets/fashion-mnist) are read in place.
"""

from __future__ import annotations

import gzip
import logging
import os
from pathlib import Path

import numpy as np
import torch
import torchvision

from vae_runner.data import DataSplits, Split, carve
from vae_runner.errors import UserError

log = logging.getLogger("vae_runner")

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: Path) -> np.ndarray:
    """An unsigned-byte IDX file (optionally gzipped) as a numpy array."""
    raw = gzip.open(path, "rb").read() if path.suffix == ".gz" else path.read_bytes()
    magic = int.from_bytes(raw[:4], "big")
    ndim, dtype_code = magic & 0xFF, (magic >> 8) & 0xFF
    if raw[:2] != b"\x00\x00" or dtype_code != 0x08:
        raise UserError(f"{path} is not an unsigned-byte IDX file (magic {magic:#x}); replace it with the original.")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _find_idx(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def _from_system_dirs(system_dirs) -> dict | None:
    for d in map(Path, system_dirs):
        paths = {split: [_find_idx(d, s) for s in stems] for split, stems in IDX_FILES.items()}
        if all(p is not None for ps in paths.values() for p in ps):
            log.info("read %s", ", ".join(str(p) for ps in paths.values() for p in ps))
            return {
                split: (torch.from_numpy(read_idx(xi).copy()), torch.from_numpy(read_idx(yi).astype(np.int64)))
                for split, (xi, yi) in paths.items()
            }
    return None


def _torchvision(cls, root: str, download: bool) -> tuple | None:
    """(train, test) torchvision datasets, or None when the files are not in `root` and download is off."""
    try:
        return cls(root, train=True, download=download), cls(root, train=False, download=download)
    except RuntimeError as err:  # torchvision: "Dataset not found ..." / "... corrupted"
        if download:
            raise UserError(
                f"Could not download {cls.__name__} into {root}: {err}. Without network access, place "
                f"the files there yourself in torchvision's layout."
            ) from err
        return None
    except OSError as err:  # network failures during download
        raise UserError(
            f"Could not download {cls.__name__} into {root} ({err}). Check the network, or place the "
            f"files there yourself in torchvision's layout and set dataset.download=false."
        ) from err


def _mnist_tensors(ds) -> tuple[torch.Tensor, torch.Tensor]:
    return ds.data.unsqueeze(1).contiguous(), ds.targets.long()  # (N, 1, 28, 28) uint8


def _cifar_tensors(ds) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # (N, 3, 32, 32) uint8
    return x, torch.as_tensor(ds.targets, dtype=torch.long)


# torchvision's CIFAR10 reads its class names from the downloaded files; the other two name them on the class
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _load(cls, to_tensors, root: str, download: bool, val_size: int, split_seed: int, system_dirs) -> DataSplits:
    root = os.path.expanduser(root)
    found = _torchvision(cls, root, download=False)
    if found is None and system_dirs:
        log.info("%s is not in dataset.root=%s; looking in %s", cls.__name__, root, ", ".join(map(str, system_dirs)))
    if found is not None:
        log.info("read %s's files under %s", cls.__name__, root)
        (xtr, ytr), (xte, yte) = map(to_tensors, found)
    elif (arrays := _from_system_dirs(system_dirs)) is not None:
        (xtr, ytr), (xte, yte) = arrays["train"], arrays["test"]
        xtr, xte = xtr.unsqueeze(1).contiguous(), xte.unsqueeze(1).contiguous()
    elif download:
        (xtr, ytr), (xte, yte) = map(to_tensors, _torchvision(cls, root, download=True))
    else:
        where = (
            [str(Path(root) / cls.__name__)]
            if cls is not torchvision.datasets.CIFAR10
            else [str(Path(root) / "cifar-10-batches-py")]
        )
        where += [str(d) for d in system_dirs]
        hint = " or install Debian's dataset-fashion-mnist package" if system_dirs else ""
        raise UserError(
            f"{cls.__name__} was not found offline; looked in: {', '.join(where)}. Turn on downloading "
            f"with dataset.download=true, or point dataset.root=<folder> at a copy in torchvision's "
            f"layout{hint}."
        )
    if not 0 < val_size < len(xtr):
        raise UserError(f"dataset.val_size={val_size} must be between 1 and the {len(xtr)} training images - 1.")
    tr, va, _ = carve(len(xtr), val_size, 0, split_seed)
    train = Split(xtr, ytr)
    classes = CIFAR10_CLASSES if cls is torchvision.datasets.CIFAR10 else tuple(cls.classes)
    return DataSplits(train.take(tr), train.take(va), Split(xte, yte), classes=classes)


def load_mnist(root: str, download: bool, val_size: int, split_seed: int | None, system_dirs) -> DataSplits:
    return _load(torchvision.datasets.MNIST, _mnist_tensors, root, download, val_size, split_seed, system_dirs)


def load_fashion_mnist(root: str, download: bool, val_size: int, split_seed: int | None, system_dirs) -> DataSplits:
    return _load(torchvision.datasets.FashionMNIST, _mnist_tensors, root, download, val_size, split_seed, system_dirs)


def load_cifar10(root: str, download: bool, val_size: int, split_seed: int | None, system_dirs) -> DataSplits:
    return _load(torchvision.datasets.CIFAR10, _cifar_tensors, root, download, val_size, split_seed, ())
