"""Pictures as (3, H, W) float tensors in [0, 1]: image grids, inputs above reconstructions, and 2-D scatter plots
for point data (the synthetic dataset)."""
from __future__ import annotations

import io

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torchvision.utils import make_grid


def image_grid(x: Tensor, nrow: int = 8, min_side: int = 32) -> Tensor:
    """Images (N, C, H, W) in a grid; small images are enlarged (nearest neighbour) to at least `min_side` pixels."""
    x = x.detach().float().clamp(0, 1).cpu()
    scale = -(-min_side // min(x.shape[-2:]))
    if scale > 1:
        x = F.interpolate(x, scale_factor=scale, mode="nearest")
    return make_grid(x, nrow=nrow, padding=2, pad_value=1.0)


def recon_grid(inputs: Tensor, recons: Tensor, nrow: int = 8) -> Tensor:
    """Rows of `nrow` inputs, each directly above the row of their reconstructions."""
    rows = []
    for i in range(0, len(inputs), nrow):
        rows += [inputs[i:i + nrow], recons[i:i + nrow]]
    return image_grid(torch.cat(rows), nrow=nrow)


def scatter(points: dict[str, Tensor], title: str) -> Tensor:
    """2-D point clouds (name -> (N, 2)) drawn with matplotlib, as an image tensor."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=100)
    for (name, p), colour in zip(points.items(), ("0.7", "tab:red", "tab:blue")):
        p = p.detach().float().cpu().numpy()
        ax.scatter(p[:, 0], p[:, 1], s=4, alpha=0.6, c=colour, label=name)
    ax.set_title(title)
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(loc="upper right", markerscale=3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    img = np.asarray(Image.open(buf).convert("RGB"))  # (H, W, 3) uint8
    return torch.from_numpy(img.copy()).permute(2, 0, 1).float() / 255.0


@torch.no_grad()
def sample_picture(model, data, n: int) -> Tensor:
    if data.is_image:
        return image_grid(model.sample(n))
    samples = model.sample(max(n, 500))  # a point cloud needs more than a grid's worth to show its shape
    return scatter({"test data": data.test.floats()[:2000], "samples": samples}, "samples from the prior")


@torch.no_grad()
def recon_picture(model, data, n: int) -> Tensor:
    x = data.test.floats(slice(0, n))
    recons = model.reconstruct(x)
    if data.is_image:
        return recon_grid(x, recons)
    return scatter({"inputs": x, "reconstructions": recons}, "test points and their reconstructions")
