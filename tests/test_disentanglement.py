"""Datasets with known factors (the dSprites grid, rendered; the tiny factor_squares set; the real .npz layout) and
the disentanglement metrics against known answers: codes equal to the factors (permuted, scaled) score ~1, noise
~0, a rotation of the factors in between."""

import math

import numpy as np
import pytest
import torch
from conftest import make_cfg, tiny_vae

from vae_runner import build
from vae_runner.data.factor_sets import (
    FACTORS,
    NPZ_NAME,
    SIZES,
    dsprites_grid,
    load_dsprites,
    render_sprites,
)
from vae_runner.evaluation import disentanglement as dis

GRID_SIZES = (3, 6, 10, 16)


def test_the_dsprites_grid_is_the_files():
    grid = dsprites_grid()
    assert grid.shape == (737280, 5) and SIZES == (3, 6, 40, 32, 32) and len(FACTORS) == 5
    assert grid[:2].tolist() == [[0, 0, 0, 0, 0], [0, 0, 0, 0, 1]] and grid[-1].tolist() == [2, 5, 39, 31, 31]
    i = 123457  # the file's order: np.unravel_index(i, sizes)
    assert grid[i].tolist() == list(np.unravel_index(i, SIZES))
    assert all(torch.equal(torch.unique(grid[:, k]), torch.arange(n)) for k, n in enumerate(SIZES))


def test_rendered_sprites_are_the_shapes_they_say():
    square, ellipse, heart, corner, turned, full_turn = render_sprites(
        torch.tensor(
            [
                [0, 5, 0, 16, 16],
                [1, 5, 0, 16, 16],
                [2, 5, 0, 16, 16],
                [0, 5, 0, 0, 0],
                [0, 5, 5, 16, 16],
                [0, 5, 39, 16, 16],
            ]
        )
    )[:, 0]
    assert set(torch.unique(square).tolist()) == {0, 255}
    assert (square > 0).sum() == 18 * 18  # scale 1: 18 x 18 pixels
    rows, cols = (corner > 0).nonzero(as_tuple=True)  # position (0, 0): centred 13 px from the top-left corner
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (4, 21, 4, 21)
    assert abs((ellipse > 0).sum().item() - np.pi * 9 * 4.5) < 6  # semi-axes 9 and 4.5 px
    rows, cols = (heart > 0).nonzero(as_tuple=True)
    assert (
        abs(cols.float().mean().item() - (13 + 38 * 16 / 31 - 0.5)) < 0.25
    )  # symmetric about its centre (to the pixel grid)
    assert (heart[:32] > 0).sum() > (heart[32:] > 0).sum()  # the lobes on top
    assert torch.equal(full_turn, square)  # orientations 0 and 2 pi are both in the grid, as in the file
    assert not torch.equal(turned, square) and abs((turned > 0).sum().item() - 324) < 12  # turned, same area


def test_dsprites_splits_carry_their_factors(tmp_path):
    data = load_dsprites(60, 20, 20, 0, root=None, cache=str(tmp_path))
    assert data.factor_names == FACTORS and data.shape == (1, 64, 64)
    assert data.train.factors.shape == (60, 5) and torch.equal(data.train.y, data.train.factors[:, 0])
    again = load_dsprites(60, 20, 20, 0, root=None, cache=str(tmp_path))  # from the cache this time
    assert len(list((tmp_path / "dsprites_rendered").glob("*.npy"))) == 3
    assert torch.equal(again.test.x, data.test.x) and torch.equal(data.test.x, render_sprites(data.test.factors))
    assert torch.equal(data.render(data.val.factors), data.val.x)


def test_the_real_dsprites_file_is_read_from_root(tmp_path):
    grid = dsprites_grid()[::5000]
    imgs = (render_sprites(grid) > 0).numpy()[:, 0].astype(np.uint8)  # the file holds 0/1 images
    latents = np.concatenate([np.zeros((len(grid), 1), np.int64), grid.numpy()], axis=1)  # colour column first
    np.savez(tmp_path / NPZ_NAME, imgs=imgs, latents_classes=latents, latents_values=latents.astype(float))
    data = load_dsprites(None, 20, 20, 0, root=str(tmp_path), cache=None)
    assert len(data.train) + len(data.val) + len(data.test) == len(grid)
    assert torch.equal(data.test.x, render_sprites(data.test.factors))
    assert data.render is None  # a file without every combination cannot give any combination (BetaVAE, FactorVAE)
    with pytest.raises(FileNotFoundError, match="dataset.root"):
        load_dsprites(None, 2, 2, 0, root=str(tmp_path / "missing"), cache=None)


