"""Datasets whose generative factors are known, for the disentanglement metrics: dSprites, rendered offline, and a
tiny two-factor set for tests. Each split carries `factors` (N, F) int64, the index of each factor's value.

dSprites (Matthey et al. 2017) is the grid shape {square, ellipse, heart} x 6 scales (0.5 to 1) x 40 orientations
(0 to 2 pi, both ends included, as in the file) x 32 x 32 positions (0 to 1) = 737,280 binary 64 x 64 images;
`dsprites_grid()` is that grid in the file's order (image i has factor indices `np.unravel_index(i, SIZES)`). No
download exists here, so `render_sprites` draws each image from its factors: the sprite's shape as an implicit
function, scaled, rotated and placed, sampled at the pixel centres. The grid, its order and its factor values are
the file's; the pixels are ours (a shape's size and margin are chosen to fit the frame, not copied from DeepMind's
renderer), so numbers on our rendering are comparable with each other, not with published tables. A user with the
real `dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz` passes its folder as `dataset.root` and gets the real pixels.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from vae_runner.data import DataSplits, Split, carve

FACTORS = ("shape", "scale", "orientation", "pos_x", "pos_y")
SIZES = (3, 6, 40, 32, 32)
SHAPES = ("square", "ellipse", "heart")
NPZ_NAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
SIDE = 64
HALF_SIZE = 9.0  # pixels: the sprite's half-width at scale 1 (a square at scale 1 is 18 x 18)
MARGIN = 13.0  # pixels: the centre's distance from the border at position 0 or 1 (the largest sprite, turned, fits)
RENDER_VERSION = "1"  # part of the cache's file names: change it with anything that changes the pixels


def factor_values(indices: Tensor) -> dict[str, Tensor]:
    """The dSprites values of factor indices (N, 5): scale in [0.5, 1], orientation in [0, 2 pi], positions in
    [0, 1] (torch.linspace over each factor's size, as the file's latents_values)."""
    idx = indices.long()
    return {
        "shape": idx[:, 0],
        "scale": torch.linspace(0.5, 1.0, SIZES[1], dtype=torch.float64)[idx[:, 1]],
        "orientation": torch.linspace(0.0, 2 * math.pi, SIZES[2], dtype=torch.float64)[idx[:, 2]],
        "pos_x": torch.linspace(0.0, 1.0, SIZES[3], dtype=torch.float64)[idx[:, 3]],
        "pos_y": torch.linspace(0.0, 1.0, SIZES[4], dtype=torch.float64)[idx[:, 4]],
    }


def inside(shape: int, u: Tensor, v: Tensor) -> Tensor:
    """Whether sprite coordinates (u right, v up, the sprite spanning [-1, 1]^2) lie inside the shape."""
    if shape == 0:  # square
        return torch.maximum(u.abs(), v.abs()) <= 1.0
    if shape == 1:  # ellipse, twice as wide as high
        return u.square() + (v / 0.5).square() <= 1.0
    x, y = u * 1.14, v * 1.12 + 0.12  # the heart (x^2 + y^2 - 1)^3 <= x^2 y^3 spans x in [-1.14, 1.14], y in [-1, 1.24]
    x2 = x.square()
    return (x2 + y.square() - 1.0).pow(3) <= x2 * y.pow(3)


def render_sprites(indices: Tensor, chunk: int = 4096) -> Tensor:
    """(N, 1, 64, 64) uint8 images, 255 inside the sprite and 0 outside, of the factor indices (N, 5)."""
    out = torch.empty(len(indices), 1, SIDE, SIDE, dtype=torch.uint8)
    centres = torch.arange(SIDE, dtype=torch.float32) + 0.5
    col, row = centres.view(1, 1, SIDE), centres.view(1, SIDE, 1)
    for shape in range(len(SHAPES)):
        (where,) = (indices[:, 0] == shape).nonzero(as_tuple=True)
        for start in range(0, len(where), chunk):
            at = where[start : start + chunk]
            f = {k: v.float().view(-1, 1, 1) for k, v in factor_values(indices[at]).items()}
            cx = MARGIN + (SIDE - 2 * MARGIN) * f["pos_x"]
            cy = MARGIN + (SIDE - 2 * MARGIN) * f["pos_y"]
            dx, dy = (col - cx) / (HALF_SIZE * f["scale"]), (cy - row) / (HALF_SIZE * f["scale"])  # v points up
            cos, sin = f["orientation"].cos(), f["orientation"].sin()
            u, v = cos * dx + sin * dy, cos * dy - sin * dx  # turned back by the sprite's orientation
            out[at, 0] = inside(shape, u, v).to(torch.uint8) * 255
    return out


def full_grid(sizes: tuple[int, ...]) -> Tensor:
    """(prod(sizes), F) int64: every factor combination in a factor file's order (the last factor varies fastest)."""
    return torch.cartesian_prod(*[torch.arange(n) for n in sizes])


