"""The Python API (`vae_runner.train`, `vae_runner.load`, `Run`), `mode=sample`, and scoring a model on another
dataset of the same shape: real runs on small data, checked against the numbers the run itself wrote."""

import json
import shutil

import numpy as np
import pytest
import torch
from conftest import SHRINK, dataset_overrides, make_cfg

import vae_runner
from vae_runner import run
from vae_runner.errors import UserError


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("api") / "run"
    return vae_runner.train([*SHRINK, "trainer.epochs=2", "latent_dim=3", "prior=mog"], run_dir=out)


def test_train_returns_the_run_it_wrote(trained):
    saved = json.loads((trained.run_dir / "metrics.json").read_text())
    assert trained.metrics == saved and saved["epochs"] == 2
    assert trained.config.prior._target_.endswith("MoGPrior") and trained.config.latent_dim == 3
    assert trained.checkpoint.name == "best.pt" and not trained.model.training
    assert (trained.run_dir / ".hydra" / "overrides.yaml").is_file()  # vae-report finds it like a vae-run run
    assert "test ELBO" in (trained.run_dir / "vae-run.log").read_text()


def test_load_gives_the_same_model_and_its_methods_agree_with_the_run(trained):
    loaded = vae_runner.load(trained.run_dir)
    for a, b in zip(loaded.model.state_dict().values(), trained.model.state_dict().values()):
        assert torch.equal(a, b)
    x = loaded.data.test.floats(slice(0, 10))
    q = loaded.encode(x)
    assert q.mean.shape == (10, 3)
    assert loaded.reconstruct(x).shape == x.shape == loaded.decode(q.mean).shape
    torch.testing.assert_close(loaded.reconstruct(x), loaded.decode(q.mean))
    assert torch.equal(loaded.sample(5, seed=1), loaded.sample(5, seed=1))
    assert not torch.equal(loaded.sample(5, seed=1), loaded.sample(5, seed=2))
    # the estimator of the final evaluation, on the whole test set, gives the number in metrics.json
    ll = loaded.log_likelihood(loaded.data.test.x, k=trained.metrics["test/iw_samples"], seed=trained.config.seed)
    assert ll.shape == (len(loaded.data.test),)
    assert ll.mean().item() == pytest.approx(trained.metrics["test/log_likelihood"], abs=1e-4)
    assert loaded.encode(x[0]).mean.shape == (1, 3)  # one image
    with pytest.raises(ValueError, match="expected images of shape"):
        loaded.encode(torch.rand(2, 5))


def test_a_model_trained_on_complete_images_imputes_hidden_pixels(trained):
    loaded = vae_runner.load(trained.run_dir)
    truth = loaded.data.test.floats(slice(0, 6))
    hidden = torch.rand(truth.shape, generator=torch.Generator().manual_seed(0)) < 0.4
    x = truth.masked_fill(hidden, float("nan"))
    imp = loaded.impute(x, truth, samples=16, draws=5)
    assert imp.mean.shape == x.shape and imp.draws.shape == (5, *x.shape) and imp.log_p_missing.shape == (6,)
    assert torch.equal(imp.mean[~hidden], truth[~hidden]) and torch.equal(imp.draws[:, ~hidden][0], truth[~hidden])
    assert not torch.isnan(imp.mean).any() and ((imp.mean >= 0) & (imp.mean <= 1)).all()
    assert torch.isin(imp.draws, torch.tensor([0.0, 1.0])).all() and (imp.log_p_missing < 0).all()
    assert loaded.impute(x, samples=16, draws=5).log_p_missing is None  # no truth: no conditional log-likelihood
    torch.testing.assert_close(
        loaded.impute(x, samples=16, draws=5, seed=3).mean, loaded.impute(x, None, 16, 5, 3).mean
    )


def test_load_last_and_bad_requests(trained, tmp_path):
    assert vae_runner.load(trained.run_dir, checkpoint="last").checkpoint.name == "last.pt"
    with pytest.raises(ValueError, match="best"):
        vae_runner.load(trained.run_dir, checkpoint="middle")
    with pytest.raises(UserError, match="Checkpoint not found"):
        vae_runner.load(tmp_path)
    with pytest.raises(UserError, match="latent_dim"):
        vae_runner.load(trained.run_dir, overrides=["latent_dim=8"])  # a model override is refused, as by vae-run


def test_load_opens_a_run_named_as_a_sweep_names_its_runs(trained, tmp_path):
    swept = tmp_path / "0_prior=mog,seed=0"  # Hydra's grammar reads an unquoted = and , as syntax
    shutil.copytree(trained.run_dir, swept)
    assert torch.equal(vae_runner.load(swept).sample(4, seed=1), trained.sample(4, seed=1))


def test_mode_sample_writes_tensor_array_and_picture(trained, tmp_path):
    overrides = ["mode=sample", f"ckpt={trained.run_dir}", "n=12", "seed=5"]
    run.run(make_cfg(*overrides), tmp_path / "s", overrides)
    x = torch.load(tmp_path / "s" / "samples.pt")
    assert x.shape == (12, *trained.data.shape) and np.array_equal(np.load(tmp_path / "s" / "samples.npy"), x.numpy())
    assert (tmp_path / "s" / "samples.png").stat().st_size > 0
    run.run(make_cfg(*overrides), tmp_path / "again", overrides)
    assert torch.equal(torch.load(tmp_path / "again" / "samples.pt"), x)  # seeded
    with pytest.raises(UserError, match="n=0"):
        run.run(make_cfg("mode=sample", f"ckpt={trained.run_dir}", "n=0"), tmp_path / "bad", ["n=0"])


def test_a_model_scores_another_dataset_of_its_shape_labelled(data_root, tmp_path, no_threads):
    mnist = dataset_overrides("mnist", data_root)
    run.train(make_cfg(*mnist), tmp_path / "train")
    ckpt = tmp_path / "train" / "checkpoints" / "best.pt"
    fashion = dataset_overrides("fashion_mnist", data_root)
    overrides = ["mode=eval", f"ckpt={ckpt}", *fashion]
    scored = run.evaluate(make_cfg(*overrides), tmp_path / "ood", overrides)
    assert (scored["trained_on"], scored["evaluated_on"]) == ("mnist", "fashion_mnist")
    same = run.evaluate(make_cfg("mode=eval", f"ckpt={ckpt}", *mnist), tmp_path / "id", ["mode=eval", f"ckpt={ckpt}"])
    assert (same["trained_on"], same["evaluated_on"]) == ("mnist", "mnist")
    assert scored["test/elbo"] != same["test/elbo"]
    digits = ["mode=eval", f"ckpt={ckpt}", "dataset=digits"]
    with pytest.raises(UserError, match="shape it was made for"):
        run.evaluate(make_cfg(*digits), tmp_path / "digits", digits)