def test_factor_squares_is_a_tiny_two_factor_set(no_threads):
    cfg = make_cfg("dataset=factor_squares")
    data = build.load_data(cfg, torch.device("cpu"))
    assert data.factor_names == ("pos_x", "pos_y") and data.shape == (1, 16, 16)
    assert len(data.train) + len(data.val) + len(data.test) == 13 * 13
    x, (px, py) = data.train.x[0, 0], data.train.factors[0].tolist()
    assert x[py : py + 4, px : px + 4].min() > 0 and (x > 0).sum() == 16  # 4x4 block where its factors say
    assert torch.equal(data.render(data.test.factors), data.test.x)  # any combination, by lookup


def factor_sample(n, seed):
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(s, size=n) for s in GRID_SIZES], 1)


def perfect(v):  # the factors, permuted and scaled
    return (v[:, [2, 0, 3, 1]] * np.array([2.0, -1.0, 0.5, 3.0])).astype(float)


def noise(v):
    return np.random.default_rng(len(v)).normal(size=(len(v), 4))


def rotated(v):  # every code dimension mixes every factor
    q, _ = np.linalg.qr(np.random.default_rng(2).normal(size=(4, 4)))
    return (v / np.array(GRID_SIZES)) @ q


def scores(codes_of) -> dict[str, float]:
    f, ft = factor_sample(3000, 0), factor_sample(1000, 1)
    z, zt = codes_of(f), codes_of(ft)
    return {
        "mig": dis.mig(z, f),
        "sap": dis.sap(z, f, zt, ft),
        **dis.dci(z, f, zt, ft, trees=20),
        "beta_vae": dis.beta_vae_score(codes_of, GRID_SIZES, 200, 100, 64, 0),
        "factor_vae": dis.factor_vae_score(codes_of, GRID_SIZES, 200, 100, 64, 0),
    }


def test_metrics_know_a_perfect_code_noise_and_a_rotation():
    good, bad, mixed = scores(perfect), scores(noise), scores(rotated)
    chance = np.mean([1 / n for n in GRID_SIZES])
    for name in ("mig", "disentanglement", "completeness", "informativeness", "beta_vae", "factor_vae"):
        assert good[name] > 0.97, (name, good[name])
    # SAP is a gap in accuracy: the best dimension's (1) minus the next best's (chance: the commonest value's share)
    assert good["sap"] == pytest.approx(1 - chance, abs=0.03)
    for name in ("mig", "sap", "disentanglement", "completeness"):
        assert bad[name] < 0.03, (name, bad[name])
    for name in ("informativeness", "beta_vae", "factor_vae"):  # accuracies: chance level, not 0
        assert bad[name] < 0.4, (name, bad[name])
    for name in ("mig", "sap", "disentanglement", "completeness"):  # informative, but not one factor per dimension
        assert bad[name] + 0.05 < mixed[name] < good[name] - 0.3, (name, mixed[name])
    assert mixed["informativeness"] > 0.85  # a rotation loses no information


def test_factor_gaps_are_the_two_largest_shares_apart():
    share = np.array([[0.9, 0.1, 0.3], [0.2, 0.5, 0.3], [0.1, 0.0, 0.0]])  # 3 dimensions x 3 factors
    assert dis.factor_gaps(share) == pytest.approx([0.7, 0.4, 0.0])  # a factor split over two dimensions: 0
    assert dis.factor_gaps(share[:1]) == pytest.approx([0.9, 0.1, 0.3])  # one dimension: its share


def test_dimension_labels_name_the_best_factor_and_any_it_shares_the_dimension_with():
    from vae_runner.evaluation.disentanglement_report import dimension_labels

    share = np.array([[0.12, 0.11, 0.02], [0.03, 0.03, 0.39], [0.05, 0.09, 0.02], [0.12, 0.09, 0.0]])
    names = ["shape", "scale", "pos_x"]
    assert dimension_labels(share, names) == ["shape/scale", "pos_x", "", "shape"]  # 0.09 < 0.8 x 0.12: not shared
    assert dimension_labels(share, names, shared=1.0) == ["shape", "pos_x", "", "shape"]  # the best factor alone


def test_mutual_information_of_a_copy_is_the_entropy():
    f = factor_sample(4000, 3)
    mi = dis.mutual_information(perfect(f), f)
    entropy = [np.log(n) for n in GRID_SIZES]  # uniform factors
    assert np.allclose(np.diag(mi[[1, 3, 0, 2]]), entropy, atol=0.02)  # dimension d holds factor [2, 0, 3, 1][d]


