"""Pictures a researcher can read: small images enlarged, and each row of inputs and reconstructions labelled."""

import torch

from vae_runner.evaluation.pictures import image_grid, recon_grid


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
