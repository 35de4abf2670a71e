"""Any folder of images in torchvision's `ImageFolder` layout (root/<class>/<image>), e.g. CelebA or your own data.

Images are resized (shorter side) and centre-cropped to `image_size`, converted to `channels` (1 or 3), and held in
memory as uint8; the train/val/test split is a fixed seeded permutation.
"""

from __future__ import annotations

import os

import torch
from torchvision import datasets, transforms

from vae_runner.data import DataSplits, Split, carve
from vae_runner.errors import UserError


def load_image_folder(
    root: str,
    image_size,
    channels: int,
    val_fraction: float,
    test_fraction: float,
    split_seed: int,
) -> DataSplits:
    root = os.path.expanduser(root)
    h, w = (image_size[0], image_size[-1])
    tf = transforms.Compose(
        [
            transforms.Grayscale(1) if channels == 1 else transforms.Lambda(lambda im: im.convert("RGB")),
            transforms.Resize(max(h, w)),
            transforms.CenterCrop((h, w)),
            transforms.PILToTensor(),
        ]
    )
    try:
        ds = datasets.ImageFolder(root, transform=tf)
    except (FileNotFoundError, NotADirectoryError) as err:
        raise UserError(
            f"dataset=image_folder could not read {root!r}: {err}. Point dataset.root at a folder laid "
            f"out as <root>/<class name>/<image file> (one sub-folder is enough)."
        ) from err
    x = torch.stack([ds[i][0] for i in range(len(ds))])  # (N, C, H, W) uint8; once, at load time
    y = torch.as_tensor(ds.targets, dtype=torch.long)
    n = len(ds)
    n_val, n_test = max(1, round(n * val_fraction)), max(1, round(n * test_fraction))
    if n - n_val - n_test < 1:
        raise UserError(
            f"dataset=image_folder found only {n} images in {root}; it needs at least 3 (train, val, "
            f"test). Add images or lower dataset.val_fraction / dataset.test_fraction."
        )
    tr, va, te = carve(n, n_val, n_test, split_seed)
    whole = Split(x, y)
    return DataSplits(whole.take(tr), whole.take(va), whole.take(te), classes=tuple(ds.classes))
