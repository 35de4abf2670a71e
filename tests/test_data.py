"""Datasets: the bundled digits, torchvision's MNIST / Fashion-MNIST / CIFAR-10 from files in torchvision's layout,
the offline Debian Fashion-MNIST, an image folder, the synthetic 2-D modes, and the binarisation protocol."""

import logging
from pathlib import Path

import pytest
import torch

from vae_runner.config.compose import build_option
from vae_runner.data import TrainBatches, prepare
from vae_runner.errors import UserError

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


def test_digits_split_is_fixed_and_in_unit_range():
    a, b = build_option("dataset", "digits"), build_option("dataset", "digits")
    assert a.shape == (1, 8, 8)
    assert (len(a.train), len(a.val), len(a.test)) == (1258, 180, 359)
    assert torch.equal(a.test.x, b.test.x)
    assert a.classes == tuple("0123456789")
    x = a.train.floats()
    assert x.min() >= 0 and x.max() <= 1 and x.max() == 1
    assert not torch.equal(build_option("dataset", "digits", split_seed=1).test.x, a.test.x)


def test_mnist_from_torchvision_layout(data_root):
    data = build_option("dataset", "mnist", root=str(data_root), val_size=20)
    assert data.shape == (1, 28, 28) and data.train.x.dtype == torch.uint8
    assert (len(data.train), len(data.val), len(data.test)) == (100, 20, 40)
    assert data.train.y.dtype == torch.int64
    assert data.classes[3] == "3 - three"  # named, for the pictures' legends


def test_cifar10_from_torchvision_layout(data_root):
    data = build_option("dataset", "cifar10", root=str(data_root), val_size=10)
    assert data.shape == (3, 32, 32)
    assert (len(data.train), len(data.val), len(data.test)) == (90, 10, 20)
    assert data.classes[:2] == ("airplane", "automobile")


def test_missing_dataset_says_where_it_looked_and_how_to_fix(tmp_path):
    with pytest.raises(UserError) as err:
        build_option("dataset", "mnist", root=str(tmp_path / "nothing"), system_dirs=[str(tmp_path / "also-nothing")])
    msg = str(err.value)
    assert "nothing" in msg and "also-nothing" in msg and "dataset.download=true" in msg


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_offline_from_the_debian_package(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="vae_runner")
    data = build_option(
        "dataset", "fashion_mnist", root=str(tmp_path / "empty-root"), system_dirs=[str(DEBIAN_FASHION)]
    )
    assert data.shape == (1, 28, 28)
    assert (len(data.train), len(data.val), len(data.test)) == (50000, 10000, 10000)
    assert not (tmp_path / "empty-root").exists()  # read in place, nothing copied
    assert data.classes[0] == "T-shirt/top" and prepare(data, "dynamic", torch.device("cpu")).classes == data.classes
    # the fall-back from a root without the files is said, with the files read
    assert f"FashionMNIST is not in dataset.root={tmp_path / 'empty-root'}" in caplog.text
    assert "read " + str(DEBIAN_FASHION) in caplog.text and "t10k-images-idx3-ubyte" in caplog.text


def test_the_log_says_which_files_were_read(data_root, caplog):
    caplog.set_level(logging.INFO, logger="vae_runner")
    build_option("dataset", "mnist", root=str(data_root), system_dirs=[], val_size=20)
    assert f"read MNIST's files under {data_root}" in caplog.text


def test_image_folder_resizes_and_converts_channels(data_root):
    rgb = build_option("dataset", "image_folder", root=str(data_root / "images"), image_size=[16, 16], channels=3)
    grey = build_option("dataset", "image_folder", root=str(data_root / "images"), image_size=[12, 20], channels=1)
    assert rgb.shape == (3, 16, 16) and grey.shape == (1, 12, 20)
    assert len(rgb.train) + len(rgb.val) + len(rgb.test) == 16
    assert rgb.classes == tuple(sorted(d.name for d in (data_root / "images").iterdir() if d.is_dir()))
    with pytest.raises(UserError, match="<root>/<class name>/<image file>"):
        build_option("dataset", "image_folder", root=str(data_root / "no-such-folder"))


def test_synthetic_modes():
    data = build_option("dataset", "synthetic", n_modes=4, radius=3.0, std=0.01, n_train=400, n_val=10, n_test=10)
    assert data.shape == (2,) and not data.in_unit_range
    radii = data.train.x.norm(dim=1)
    assert torch.allclose(radii, torch.full_like(radii, 3.0), atol=0.1)
    assert torch.equal(
        build_option("dataset", "synthetic", seed=3).test.x, build_option("dataset", "synthetic", seed=3).test.x
    )


def test_binarisation_protocol():
    data = build_option("dataset", "digits")
    torch.manual_seed(0)
    dyn = prepare(data, "dynamic", torch.device("cpu"))
    torch.manual_seed(99)  # the run's seed does not change the evaluation binarisation
    dyn2 = prepare(data, "dynamic", torch.device("cpu"))
    assert torch.equal(dyn.test.x, dyn2.test.x) and set(dyn.test.x.unique().tolist()) == {0.0, 1.0}
    batches = TrainBatches(dyn.train, batch_size=len(dyn.train), dynamic=True)
    ((x1, y1),) = list(batches)
    ((x2, y2),) = list(batches)
    assert set(x1.unique().tolist()) == {0.0, 1.0} and not torch.equal(x1, x2)  # resampled every batch
    static = prepare(data, "static", torch.device("cpu"))
    assert torch.equal(static.train.x, prepare(data, "static", torch.device("cpu")).train.x)
    none = prepare(data, "none", torch.device("cpu"))
    assert torch.equal(none.test.floats(), data.test.floats())


def test_train_batches_cover_the_split_once_per_epoch():
    data = prepare(build_option("dataset", "digits"), "none", torch.device("cpu"))
    seen = torch.cat([y for _, y in TrainBatches(data.train, batch_size=100, dynamic=False)])
    assert len(seen) == len(data.train)
    assert torch.equal(seen.sort().values, data.train.y.sort().values)
    assert len(TrainBatches(data.train, batch_size=100, dynamic=False, limit=3)) == 3
