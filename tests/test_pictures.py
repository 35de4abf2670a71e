"""Pictures a researcher can read: small images enlarged, each row of inputs and reconstructions and of a
traversal labelled, points coloured by named class, markers that stand out on the latent density map."""

import matplotlib
import torch
from conftest import tiny_data, tiny_vae

from vae_runner.evaluation.pictures import (
    image_grid,
    labelled_scatter,
    latent_density_picture,
    recon_grid,
    tile,
    traversal_picture,
)
from vae_runner.loggers.png import save_png

matplotlib.use("Agg")


def test_tile_and_save_png_match_torchvision(tmp_path):
    """Our grid and PNG writer (no torchvision import at start-up) give torchvision's pixels, to the byte."""
    import numpy as np
    from PIL import Image
    from torchvision.utils import make_grid, save_image

    g = torch.Generator().manual_seed(0)
    for n, channels, nrow in [(1, 3, 8), (5, 1, 8), (16, 3, 8), (13, 3, 4), (64, 1, 8)]:
        x = torch.rand(n, channels, 7, 9, generator=g)
        assert torch.equal(tile(x, nrow), make_grid(x, nrow=nrow, padding=2, pad_value=1.0))
    for img in (torch.rand(3, 20, 30, generator=g), torch.rand(1, 5, 6, generator=g)):
        save_png(img, tmp_path / "ours.png")
        save_image(img, tmp_path / "theirs.png")
        assert np.array_equal(
            np.asarray(Image.open(tmp_path / "ours.png")), np.asarray(Image.open(tmp_path / "theirs.png"))
        )


def test_input_and_reconstruction_rows_are_labelled():
    inputs, recons = torch.zeros(16, 1, 8, 8), torch.ones(16, 1, 8, 8)
    grid, labelled = image_grid(torch.cat([inputs[:8], recons[:8], inputs[8:], recons[8:]])), recon_grid(inputs, recons)
    assert labelled.shape[1] == grid.shape[1] and labelled.shape[2] > grid.shape[2]  # a strip on the left
    strip = labelled[:, :, : labelled.shape[2] - grid.shape[2]]
    torch.testing.assert_close(labelled[:, :, strip.shape[2] :], grid)  # the images themselves are unchanged
    bands = strip.mean(0).chunk(4, dim=0)  # four rows: input, recon., input, recon.
    assert all((band < 0.5).any() for band in bands)  # dark text in each row's band
    dark = [int((band < 0.5).sum()) for band in bands]
    assert dark[0] != dark[1] and abs(dark[0] - dark[2]) <= 0.2 * dark[0]  # two different words, alternating


def test_small_images_are_enlarged():
    assert image_grid(torch.rand(4, 1, 8, 8), nrow=4).shape[1] >= 32


def test_traversal_rows_are_labelled_with_dimension_and_kl():
    torch.manual_seed(0)
    model, mu = tiny_vae("gaussian", "bernoulli", d=3), torch.randn(50, 3)
    plain = traversal_picture(model, mu, [2, 0], steps=5)
    with_kl = traversal_picture(model, mu, [2, 0], steps=5, kl_per_dim=[0.5, 0.0, 12.25])
    assert plain.shape == with_kl.shape  # the same strip width, a longer label
    strip = (with_kl[:, :, :84].mean(0) < 0.5).chunk(2, dim=0)  # dark text, one band per row
    plain_strip = (plain[:, :, :84].mean(0) < 0.5).chunk(2, dim=0)
    assert all(band.any() for band in strip)
    assert all(int(a.sum()) > int(b.sum()) for a, b in zip(strip, plain_strip))  # "z2 KL 12.25" > "z2"


def test_scatter_points_are_named_by_class():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    y = torch.tensor([0, 1, 1, 2, 0])
    labelled_scatter(ax, torch.randn(5, 2).numpy(), y, ("T-shirt/top", "Trouser", "Pullover"), size=3)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["T-shirt/top", "Trouser", "Pullover"]
    fig2, ax2 = plt.subplots()
    labelled_scatter(ax2, torch.randn(5, 2).numpy(), y, None, size=3)
    assert [t.get_text() for t in ax2.get_legend().get_texts()] == ["0", "1", "2"]  # no names: the label
    plt.close("all")


def test_latent_density_markers_stand_out(monkeypatch):
    """Each test point is drawn large enough and with a white edge over the dark density map."""
    from vae_runner.evaluation import pictures

    drawn = []
    monkeypatch.setattr(pictures, "labelled_scatter", lambda ax, p, y, c, size, **style: drawn.append((size, style)))
    latent_density_picture(tiny_vae("gaussian", "bernoulli", d=2), tiny_data(), n_points=50, resolution=20)
    ((size, style),) = drawn
    assert size >= 8 and style["edgecolors"] == "white"


def test_the_latent_scatter_draws_a_single_point_of_many_dimensions():
    """Found by studies/mi_inference.py: a test split of one row left one principal component to plot."""
    from vae_runner.evaluation.pictures import latent_scatter_picture

    assert latent_scatter_picture(torch.randn(1, 16), None).shape[0] == 3
