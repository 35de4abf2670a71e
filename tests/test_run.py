"""End-to-end through `train`/`evaluate` on real composed configs: every option of every group trains a few steps,
the run-directory contract (TensorBoard tags, metrics.json, PNGs, checkpoints), resume == uninterrupted, eval mode,
and clear errors for bad values and bad checkpoints."""

import json
import pickle
import statistics
from pathlib import Path

import pytest
import torch
from conftest import dataset_overrides, make_cfg, options
from hydra.errors import ConfigCompositionException, MissingConfigException
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.plugin_event_accumulator import EventAccumulator as PluginEventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from vae_runner import build, run
from vae_runner.errors import UserError
from vae_runner.runs.checkpoint import KEYS, load_checkpoint
from vae_runner.training.trainer import Trainer

GROUPS = ["dataset", "architecture", "prior", "likelihood", "objective", "optimizer", "trainer", "logger", "experiment"]
CASES = [(g, o) for g in GROUPS for o in options(g)]


@pytest.mark.parametrize("group,option", CASES, ids=[f"{g}={o}" for g, o in CASES])
def test_every_option_composes_and_trains(group, option, data_root, tmp_path, no_threads, monkeypatch):
    monkeypatch.chdir(tmp_path)  # logger=mlflow's offline store is ./mlruns: the test's, not the checkout's
    overrides = dataset_overrides(option, data_root) if group == "dataset" else [f"{group}={option}"]
    if group == "experiment":  # point the preset's dataset at the small test copy
        name = make_cfg(*overrides).dataset.name
        drop = ("dataset=", "likelihood=") if name == "tabular" else ("dataset=",)  # a table preset: its likelihood
        overrides += [o for o in dataset_overrides(name, data_root) if not o.startswith(drop)]
    if option == "correlated_gaussian":  # a table's likelihood
        overrides += ["dataset=tabular", "dataset.table=wine"]
    if option == "mmvae":  # a mixture posterior's objective
        overrides += ["posterior=mixture"]
    cfg = make_cfg(*overrides)
    metrics = run.train(cfg, tmp_path, overrides)
    for k in ("test/elbo", "test/recon", "test/kl", "val/elbo"):
        assert torch.isfinite(torch.tensor(metrics[k])), k
    assert metrics["test/elbo"] == pytest.approx(metrics["test/recon"] - metrics["test/kl"])
    assert (tmp_path / "checkpoints" / "best.pt").is_file()
    assert (tmp_path / "samples.png").is_file() != cfg.evaluation.lean  # a lean run (experiment=impute_file) draws none


@pytest.mark.parametrize("latent_dim,prior", [(1, "gaussian"), (1, "mog"), (2, "flow")])
def test_a_one_or_two_dimensional_latent_space_trains_and_draws_every_picture(latent_dim, prior, tmp_path, no_threads):
    """Found by the config fuzzer: latent_dim=1 crashed the latent-scatter picture after training had finished."""
    run.train(make_cfg(f"latent_dim={latent_dim}", f"prior={prior}"), tmp_path)
    for picture in ("samples", "traversals", "interpolations", "latent_scatter"):
        assert (tmp_path / f"{picture}.png").read_bytes().startswith(b"\x89PNG"), picture


@pytest.mark.parametrize("dataset", ["mnist", "cifar10", "image_folder"])
def test_conv_on_every_image_shape(dataset, data_root, tmp_path, no_threads):
    cfg = make_cfg(
        *dataset_overrides(dataset, data_root),
        "architecture=conv",
        "architecture.base_channels=4",
        "architecture.fc_hidden=16",
    )
    assert torch.isfinite(torch.tensor(run.train(cfg, tmp_path)["test/elbo"]))


