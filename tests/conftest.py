"""Shared helpers and fixtures: compose the real Hydra configs (shrunk to a few CPU steps: `SHRINK`, `shrink`),
run `vae-run` as a subprocess, tiny models with every prior and likelihood, and small datasets written in
torchvision's on-disk layouts."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from vae_runner.config.compose import build_option, compose_config
from vae_runner.config.schema import register_configs
from vae_runner.data import DataSplits, Split
from vae_runner.model.priors.gaussian import GaussianPrior
from vae_runner.model.vae import VAE

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
    "evaluation.disentanglement.points=300",
    "evaluation.disentanglement.votes=20",
    "evaluation.disentanglement.batch=16",
    "evaluation.disentanglement.trees=10",
    "evaluation.imputation.samples=64",
    "evaluation.imputation.draws=10",
]

register_configs()


def options(group: str) -> list[str]:
    """Every option of a config group: the yaml files in configs/<group>/."""
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def shrink(*overrides: str) -> list[str]:
    """SHRINK, then `overrides`: Hydra applies overrides in order, so a key given here wins over SHRINK's."""
    return [*SHRINK, *overrides]


def make_cfg(*overrides: str, shrink: bool = True):
    return compose_config((SHRINK if shrink else []) + list(overrides))


def table_reading() -> dict:
    """configs/dataset/tabular.yaml's options for reading a file (its column types, dialect, missing spellings), for
    tests that call load_tabular directly."""
    node = OmegaConf.to_container(make_cfg("dataset=tabular").dataset)
    return {k: node[k] for k in ("columns", "delimiter", "decimal", "encoding", "missing_values")}


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
    if name == "dsprites":  # rendered into the test's own cache
        return [
            "dataset=dsprites",
            "dataset.n_train=300",
            "dataset.n_val=60",
            "dataset.n_test=60",
            f"dataset.cache={root}",
        ]
    if name == "tabular":
        return ["dataset=tabular", "likelihood=gaussian"]
    if name == "shapes3d":
        return ["dataset=shapes3d", "dataset.n_train=300", "dataset.n_val=60", "dataset.n_test=60"]
    return [f"dataset={name}"]


@pytest.fixture
def no_threads():
    torch.set_num_threads(1)


# ------------------------------------------------------------------------ vae-run as a subprocess
VAE_RUN = shutil.which("vae-run") or str(Path(sys.executable).parent / "vae-run")


def vae_run(*args, cwd) -> subprocess.CompletedProcess:
    env = dict(os.environ, HYDRA_FULL_ERROR="0", OMP_NUM_THREADS="1")
    return subprocess.run([VAE_RUN, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


# The command line's shrink (vae-run subprocesses): two epochs, one torch thread.
FAST = shrink("trainer.epochs=2", "trainer.num_threads=1", "evaluation.iw_samples=16")


# ------------------------------------------------------------------ tiny models, every prior and likelihood
SHAPE = (1, 4, 4)


PRIORS = ["gaussian", "mog", "vamp", "gtm", "gtm_vamp", "flow"]


def tiny_data(n: int = 64) -> DataSplits:
    g = torch.Generator().manual_seed(0)
    split = lambda: Split(torch.rand(n, *SHAPE, generator=g), torch.randint(0, 3, (n,), generator=g))  # noqa: E731
    return DataSplits(split(), split(), split())


def make_prior(name: str, d: int, seed: int = 0):
    """Each prior built from its yaml (small settings) with random (non-initial) parameters, so the oracles test
    something."""
    torch.manual_seed(seed)
    encoder = build_option("architecture", "mlp", "encoder", hidden=[8], input_shape=SHAPE, latent_dim=d)
    live = {"encoder": encoder, "data": tiny_data()}
    settings = {
        "gaussian": {},
        "mog": {"n_components": 5},
        "vamp": {"n_components": 6, **live},
        "gtm": {"grid_dim": 2, "grid_size": 3, "hidden": [8]},
        "gtm_vamp": {"grid_dim": 1, "grid_size": 4, "hidden": [8], **live},
        "flow": {"depth": 4, "width": 16},
    }[name]
    prior = build_option("prior", name, latent_dim=d, **settings)
    with torch.no_grad():
        for p in prior.parameters():
            p.add_((0.25 if name == "flow" else 0.5) * torch.randn_like(p))
    return prior, encoder


LIKELIHOODS = ["bernoulli", "mse", "gaussian"]


def tiny_vae(prior_name: str, likelihood: str, d: int = 2) -> VAE:
    """A small VAE on SHAPE data with the named prior (random parameters) and likelihood."""
    prior, encoder = make_prior(prior_name, d)
    sigma = {"bernoulli": {}, "mse": {"sigma": 0.3}, "gaussian": {"init_sigma": 0.3}}[likelihood]
    lik = build_option("likelihood", likelihood, data_shape=SHAPE, **sigma)
    decoder = build_option("architecture", "mlp", "decoder", hidden=[8], output_shape=SHAPE, latent_dim=d)
    return VAE(encoder, decoder, prior, lik)


class MCOnlyPrior(GaussianPrior):
    """The same N(0, I) density but no closed form: the objective must fall back to the Monte-Carlo KL."""

    def analytic_kl(self, q):
        return None