def test_a_run_on_a_factor_dataset_reports_every_score_and_its_time(tmp_path, no_threads):
    from vae_runner import run

    cfg = make_cfg("dataset=factor_squares", "trainer.epochs=2", "latent_dim=4")  # SHRINK: 20 votes, 10 trees
    metrics = run.train(cfg, tmp_path)
    names = ["mig", "sap", "dci_disentanglement", "dci_completeness", "dci_informativeness", "beta_vae_score"]
    for name in [*names, "factor_vae_score"]:
        assert 0.0 <= metrics[f"test/{name}"] <= 1.0, name
    for name in ("mig", "sap", "dci", "beta_vae", "factor_vae"):
        assert metrics[f"test/{name}_time_s"] >= 0.0
    assert metrics["test/disentanglement_points"] == 119 and metrics["test/disentanglement_seed"] == 0
    share = np.array(metrics["test/factor_mutual_information"])  # I(z_d; v_k) / H(v_k), D x F
    assert share.shape == (4, 2) and (share >= 0).all() and (share <= 1 + 1e-6).all()
    assert all(name in ("", "pos_x", "pos_y", "pos_x/pos_y", "pos_y/pos_x") for name in metrics["test/dim_factor"])
    per_factor = [metrics["test/mig_pos_x"], metrics["test/mig_pos_y"]]  # MIG's summands: it is their mean
    assert metrics["test/mig"] == pytest.approx(np.mean(per_factor))
    assert per_factor == pytest.approx(dis.factor_gaps(share), abs=1e-4)  # the stored share is rounded
    assert (tmp_path / "factor_mutual_information.png").is_file()


def test_the_heat_map_and_traversal_labels_name_the_factors():
    from vae_runner.evaluation.pictures import heatmap_picture, traversal_picture

    picture = heatmap_picture([[0.9, 0.0], [0.1, 0.7], [0.0, 0.0]], ["z0", "z1", "z2"], ["pos_x", "pos_y"], "MI")
    assert picture.shape[0] == 3 and picture.shape[1] > 50 and picture.shape[2] > 50
    model, mu = tiny_vae("gaussian", "bernoulli", d=3), torch.randn(50, 3)
    named = traversal_picture(model, mu, [2, 0], steps=5, factors=["pos_x", "", "orientation"])
    plain = traversal_picture(model, mu, [2, 0], steps=5)
    assert named.shape[2] > plain.shape[2]  # a wider strip for the factor names
    ink = (named[:, :, :128].mean(0) < 0.5).chunk(2, dim=0)
    assert int(ink[0].sum()) > int(ink[1].sum())  # "z2 orientation" against "z0" (no factor)
    shared = traversal_picture(model, mu, [2, 0], steps=5, factors=["pos_x", "", "orientation/pos_x/pos_y"])
    assert shared.shape[2] > named.shape[2]  # the strip grows to hold a long label rather than clip it


def test_shapes3d_scenes_are_their_factors():
    from vae_runner.data.scenes import SIZES as SCENE_SIZES
    from vae_runner.data.scenes import hue_rgb, render_scenes, shapes3d_grid

    grid = shapes3d_grid()
    assert grid.shape == (480000, 6) and SCENE_SIZES == (10, 10, 10, 8, 4, 15)
    assert grid[123457].tolist() == list(np.unravel_index(123457, SCENE_SIZES))
    floor, wall, obj = 2, 5, 8
    scene = render_scenes(torch.tensor([[floor, wall, obj, 7, 2, 7]]))[0].float() / 255  # a big upright sphere
    colour = lambda hue: hue_rgb(torch.tensor([hue / 10]))[0]  # noqa: E731
    torch.testing.assert_close(scene[:, 0, 0], colour(wall), atol=0.003, rtol=0)  # the wall at the top left
    torch.testing.assert_close(scene[:, 63, 0], colour(floor), atol=0.003, rtol=0)  # the floor at the bottom left
    torch.testing.assert_close(scene[:, 52 - 11, 32], colour(obj), atol=0.003, rtol=0)  # the object's centre
    torch.testing.assert_close(hue_rgb(torch.tensor([0.0, 1 / 3, 2 / 3])), torch.eye(3))  # red, green, blue
    shapes = render_scenes(torch.tensor([[0, 0, 5, 7, s, 7] for s in range(4)]))
    areas = [(img != shapes[0, :, :, :1]).any(0).sum().item() for img in shapes]  # pixels off the background
    expected = [1.0, 0.6, math.pi / 4, (1.2 * 0.8 + math.pi * 0.6**2) / 4]  # of the square: rectangle, disc, stadium
    # scale 1.25: a 22.5-pixel square sampled at pixel centres covers 22 x 23 pixels
    assert areas[0] == 22 * 23 and np.allclose(np.array(areas) / areas[0], expected, rtol=0.07)  # to the pixel grid


