"""A picture, (3, H, W) (or (1, H, W)) in [0, 1], written as an 8-bit RGB PNG file: each value rounded to the nearest
of 256 levels, as torchvision's save_image does (without importing torchvision, ~1.6 s of every run's start-up)."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch import Tensor


def save_png(img: Tensor, path: Path | str) -> None:
    img = img.detach().float().cpu()
    if img.shape[0] == 1:
        img = img.expand(3, -1, -1)
    pixels = img.mul(255).add(0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    Image.fromarray(pixels).save(path)