def test_run_directory_contract(tmp_path, no_threads):
    cfg = make_cfg("trainer.epochs=2", "trainer.log_every=1", "beta=2", "logger.images_every=1")
    metrics = run.train(cfg, tmp_path)
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    for k in ("test/elbo", "test/recon", "test/kl", "val/elbo"):
        assert isinstance(on_disk[k], float)
    assert on_disk["test/loss"] == pytest.approx(-on_disk["test/recon"] + 2 * on_disk["test/kl"])
    for key in (
        "test/log_likelihood",
        "test/log_likelihood_stderr",
        "test/active_units",
        "test/active_dims",
        "test/kl_per_dim",
        "test/avg_kl",
        "test/mutual_information",
        "test/marginal_kl",
        "test/linear_probe_accuracy",
        "test/triplet_accuracy",
        "epoch_time_s",
    ):
        assert key in on_disk, key
    assert len(on_disk["test/kl_per_dim"]) == 16 and on_disk["test/active_units"] == len(on_disk["test/active_dims"])
    for png in (
        "samples.png",
        "reconstructions.png",
        "traversals.png",
        "interpolations.png",
        "latent_scatter.png",
        "kl_per_dim.png",
    ):
        assert (tmp_path / png).stat().st_size > 0
    for name in ("last.pt", "best.pt"):
        state = torch.load(tmp_path / "checkpoints" / name, weights_only=True)
        assert set(KEYS) <= set(state) and state["config"]["beta"] == 2.0
    ea = EventAccumulator(str(tmp_path), size_guidance={"tensors": 0, "scalars": 0, "images": 0})
    ea.Reload()
    tags = ea.Tags()
    for split in ("train", "val", "test"):
        for term in ("elbo", "recon", "kl", "loss"):
            assert f"{split}/{term}" in tags["scalars"], f"{split}/{term}"
    assert {
        "samples",
        "reconstructions",
        "test/samples",
        "test/reconstructions",
        "test/traversals",
        "test/interpolations",
        "test/latent_scatter",
        "test/kl_per_dim",
    } <= set(tags["images"])
    assert {"test/log_likelihood", "test/active_units", "test/triplet_accuracy"} <= set(tags["scalars"])
    assert len(ea.Images("samples")) == 2  # one per validation
    assert ea.Scalars("test/elbo")[-1].value == pytest.approx(metrics["test/elbo"], rel=1e-5)
    hp = PluginEventAccumulator(str(tmp_path))
    hp.Reload()
    content = hp.PluginTagToContent("hparams")
    assert "_hparams_/session_start_info" in content
    assert "_hparams_/experiment" not in content  # TensorBoard builds it from all runs (test_sweeps: swept keys first)
    start = HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["beta"].number_value == 2.0 and start.hparams["prior"].string_value == "GaussianPrior"
    assert list(tmp_path.glob("*/events.out.tfevents*")) == []  # HParams written into the run's own folder


