"""dataset=shapes3d: the colour factor set of 3D Shapes (Burgess & Kim 2018), rendered in 2-D offline, or the real
`3dshapes.h5` read from `dataset.root`.

The factor grid is the file's: floor hue, wall hue, object hue (10 each, hue i / 10 of the colour wheel), scale (8,
0.75 to 1.25), shape (cube, cylinder, sphere, capsule) and orientation (15, -30 to 30 degrees) = 480,000 images of
64 x 64 x 3, image i having factor indices `np.unravel_index(i, SIZES)`. No download exists here, so `render_scenes`
draws each as a flat scene: a wall above a floor (a horizon at row 40), the object standing on the floor as a 2-D
silhouette (square, tall rectangle, disc, stadium) of its hue, scaled, and turned by its orientation. The factors and
their order are the file's; the pictures are a 2-D stand-in for the 3-D renders, so scores on them compare runs with
each other, not with published Shapes3D tables (give `root` for those).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from vae_runner.data import DataSplits, Split, carve
from vae_runner.data.factor_sets import data_file, full_grid, grid_lookup

FACTORS = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
SIZES = (10, 10, 10, 8, 4, 15)
SHAPES = ("cube", "cylinder", "sphere", "capsule")
H5_NAME = "3dshapes.h5"
SIDE = 64  # image side; the floor starts at row HORIZON; the object's centre row at scale 1
HORIZON = 40
BASE = 52
HALF = 9.0  # the object's half-size in pixels at scale 1


def hue_rgb(hue: Tensor) -> Tensor:
    """(N, 3) in [0, 1]: the fully saturated, full-value colour of each hue in [0, 1) (HSV to RGB)."""
    k = (torch.tensor([5.0, 3.0, 1.0]) + hue[:, None] * 6) % 6
    return 1 - torch.clamp(torch.minimum(k, 4 - k), 0, 1)


def silhouette(shape: int, u: Tensor, v: Tensor) -> Tensor:
    """Whether object coordinates (u, v in [-1, 1], v up) fall inside the shape's 2-D silhouette."""
    if shape == 0:  # cube: a square
        return torch.maximum(u.abs(), v.abs()) <= 1
    if shape == 1:  # cylinder: a tall rectangle
        return (u.abs() <= 0.6) & (v.abs() <= 1)
    if shape == 2:  # sphere: a disc
        return u.square() + v.square() <= 1
    return (u.abs() <= 0.6) & ((v.abs() <= 0.4) | (u.square() + (v.abs() - 0.4).square() <= 0.36))  # capsule


def render_scenes(indices: Tensor, chunk: int = 2048) -> Tensor:
    """(N, 3, 64, 64) uint8 scenes of the factor indices (N, 6)."""
    idx = indices.long()
    out = torch.empty(len(idx), 3, SIDE, SIDE, dtype=torch.uint8)
    rows = torch.arange(SIDE, dtype=torch.float32).view(1, SIDE, 1) + 0.5
    cols = torch.arange(SIDE, dtype=torch.float32).view(1, 1, SIDE) + 0.5
    hues = torch.arange(10, dtype=torch.float32) / 10
    for shape in range(len(SHAPES)):
        (where,) = (idx[:, 4] == shape).nonzero(as_tuple=True)
        for start in range(0, len(where), chunk):
            at = where[start : start + chunk]
            f = idx[at]
            scale = torch.linspace(0.75, 1.25, SIZES[3])[f[:, 3]].view(-1, 1, 1)
            angle = torch.deg2rad(torch.linspace(-30.0, 30.0, SIZES[5])[f[:, 5]]).view(-1, 1, 1)
            size = HALF * scale
            dx, dy = (cols - SIDE / 2) / size, (BASE - size - rows) / size + 0.0  # the object rests near the floor
            u, v = angle.cos() * dx + angle.sin() * dy, angle.cos() * dy - angle.sin() * dx
            inside = silhouette(shape, u, v)[:, None]  # (n, 1, H, W)
            wall, floor, obj = (hue_rgb(hues[f[:, k]]).view(-1, 3, 1, 1) for k in (1, 0, 2))
            background = torch.where(rows[None] < HORIZON, wall, floor)  # (n, 3, H, 1) -> broadcast over W
            scene = torch.where(inside, obj, background.expand(-1, -1, -1, SIDE))
            out[at] = (scene * 255).round().to(torch.uint8)
    return out


def shapes3d_grid() -> Tensor:
    return full_grid(SIZES)


def read_h5(root: str) -> tuple[Tensor, Tensor]:
    """The real file's images (N, 3, 64, 64) uint8 and factor indices (N, 6) (each label column's values ranked)."""
    path = data_file(root, H5_NAME, "3D Shapes")
    try:
        import h5py
    except ImportError as err:
        raise ImportError("reading 3dshapes.h5 needs h5py: pip install 'vae-runner[hdf5]'") from err
    with h5py.File(path, "r") as h5:
        images = torch.from_numpy(np.asarray(h5["images"])).permute(0, 3, 1, 2).contiguous()
        labels = np.asarray(h5["labels"])
    ranks = [np.unique(np.round(labels[:, k], 6), return_inverse=True)[1] for k in range(labels.shape[1])]
    return images, torch.from_numpy(np.stack(ranks, axis=1).astype(np.int64))


def load_shapes3d(n_train: int | None, n_val: int, n_test: int, split_seed: int, root: str | None) -> DataSplits:
    """A seeded sample of the grid carved into splits (n_train None: all the rest), rendered, or read from `root`."""
    images, grid = read_h5(root) if root else (None, shapes3d_grid())
    tr, va, te = carve(len(grid), n_val, n_test, split_seed)
    tr = tr if n_train is None else tr[:n_train]

    def split(idx: Tensor) -> Split:  # the seeded random order: any prefix is a fair sample
        x = images[idx] if images is not None else render_scenes(grid[idx])
        return Split(x, grid[idx, 4], grid[idx])  # labelled by shape

    complete = images is not None and len(grid) == math.prod(SIZES)
    render = render_scenes if images is None else grid_lookup(images, grid, SIZES) if complete else None
    splits = split(tr), split(va), split(te)
    return DataSplits(*splits, classes=SHAPES, factor_names=FACTORS, factor_sizes=SIZES, render=render)
