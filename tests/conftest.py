"""Shared fixtures: compose the real Hydra configs (shrunk to a few CPU steps) and write small datasets in
torchvision's on-disk layouts."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from PIL import Image

from vae_runner.cli import register_resolvers
from vae_runner.config.schema import register_configs

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
# A few CPU steps and no progress bar: what "shrunk" means in every test.
SHRINK = [
    "trainer.epochs=1",
    "trainer.limit_batches=2",
    "trainer.device=cpu",
    "trainer.eval_batch_size=256",
    "logger.progress_bar=false",
    "logger.n_images=4",
    "evaluation.iw_samples=8",
    "evaluation.surgery_points=50",
    "evaluation.probe_train_points=200",
    "evaluation.triplets=200",
]

register_configs()
register_resolvers()


def options(group: str) -> list[str]:
    """Every option of a config group: the yaml files in configs/<group>/."""
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def make_cfg(*overrides: str, shrink: bool = True):
    with initialize_config_module("vae_runner.configs", version_base="1.3"):
        return compose("train", overrides=(SHRINK if shrink else []) + list(overrides))


def write_idx(path: Path, arr: np.ndarray) -> None:
    """An unsigned-byte IDX file, the MNIST format."""
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    path.write_bytes(header + arr.astype(np.uint8).tobytes())


def write_mnist_like(root: Path, folder: str, n_train: int = 120, n_test: int = 40, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, (n,)))


def write_cifar10(root: Path, n_per_batch: int = 20, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            "data": rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8),
            "labels": rng.integers(0, 10, n_per_batch).tolist(),
        }
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}))


def write_image_folder(root: Path, n_per_class: int = 8, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for cls in ("cats", "dogs"):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            h, w = rng.integers(20, 40, 2)
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / cls / f"{i}.png")


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    """MNIST, Fashion-MNIST and CIFAR-10 in torchvision's layout, small, plus an image folder."""
    root = tmp_path_factory.mktemp("data")
    write_mnist_like(root, "MNIST")
    write_mnist_like(root, "FashionMNIST", seed=1)
    write_cifar10(root)
    write_image_folder(root / "images")
    return root


@pytest.fixture(autouse=True)
def _cifar_md5_off(monkeypatch):
    """The test's CIFAR files are not the real ones, so torchvision's md5 check is switched off."""
    import torchvision.datasets.cifar as cifar

    monkeypatch.setattr(cifar, "check_integrity", lambda *a, **k: True)


def dataset_overrides(name: str, root: Path) -> list[str]:
    """Overrides that point a dataset option at the small test copies (and a likelihood that fits it)."""
    if name in ("mnist", "fashion_mnist", "cifar10"):
        return [f"dataset={name}", f"dataset.root={root}", "dataset.val_size=20", "dataset.system_dirs=[]"]
    if name == "image_folder":
        return ["dataset=image_folder", f"dataset.root={root / 'images'}", "dataset.image_size=[16,16]"]
    if name == "synthetic":
        return [
            "dataset=synthetic",
            "likelihood=gaussian",
            "latent_dim=2",
            "dataset.n_train=200",
            "dataset.n_val=50",
            "dataset.n_test=50",
        ]
    return [f"dataset={name}"]


@pytest.fixture
def no_threads():
    torch.set_num_threads(1)