def test_the_real_shapes3d_file_is_read_from_root(tmp_path):
    h5py = pytest.importorskip("h5py")
    from vae_runner.data.scenes import H5_NAME, load_shapes3d, render_scenes, shapes3d_grid

    grid = shapes3d_grid()[::4000]
    values = np.stack([np.linspace(0, 1, 10)[grid[:, 0]], np.linspace(0, 1, 10)[grid[:, 1]]], 1)
    labels = np.concatenate([values, grid[:, 2:].numpy() * 1.5 - 3], axis=1)  # any values: ranked per column
    images = render_scenes(grid).permute(0, 2, 3, 1).numpy()  # the file stores (N, 64, 64, 3)
    with h5py.File(tmp_path / H5_NAME, "w") as h5:
        h5["images"], h5["labels"] = images, labels
    data = load_shapes3d(None, 10, 10, 0, root=str(tmp_path))
    assert data.shape == (3, 64, 64) and len(data.train) == len(grid) - 20
    ranks = torch.from_numpy(np.stack([np.unique(labels[:, k], return_inverse=True)[1] for k in range(6)], 1))
    for split in (data.train, data.test):
        row = [i for i in range(len(grid)) if torch.equal(ranks[i], split.factors[0])][0]
        assert torch.equal(split.x[0], torch.from_numpy(images[row]).permute(2, 0, 1))


def test_the_table_script_groups_seeds(tmp_path, monkeypatch, capsys):
    import json
    import runpy
    import sys

    for i, (beta, seed, mig) in enumerate([(16, 0, 0.7), (1, 0, 0.1), (1, 1, 0.3), (4, 0, 0.5)]):
        run_dir = tmp_path / f"{i}_beta={beta},seed={seed}"
        (run_dir / ".hydra").mkdir(parents=True)
        (run_dir / ".hydra" / "overrides.yaml").write_text(f"- beta={beta}\n- seed={seed}\n")
        metrics = {"test/mig": mig, "test/elbo": -80.0, "test/mig_time_s": 0.1, "test/active_units": 3 + i}
        metrics["test/factor_mutual_information"] = [[2 * mig, 0.0], [0.0, 0.1], [0.0, 0.0]]  # dims x factors
        if beta == 4:  # a run that records MIG per factor: its own numbers are read
            metrics.update({"test/mig_pos_x": 0.9, "test/mig_pos_y": 0.1})
        (run_dir / "metrics.json").write_text(json.dumps(metrics))
    monkeypatch.setattr(sys, "argv", ["disentanglement_table.py", str(tmp_path)])
    runpy.run_path("studies/disentanglement_table.py", run_name="__main__")
    out = capsys.readouterr().out
    assert "| `beta=1` | 2 | 0.200 ± 0.141 |" in out and "| `beta=4` | 1 | 0.500 |" in out and "mig 0.10" in out
    assert "| 4, 5 |" in out  # each seed's active units
    assert out.index("`beta=1`") < out.index("`beta=4`") < out.index("`beta=16`")  # numbers in order of value
    assert "| setting | MIG pos_x | MIG pos_y |" in out  # names from the runs' test/mig_<factor>
    assert "| `beta=1` | 0.400 ± 0.283 | 0.100 ± 0.000 |" in out  # gaps of the stored shares
    assert "| `beta=4` | 0.900 | 0.100 |" in out


def test_only_active_dimensions_are_named_after_a_factor():
    from vae_runner.evaluation.final import factor_labels

    assert factor_labels(["pos_x", "pos_y", ""], active=[0]) == ["pos_x", "", ""]
    assert factor_labels(None, active=[0]) is None


def unit(v):  # the factors, permuted, each in [0, 1): standard deviations ~0.29 (variances ~0.08)
    order = [2, 0, 3, 1]
    return v[:, order] / np.array(GRID_SIZES)[order]


def test_the_factor_vae_score_prunes_on_the_standard_deviation_so_shrunk_codes_score_the_same():
    """disentanglement_lib keeps a dimension whose standard deviation is >= 0.05; pruning on the variance instead
    dropped every dimension of this code shrunk by 0.7 (variances ~0.04) and scored it 0."""
    full = dis.factor_vae_score(unit, GRID_SIZES, 200, 100, 64, 0)
    shrunk = dis.factor_vae_score(lambda v: 0.7 * unit(v), GRID_SIZES, 200, 100, 64, 0)
    assert full > 0.97 and shrunk == full
    assert dis.factor_vae_score(lambda v: 0.04 * unit(v), GRID_SIZES, 200, 100, 64, 0) == 0.0  # below: collapsed


def test_a_constant_factor_does_not_inflate_dci_completeness():
    """A factor no dimension predicts has all-zero importances; it weighs 0 in completeness (disentanglement_lib),
    where an unweighted mean counted it as perfectly complete (1 of its 4 factors: 0.25 for pure noise)."""
    f, ft = factor_sample(3000, 0), factor_sample(1000, 1)
    f[:, 3], ft[:, 3] = 0, 0
    noisy = dis.dci(noise(f), f, noise(ft), ft, trees=20)
    assert noisy["completeness"] < 0.03
    good = dis.dci(perfect(f), f, perfect(ft), ft, trees=20)
    assert good["completeness"] > 0.97 and good["disentanglement"] > 0.97