def test_resume_equals_uninterrupted(tmp_path, monkeypatch, no_threads):
    overrides = ["trainer.epochs=4", "trainer.limit_batches=3", "trainer.log_every=2", "trainer.checkpoint_every_s=0"]
    full = run.train(make_cfg(*overrides), tmp_path / "full")

    real_epoch = Trainer.train_epoch

    def crash_in_epoch_3(self):
        if self.epoch == 2:
            raise KeyboardInterrupt  # interrupted after epoch 2's checkpoint
        real_epoch(self)

    monkeypatch.setattr(Trainer, "train_epoch", crash_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        run.train(make_cfg(*overrides), tmp_path / "cut")
    assert load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")["epoch"] == 2
    monkeypatch.setattr(Trainer, "train_epoch", real_epoch)
    resumed = run.train(make_cfg(f"resume={tmp_path / 'cut'}"), tmp_path / "ignored", [f"resume={tmp_path / 'cut'}"])
    for k in ("test/elbo", "test/recon", "test/kl", "val/elbo", "steps", "best_epoch"):
        assert resumed[k] == full[k], k  # bit for bit on CPU
    assert not (tmp_path / "ignored").exists()  # training went on in the original run directory
    # The epoch time is the median over both sessions' epochs: the checkpoint carries the first session's.
    times = load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")["epoch_times_s"]
    assert len(times) == 4 and all(t > 0 for t in times)
    assert resumed["epoch_time_s"] == round(statistics.median(times), 3)


def test_a_checkpoint_saved_before_an_option_existed_still_evaluates(tmp_path, no_threads):
    """Keys added to vae-runner after a run was saved take today's defaults (the optimizer group, new options), and
    only inside components that are the same today: the saved mog/mse run evaluated by a command whose defaults are
    another prior and likelihood gets none of their keys (MoGPrior and MSE would refuse them)."""
    trained = run.train(
        make_cfg("architecture.hidden=[32]", "latent_dim=4", "prior=mog", "likelihood=mse"), tmp_path / "train"
    )
    ckpt = tmp_path / "train" / "checkpoints" / "best.pt"
    state = torch.load(ckpt, weights_only=True)
    for config in (state["config"], state["config_source"]):
        del config["optimizer"], config["objective"]["analytic_kl"], config["evaluation"]["kl_samples"]
    torch.save(state, ckpt)
    evaluated = run.evaluate(make_cfg("mode=eval", f"ckpt={ckpt}"), tmp_path / "eval", ["mode=eval", f"ckpt={ckpt}"])
    assert evaluated["test/elbo"] == pytest.approx(trained["test/elbo"], rel=1e-6)


def test_a_saved_run_whose_dataset_option_gained_a_key_still_evaluates(tmp_path, no_threads):
    """A tabular run saved before `dataset.label_column` existed: `vae-run mode=eval ckpt=...` (no dataset= on the
    command line, so today's default dataset is another option) gets the key at today's value from the run's own
    option, and scores the same imputations."""
    cfg = make_cfg(
        "dataset=tabular",
        "dataset.table=wine",
        "likelihood=gaussian",
        "missing.kind=mcar",
        "missing.rate=0.3",
        "architecture.hidden=[16]",
        "latent_dim=3",
        "evaluation.imputation.samples=32",
        "evaluation.imputation.draws=8",
        "evaluation.imputation.baseline_draws=2",
    )
    trained = run.train(cfg, tmp_path / "train")
    ckpt = tmp_path / "train" / "checkpoints" / "best.pt"
    state = torch.load(ckpt, weights_only=True)
    for config in (state["config"], state["config_source"]):
        del config["dataset"]["label_column"]
    torch.save(state, ckpt)
    evaluated = run.evaluate(make_cfg("mode=eval", f"ckpt={ckpt}"), tmp_path / "eval", ["mode=eval", f"ckpt={ckpt}"])
    assert evaluated["test/impute_rmse"] == pytest.approx(trained["test/impute_rmse"], rel=1e-6)


def test_the_same_command_again_resumes_an_interrupted_preset_run_of_an_older_version(
    tmp_path, monkeypatch, no_threads
):
    """A re-launched sweep or reproduction/reproduce.py runs the same `experiment=` command in a directory holding an
    interrupted run: it resumes (the preset is not refused as a change to a saved run)."""
    overrides = [
        "experiment=tvae_digits",
        "trainer.epochs=3",
        "trainer.limit_batches=2",
        "trainer.checkpoint_every_s=0",
    ]
    real_epoch = Trainer.train_epoch

    def crash_in_epoch_2(self):
        if self.epoch == 1:
            raise KeyboardInterrupt
        real_epoch(self)

    monkeypatch.setattr(Trainer, "train_epoch", crash_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        run.run(make_cfg(*overrides), tmp_path, overrides)
    monkeypatch.setattr(Trainer, "train_epoch", real_epoch)
    # and it was saved by an older vae-runner, before settings of today's config existed
    last = tmp_path / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=True)
    for config in (state["config"], state["config_source"]):
        del config["n"], config["objective"]["analytic_kl"], config["logger"]["images_every"]
        del config["trainer"]["checkpoint_every_s"]
    torch.save(state, last)
    run.run(make_cfg(*overrides), tmp_path, overrides)
    assert json.loads((tmp_path / "metrics.json").read_text())["epochs"] == 3


def test_resume_can_extend_training_but_not_change_the_model(tmp_path, no_threads):
    run.train(make_cfg(), tmp_path / "a")
    more = run.train(
        make_cfg(f"resume={tmp_path / 'a'}", "trainer.epochs=2"),
        tmp_path / "x",
        [f"resume={tmp_path / 'a'}", "trainer.epochs=2"],
    )
    assert more["epochs"] == 2
    # TensorBoard shows both validations: the first run's (at its checkpoint's step) is not purged by the resume
    events = EventAccumulator(str(tmp_path / "a")).Reload()
    assert [e.step for e in events.Scalars("val/elbo")] == [2, 4]
    with pytest.raises(UserError, match="latent_dim"):
        run.train(
            make_cfg(f"resume={tmp_path / 'a'}", "latent_dim=3"),
            tmp_path / "x",
            [f"resume={tmp_path / 'a'}", "latent_dim=3"],
        )


def test_eval_mode_reproduces_the_test_metrics(tmp_path, no_threads):
    trained = run.train(make_cfg("architecture.hidden=[32]", "latent_dim=4"), tmp_path / "train")
    ckpt = tmp_path / "train" / "checkpoints" / "best.pt"
    evaluated = run.evaluate(make_cfg("mode=eval", f"ckpt={ckpt}"), tmp_path / "eval", ["mode=eval", f"ckpt={ckpt}"])
    for k in ("test/elbo", "test/recon", "test/kl", "val/elbo"):
        assert evaluated[k] == pytest.approx(trained[k], rel=1e-6), k
    assert (tmp_path / "eval" / "metrics.json").is_file() and (tmp_path / "eval" / "samples.png").is_file()
    with pytest.raises(UserError, match="differs from the requested one in: likelihood") as err:
        run.evaluate(
            make_cfg("mode=eval", f"ckpt={ckpt}", "likelihood=mse"),
            tmp_path / "e2",
            ["mode=eval", f"ckpt={ckpt}", "likelihood=mse"],
        )
    assert "Bernoulli" in str(err.value) and "MSE" in str(err.value)


def test_a_users_own_prior_plugs_in_by_target(tmp_path, no_threads):
    cfg = make_cfg("prior._target_=plugin_prior.WidePrior")
    metrics = run.train(cfg, tmp_path)
    assert torch.isfinite(torch.tensor(metrics["test/kl"]))
    with pytest.raises(UserError, match="cannot be imported"):
        run.run(make_cfg("prior._target_=my_pkg.NoSuchPrior"), tmp_path / "x")


@pytest.mark.parametrize(
    "override,fragment",
    [
        ("beta=-1", "beta=-1.0"),
        ("latent_dim=0", "latent_dim=0"),
        ("trainer.lr=0", "trainer.lr=0.0"),
        ("trainer.batch_size=0", "trainer.batch_size=0"),
        ("beta=nan", "beta=nan"),
        ("trainer.epochs=0", "epochs"),
        ("mode=eval", "ckpt="),
        ("trainer.precision=fp16", "trainer.precision='fp16' (must be auto, fp32 or bf16)"),
        ("evaluation.precision=fp16", "evaluation.precision='fp16' (must be auto, fp32 or bf16)"),
        ("logger.log_every_epochs=0", "logger.log_every_epochs=0 (must be an integer >= 1 (epochs))"),
        ("optimizer.fused=false", "add optimizer._target_=torch.optim.Adam"),
    ],
)
def test_bad_values_fail_before_any_data_is_read(override, fragment, tmp_path, monkeypatch):
    monkeypatch.setattr(build, "load_data", lambda *a: pytest.fail("data was read"))
    with pytest.raises(UserError, match="Invalid configuration") as err:
        run.run(make_cfg(override), tmp_path)
    assert fragment in str(err.value)


@pytest.mark.parametrize(
    "override,error",
    [
        ("beta=abc", ConfigCompositionException),
        ("trainer.device=gpu", ConfigCompositionException),
        ("latent_dim=1.5", ConfigCompositionException),
        ("prior=nope", MissingConfigException),
    ],
)
def test_wrong_types_and_unknown_options_fail_at_compose_time(override, error):
    with pytest.raises(error):
        make_cfg(override)


def test_bad_checkpoints_get_clear_messages(tmp_path, no_threads):
    run.train(make_cfg(), tmp_path / "r")
    good = (tmp_path / "r" / "checkpoints" / "last.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(good[: len(good) // 2])
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    (tmp_path / "pickled.pt").write_bytes(b"")
    torch.save({"evil": pickle.loads(pickle.dumps(UserError("x")))}, tmp_path / "pickled.pt")
    (tmp_path / "text.pt").write_text("hello")
    for name, fragment in (
        ("truncated.pt", "truncated or corrupt"),
        ("text.pt", "truncated or corrupt"),
        ("other.pt", "not a vae-run checkpoint"),
        ("pickled.pt", "weights_only=True"),
        ("missing.pt", "Checkpoint not found"),
    ):
        with pytest.raises(UserError, match=fragment):
            run.evaluate(make_cfg("mode=eval", f"ckpt={tmp_path / name}"), tmp_path / "e")


def test_bernoulli_on_real_valued_data_is_refused(tmp_path):
    with pytest.raises(UserError, match="likelihood=gaussian"):
        run.train(make_cfg("dataset=synthetic"), tmp_path)


def test_eval_may_point_at_data_elsewhere_but_resume_not_at_other_data(data_root, tmp_path, no_threads):
    """mode=eval may also score other data of the model's shape (tests/test_api.py); resuming may not train on it."""
    import shutil

    base = dataset_overrides("mnist", data_root)
    run.train(make_cfg(*base), tmp_path / "train")
    ckpt = tmp_path / "train" / "checkpoints" / "best.pt"
    moved = tmp_path / "moved"
    shutil.copytree(data_root / "MNIST", moved / "MNIST")
    args = ["mode=eval", f"ckpt={ckpt}", "dataset=mnist", f"dataset.root={moved}"]
    assert torch.isfinite(torch.tensor(run.evaluate(make_cfg(*args), tmp_path / "e1", args)["test/elbo"]))
    args = [f"resume={ckpt}", *dataset_overrides("fashion_mnist", data_root)]
    with pytest.raises(UserError, match="differs from the requested one in: dataset"):
        run.train(make_cfg(*args), tmp_path / "e2", args)


FROM_MAIN_2FF8435 = Path(__file__).parent / "fixtures" / "run_from_main_2ff8435"


def test_a_run_saved_by_an_earlier_layout_still_evaluates_to_its_own_numbers(tmp_path, no_threads):
    """fixtures/run_from_main_2ff8435: a digits run (prior=mog, optimizer=adam_normgrad) trained by main at 2ff8435,
    before the packages of the second structure step: its checkpoint's `_target_`s and config (a logger without a
    `_target_`) still load, and evaluating it again gives the metrics.json that run wrote."""
    overrides = ["mode=eval", f"ckpt={FROM_MAIN_2FF8435}", "trainer.num_threads=1"]
    evaluated = run.evaluate(make_cfg(*overrides), tmp_path, overrides)
    saved = json.loads((FROM_MAIN_2FF8435 / "metrics.json").read_text())
    for key in ("test/elbo", "test/recon", "test/kl", "test/log_likelihood", "val/elbo", "test/active_units"):
        assert evaluated[key] == pytest.approx(saved[key], rel=1e-5, abs=1e-5), key