def dsprites_grid() -> Tensor:
    return full_grid(SIZES)


def data_file(root: str, name: str, what: str) -> Path:
    """`root`/`name`, or a one-paragraph error saying what the folder should hold."""
    path = Path(root).expanduser() / name
    if not path.is_file():
        raise FileNotFoundError(f"dataset.root={root} has no {name}: give the folder that holds the {what} file")
    return path


def read_npz(root: str) -> tuple[Tensor, Tensor]:
    """The real file's images (N, 1, 64, 64) uint8 and factor indices (N, 5) (its constant colour column dropped)."""
    path = data_file(root, NPZ_NAME, "dSprites")
    with np.load(path, allow_pickle=False) as npz:
        images = torch.from_numpy(npz["imgs"].astype(np.uint8) * 255)[:, None]
        factors = torch.from_numpy(npz["latents_classes"][:, 1:].astype(np.int64))
    return images, factors


def cached_render(indices: Tensor, cache: str | None) -> Tensor:
    """render_sprites(indices), kept in `cache` (bit-packed, named by a hash of the indices and RENDER_VERSION) and
    read from there the next time (20,000 images: 0.03 s to read against 2.8 s to render, measured on 2 cores)."""
    if not cache:
        return render_sprites(indices)
    digest = hashlib.sha1(indices.numpy().tobytes() + RENDER_VERSION.encode()).hexdigest()[:16]
    path = Path(cache).expanduser() / "dsprites_rendered" / f"{digest}.npy"
    if path.is_file():
        bits = np.unpackbits(np.load(path), axis=1)[:, : SIDE * SIDE]
        return torch.from_numpy(bits * np.uint8(255)).view(-1, 1, SIDE, SIDE)
    images = render_sprites(indices)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, np.packbits(images.view(len(images), -1).numpy() > 0, axis=1))
    tmp.replace(path)  # whole or absent, whatever stops the process
    return images


def load_dsprites(
    n_train: int | None, n_val: int, n_test: int, split_seed: int, root: str | None, cache: str | None
) -> DataSplits:
    """A seeded sample of the dSprites grid carved into splits (n_train None: every image not in val or test),
    rendered (kept in the folder `cache`) or, with `root`, read from the real file there."""
    images, grid = read_npz(root) if root else (None, dsprites_grid())
    tr, va, te = carve(len(grid), n_val, n_test, split_seed)
    tr = tr if n_train is None else tr[:n_train]

    def split(idx: Tensor) -> Split:  # in the seeded random order: any prefix is a fair sample of the split
        x = images[idx] if images is not None else cached_render(grid[idx], cache)
        return Split(x, grid[idx, 0], grid[idx])  # labelled by shape

    complete = images is not None and len(grid) == math.prod(SIZES)  # a file with every combination
    render = render_sprites if images is None else grid_lookup(images, grid, SIZES) if complete else None
    splits = split(tr), split(va), split(te)
    return DataSplits(*splits, classes=SHAPES, factor_names=FACTORS, factor_sizes=SIZES, binary=True, render=render)


def grid_lookup(images: Tensor, factors: Tensor, sizes: tuple[int, ...]):
    """factor indices -> images, for a dataset that holds every combination once (`factors` in any order)."""
    order = torch.empty(len(factors), dtype=torch.long)
    order[_flat(factors, sizes)] = torch.arange(len(factors))
    return lambda wanted: images[order[_flat(wanted, sizes)]]


def _flat(indices: Tensor, sizes: tuple[int, ...]) -> Tensor:
    flat = torch.zeros(len(indices), dtype=torch.long)
    for k, n in enumerate(sizes):
        flat = flat * n + indices[:, k].long()
    return flat


def load_factor_squares(side: int, square: int, n_val: int, n_test: int, split_seed: int) -> DataSplits:
    """A tiny two-factor set: a `square` x `square` block at every (x, y) position of a `side` x `side` frame."""
    n = side - square + 1
    grid = torch.cartesian_prod(torch.arange(n), torch.arange(n))  # (n^2, 2): x, y
    x = torch.zeros(len(grid), 1, side, side, dtype=torch.uint8)
    for i, (px, py) in enumerate(grid.tolist()):
        x[i, 0, py : py + square, px : px + square] = 255
    whole = Split(x, None, grid)
    tr, va, te = carve(len(grid), n_val, n_test, split_seed)
    render = grid_lookup(x, grid, (n, n))
    splits = whole.take(tr), whole.take(va), whole.take(te)
    return DataSplits(*splits, factor_names=("pos_x", "pos_y"), factor_sizes=(n, n), binary=True, render=render)
