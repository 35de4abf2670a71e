"""A labelled image dataset as several modalities of one example (`modalities.use`), packed side by side in one
flat float row so that the trainer, the objective and the evaluation treat it as any other data:

- `image`: the image's pixels (binarised first where the protocol says so), flattened;
- `label`: the class as a one-hot block;
- `attributes`: a tabular modality with a known dependence on the image, and through it on the label: the image's
  ink (mean grey level) and the ink's centre of mass (row, column), computed from the grey-level image and
  standardised by the training split's mean and standard deviation.

`DataSplits.modalities` records the layout, ((name, shape), ...) in row order. A missing modality is a block of NaN
(model/modalities.py: its expert is left out of the joint posterior and its likelihood term is 0). With
`modalities.missing` > 0 every split loses each of an example's modalities with that probability (each example
keeps one), from its own seeded mask (seeds 3 seed, 3 seed + 1, 3 seed + 2 for train, val, test, like
data/missingness.py); validation and test keep the complete rows in `Split.truth`, the training split no copy.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
from torch import Tensor

from vae_runner.data import DataSplits, Split, prepare
from vae_runner.data.missingness import keep_one_per_row, mcar_mask
from vae_runner.errors import UserError

NAMES = ("image", "label", "attributes")


def attributes(grey: Tensor) -> Tensor:
    """(N, 3) of grey-level images (N, C, H, W) in [0, 1]: ink and the ink's centre of mass (row, column), the
    channels averaged."""
    img = grey.mean(1)
    mass = img.sum((1, 2)).clamp(min=1e-6)
    rows, cols = torch.arange(float(img.shape[1])), torch.arange(float(img.shape[2]))
    row, col = (img.sum(2) * rows).sum(1) / mass, (img.sum(1) * cols).sum(1) / mass
    return torch.stack([img.mean((1, 2)), row, col], dim=1)


def blocks(layout) -> list[tuple[str, slice, tuple[int, ...]]]:
    """(name, columns of the packed row, shape) per modality."""
    out, start = [], 0
    for name, shape in layout:
        size = math.prod(shape)
        out.append((name, slice(start, start + size), tuple(shape)))
        start += size
    return out


def present(x: Tensor, layout) -> Tensor:
    """(E, ..., B) bool: which modalities each packed row (..., B, F) has (any entry of its block observed)."""
    return torch.stack([~torch.isnan(x[..., cols]).all(-1) for _, cols, _ in blocks(layout)])


def hide(x: Tensor, layout, names) -> Tensor:
    """Packed rows with the modalities `names` hidden (NaN)."""
    x = x.clone()
    for name, cols, _ in blocks(layout):
        if name in names:
            x[..., cols] = float("nan")
    return x


def image_block(x: Tensor, layout) -> Tensor:
    """The image modality of packed rows, (N, *image shape); missing pixels shown as 0.5 grey."""
    name, cols, shape = blocks(layout)[0]
    return torch.nan_to_num(x[..., cols], nan=0.5).reshape(*x.shape[:-1], *shape)


def as_images(data: DataSplits, x: Tensor) -> Tensor | None:
    """x as images (N, C, H, W) for pictures: the data's own, the image block of multimodal rows, None otherwise."""
    if data.modalities:
        return image_block(x, data.modalities)
    return x if data.is_image else None


def pack(binary: DataSplits, grey: DataSplits, names, missing: float, seed: int) -> DataSplits:
    """`binary` (the images as the likelihood will see them) as packed rows of the modalities `names`; `grey`: the
    same splits before binarisation (for the attributes)."""
    names = list(names)
    if names[:1] != ["image"] or any(n not in NAMES for n in names) or len(set(names)) != len(names):
        raise UserError(
            f"modalities.use={names}: the image first, then any of label, attributes, each once "
            f"(e.g. modalities.use=[image,label])."
        )
    if not binary.is_image or binary.train.y is None:
        raise UserError(
            "modalities.use needs a labelled image dataset (digits, mnist, fashion_mnist, cifar10, image_folder); "
            "for a table, missing entries are missing.kind/missing.rate with modalities.use=[image]."
        )
    classes = int(binary.train.y.max()) + 1 if binary.classes is None else len(binary.classes)
    ink = attributes(grey.train.floats()) if "attributes" in names else None
    stats = None if ink is None else (ink.mean(0), ink.std(0).clamp(min=1e-6))
    layout = tuple((n, {"image": binary.shape, "label": (classes,), "attributes": (3,)}[n]) for n in names)

    def rows(split: Split, grey_split: Split) -> Tensor:
        parts = {"image": split.floats().flatten(1), "label": torch.nn.functional.one_hot(split.y, classes).float()}
        if stats is not None:
            parts["attributes"] = (attributes(grey_split.floats()) - stats[0]) / stats[1]
        return torch.cat([parts[n] for n in names], dim=1)

    def split_of(split: Split, grey_split: Split, split_seed: int, keep_truth: bool) -> Split:
        x = rows(split, grey_split)
        if missing > 0:
            lost = keep_one_per_row(mcar_mask((len(x), len(names)), missing, split_seed), split_seed)
            full, x = x, x.clone()
            for e, (_, cols, _) in enumerate(blocks(layout)):
                x[lost[:, e], cols] = float("nan")
            return Split(x, split.y, split.factors, full if keep_truth else None)
        return Split(x, split.y, split.factors)

    return replace(
        binary,
        train=split_of(binary.train, grey.train, 3 * seed, keep_truth=False),
        val=split_of(binary.val, grey.val, 3 * seed + 1, keep_truth=True),
        test=split_of(binary.test, grey.test, 3 * seed + 2, keep_truth=True),
        in_unit_range=ink is None,
        binary=False,
        modalities=layout,
    )


def with_modalities(data: DataSplits, binarize: str, spec, seed: int) -> DataSplits:
    """`data` (grey-level image splits) as packed rows of `spec.use` (`modalities.*`), the images binarised once
    (binarize static) or kept as they are (none), with `spec.missing` of the modalities hidden from `seed`."""
    if binarize == "dynamic":
        raise UserError(
            "dataset.binarize=dynamic resamples every training batch, but the modalities of an example are packed "
            "once (modalities.use): set dataset.binarize=static (or auto, which is static here)."
        )
    binary = prepare(data, binarize, torch.device("cpu"))
    return pack(binary, data, list(spec.use), float(spec.missing), seed)
