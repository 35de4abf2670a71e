"""Several modalities in one vae-run model (`modalities.*`): the packed rows and their missing modalities, the product
of experts over the modalities a row has, the joined likelihood against torch.distributions, modality dropout, and
`experiment=multimodal_digits` end to end (cross-modal scores, the picture, mode=eval)."""

import json
import math

import numpy as np
import pytest
import torch
import torch.distributions as td
from omegaconf import OmegaConf

from tests.conftest import make_cfg
from vae_runner.build import build_model, load_data
from vae_runner.config.checks import validate
from vae_runner.data import Split
from vae_runner.data.modalities import blocks, hide, present
from vae_runner.errors import UserError
from vae_runner.model.modalities import drop_some

CPU = torch.device("cpu")
BASE = ("modalities.use=[image,label,attributes]", "modalities.missing=0.4", "dataset.binarize=static")


def test_rows_hold_the_image_the_one_hot_label_and_standardised_attributes_with_whole_modalities_missing():
    data = load_data(make_cfg(*BASE), CPU)
    plain = load_data(make_cfg("dataset.binarize=static"), CPU)
    assert data.modalities == (("image", (1, 8, 8)), ("label", (10,)), ("attributes", (3,)))
    (_, img, _), (_, lab, _), (_, att, _) = blocks(data.modalities)
    full = data.test.truth
    assert torch.equal(full[:, img], plain.test.x.flatten(1))  # the same binarised test images
    assert torch.equal(full[:, lab].argmax(1), data.test.y) and torch.equal(full[:, lab].sum(1), torch.ones(len(full)))
    have = present(data.train.x, data.modalities)  # (3, N)
    assert have.any(0).all() and (~have).float().mean().item() == pytest.approx(0.4, abs=0.08)
    for e, (_, cols, _) in enumerate(blocks(data.modalities)):  # a modality is all there or all NaN
        assert (
            torch.isnan(data.train.x[~have[e]][:, cols]).all() and not torch.isnan(data.train.x[have[e]][:, cols]).any()
        )
    assert data.train.truth is None and data.val.truth is not None  # the training split keeps no hidden value
    seen = ~torch.isnan(data.test.x)
    assert torch.equal(data.test.x[seen], full[seen])
    train_att = load_data(make_cfg(BASE[0], BASE[2]), CPU).train.x[:, att]  # no missing: the standardisation's rows
    assert torch.allclose(train_att.mean(0), torch.zeros(3), atol=1e-4)
    again = load_data(make_cfg(*BASE), CPU)
    assert torch.equal(torch.isnan(again.test.x), torch.isnan(data.test.x))  # the masks come from the seed
    other = load_data(make_cfg(*BASE, "missing.seed=5"), CPU)
    assert not torch.equal(torch.isnan(other.test.x), torch.isnan(data.test.x))


def test_the_joint_posterior_is_the_product_of_the_present_experts_and_the_prior_expert():
    torch.manual_seed(0)
    cfg = make_cfg(*BASE)
    data = load_data(cfg, CPU)
    model = build_model(cfg, data, CPU).eval()
    x = data.test.truth[:6]
    experts = model.encoder.experts
    shaped = {n: x[:, c].reshape(len(x), *s) for n, c, s in blocks(data.modalities)}
    mus, logvars = zip(*(experts[n](shaped[n]).chunk(2, dim=-1) for n in ("image", "label", "attributes")))
    for drop in ([], ["label"], ["image", "attributes"]):
        q = model.posterior(hide(x, data.modalities, drop))
        mu, logvar = q.mean, q.logvar
        precision = 1 + sum(torch.exp(-lv) for n, lv in zip(("image", "label", "attributes"), logvars) if n not in drop)
        weighted = sum(
            m * torch.exp(-lv) for n, m, lv in zip(("image", "label", "attributes"), mus, logvars) if n not in drop
        )
        assert torch.allclose(logvar, -torch.log(precision), atol=1e-5)
        assert torch.allclose(mu, weighted / precision, atol=1e-5)


def test_the_likelihood_sums_the_present_modalities_as_torch_distributions_score_them():
    torch.manual_seed(0)
    cfg = make_cfg(*BASE)
    data = load_data(cfg, CPU)
    model = build_model(cfg, data, CPU)
    x = data.test.truth[:5]
    params = torch.randn(5, x.shape[1], requires_grad=True)
    (_, img, _), (_, lab, _), (_, att, _) = blocks(data.modalities)
    sigma = model.likelihood.likelihoods["attributes"].sigma
    parts = {
        "image": td.Bernoulli(logits=params[:, img]).log_prob(x[:, img]).sum(1),
        "label": td.OneHotCategorical(logits=params[:, lab]).log_prob(x[:, lab]),
        "attributes": td.Normal(params[:, att], sigma).log_prob(x[:, att]).sum(1),
    }
    assert torch.allclose(model.likelihood(params).log_prob(x), sum(parts.values()), atol=1e-4)
    lp = model.likelihood(params).log_prob(hide(x, data.modalities, ["label"]))
    assert torch.allclose(lp, parts["image"] + parts["attributes"], atol=1e-4)
    lp.sum().backward()  # a hidden modality gets no gradient: nothing of it reaches training
    assert (params.grad[:, lab] == 0).all() and (params.grad[:, img] != 0).any()


def test_modality_dropout_hides_some_in_training_keeps_one_per_row_and_is_off_in_evaluation():
    torch.manual_seed(0)
    have = torch.rand(3, 500) < 0.7
    have[:, 0] = False  # a row without any modality stays without
    kept = drop_some(have, 0.6)
    assert not (kept & ~have).any()  # only what a row has
    assert (kept.any(0) == have.any(0)).all() and kept.sum() < have.sum()
    cfg = make_cfg(*BASE)
    data = load_data(cfg, CPU)
    model = build_model(cfg, data, CPU)
    x = data.test.truth[:8]
    model.eval()
    assert torch.equal(model.posterior(x).mean, model.posterior(x).mean)
    model.train()
    torch.manual_seed(1)
    assert not torch.allclose(model.posterior(x).mean, model.eval().posterior(x).mean)


def test_bad_modality_settings_fail_with_the_fix():
    with pytest.raises(Exception, match="image first"):
        validate(make_cfg("modalities.use=[label,image]"))
    with pytest.raises(UserError, match="binarize=static"):
        load_data(make_cfg("modalities.use=[image,label]", "dataset.binarize=dynamic"), CPU)
    with pytest.raises(UserError, match="labelled image dataset"):
        load_data(make_cfg("modalities.use=[image,label]", "dataset=tabular", "likelihood=gaussian"), CPU)


def test_multimodal_digits_reports_cross_modal_scores_and_mode_eval_reproduces_them(tmp_path):
    from vae_runner.api import train
    from vae_runner.config.compose import compose_config
    from vae_runner.run import evaluate, sample

    shrink = [
        "trainer.epochs=2",
        "trainer.num_threads=1",
        "evaluation.iw_samples=16",
        "evaluation.imputation.samples=16",
        "evaluation.test_limit=60",
        "logger.progress_bar=false",
        "modalities.use=[image,label,attributes]",
        "modalities.missing=0.3",
    ]
    train(["experiment=multimodal_digits", *shrink], run_dir=tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    keys = [
        "log_p_label_given_image",
        "log_p_image_given_label",
        "log_p_attributes_given_image_label",
        "label_accuracy_given_image",
        "label_accuracy_given_attributes",
        "attributes_rmse_given_label",
        "attributes_coverage_given_image",
        "attributes_crps_given_image_label",
        "image_coherence_given_label",
        "coherence_classifier_accuracy",
    ]
    for key in keys:
        assert metrics[f"test/{key}"] == pytest.approx(metrics[f"test/{key}"]), key  # finite
    assert metrics["test/log_p_label_given_image"] <= 0 and 0 <= metrics["test/image_coherence_given_label"] <= 1
    assert 0 <= metrics["test/attributes_coverage_given_label"] <= 1 and metrics["test/attributes_crps_given_image"] > 0
    assert (tmp_path / "run" / "images_given_label.png").is_file()
    probe_ignores_the_label_column(tmp_path / "run")
    overrides = ["mode=eval", f"ckpt={tmp_path / 'run'}"]
    (tmp_path / "eval").mkdir()
    again = evaluate(compose_config(overrides), tmp_path / "eval", overrides)
    for key in keys:
        assert again[f"test/{key}"] == pytest.approx(metrics[f"test/{key}"], rel=1e-5), key
    overrides = ["mode=sample", f"ckpt={tmp_path / 'run'}", "n=12"]
    sample(compose_config(overrides), tmp_path / "sample", overrides)
    assert np.load(tmp_path / "sample" / "samples.npy").shape == (12, 64 + 10 + 3)  # the packed rows
    assert (tmp_path / "sample" / "samples.png").is_file()
    assert list(OmegaConf.load(tmp_path / "run" / ".hydra" / "config.yaml").modalities.use)[-1] == "attributes"


def probe_ignores_the_label_column(run_dir):
    """The linear probe and triplets score codes of the inputs without their label (the encoder reads the label
    modality): the same scores with every label column replaced by another class."""
    import dataclasses

    import vae_runner
    from vae_runner.data.modalities import blocks
    from vae_runner.evaluation.final import linear_probe_and_triplets

    run = vae_runner.load(run_dir)
    data, cols = run.data, {n: c for n, c, _ in blocks(run.data.modalities)}["label"]

    def relabelled(split):
        x = split.x.clone()
        x[:, cols] = torch.roll(torch.nan_to_num(x[:, cols]), 1, dims=1)  # each row another class
        return dataclasses.replace(split, x=x)

    scores = []
    for d in (data, dataclasses.replace(data, train=relabelled(data.train), test=relabelled(data.test))):
        metrics = {}
        with torch.no_grad():
            linear_probe_and_triplets(run.model, d, run.config, run.model.posterior(d.test.x).mean, metrics)
        scores.append(metrics)
    assert scores[0] == scores[1] and 0 < scores[0]["test/linear_probe_accuracy"] <= 1


def test_a_multimodal_run_trains_alone_under_the_batched_launcher():
    from vae_runner.stacking.launcher import why_alone

    assert why_alone(make_cfg()) is None
    assert why_alone(make_cfg("modalities.use=[image,label]")) == "several modalities (modalities.use)"


@pytest.mark.parametrize("joint", ["moe", "mopoe"])
def test_mixture_joints_have_the_joint_posteriors_densities_and_train_in_vae_run(joint, tmp_path):
    """modalities.joint=moe|mopoe: q is model/joint_posteriors.py's mixture (the stand-alone model's) of the same
    experts, as a posterior of the contract (its draws reparameterised); a vae-run trains and scores cross-modally."""
    from vae_runner import run
    from vae_runner.model.joint_posteriors import JOINTS

    cfg = make_cfg(*BASE, f"modalities.joint={joint}")
    data = load_data(cfg, CPU)
    model = build_model(cfg, data, CPU).eval()
    x = data.test.x[:12]
    e, d = 3, cfg.latent_dim
    params = model.encode(x)
    mu, logvar = (params[:, i * e * d : (i + 1) * e * d].unflatten(-1, (e, d)).movedim(-2, 0) for i in (0, 1))
    reference = JOINTS[joint](mu, logvar, present(x, data.modalities))
    q = model.posterior(x)
    z = q.rsample((4,))
    assert torch.allclose(q.log_prob(z), reference.log_prob(z), atol=1e-5)
    metrics = run.train(make_cfg(*BASE, f"modalities.joint={joint}", "trainer.limit_batches=3"), tmp_path)
    assert all(np.isfinite(metrics[k]) for k in ("test/elbo", "test/log_likelihood", "test/log_p_label_given_image"))


class Linear(torch.nn.Module):
    def __init__(self, w, b):
        super().__init__()
        self.w, self.b = torch.nn.Parameter(w), torch.nn.Parameter(b)

    def forward(self, z):
        return z @ self.w.T + self.b


class Wide(torch.nn.Module):
    """An expert N(0, 4^2 I) whatever its input: the product with the prior expert covers every posterior here."""

    def forward(self, x):
        zeros = x.new_zeros(x.shape[0], 2)
        return torch.cat([zeros, zeros + math.log(16.0)], dim=-1)


@pytest.mark.parametrize("joint", ["poe", "moe", "mopoe"])
def test_cross_modal_estimator_matches_a_linear_gaussian_two_modality_models_closed_forms(joint):
    """The final evaluation's log p(x_a, x_b), log p(x_b) and log p(x_a | x_b) (evaluation/cross_modal.py:
    metrics.log_likelihood on rows with the other modality hidden) of vae-run's packed model, against the exact
    Gaussian marginals of z ~ N(0, I), x_a = W_a z + b_a + e, x_b = W_b z + b_b + e."""
    from vae_runner.evaluation.metrics import log_likelihood
    from vae_runner.model.likelihoods import MSE
    from vae_runner.model.modalities import JointPosterior, ModalityDecoders, ModalityEncoders, ModalityLikelihood
    from vae_runner.model.priors.gaussian import GaussianPrior
    from vae_runner.model.vae import VAE

    torch.manual_seed(0)
    sigma = 1.0  # a broad posterior: 20000 proposals estimate it to a few hundredths of a nat
    wa, ba, wb, bb = torch.randn(3, 2), torch.randn(3), torch.randn(2, 2), torch.randn(2)
    layout = (("a", (3,)), ("b", (2,)))
    model = VAE(
        ModalityEncoders(layout, {"a": Wide(), "b": Wide()}, dropout=0.0),
        ModalityDecoders(layout, {"a": Linear(wa, ba), "b": Linear(wb, bb)}),
        GaussianPrior(2),
        ModalityLikelihood(layout, {"a": MSE((3,), sigma), "b": MSE((2,), sigma)}),
        JointPosterior(2, 2, joint),
    ).eval()
    n = 200
    z = torch.randn(n, 2)
    x = torch.cat([z @ wa.T + ba + sigma * torch.randn(n, 3), z @ wb.T + bb + sigma * torch.randn(n, 2)], 1)
    w, b = torch.cat([wa, wb]).double(), torch.cat([ba, bb]).double()
    cov = w @ w.T + sigma**2 * torch.eye(5, dtype=torch.float64)
    exact_joint = td.MultivariateNormal(b, cov).log_prob(x.double())
    exact_b = td.MultivariateNormal(b[3:], cov[3:, 3:]).log_prob(x[:, 3:].double())
    k = 20000 if joint == "poe" else 60000  # the mixtures propose from a lone N(0, 16 I) expert: noisier weights
    joint_ll = log_likelihood(model, Split(x), k, 400000, seed=1).double()
    only_b = log_likelihood(model, Split(hide(x, layout, ["a"])), k, 400000, seed=1).double()
    assert (joint_ll - exact_joint).abs().mean() < 0.05
    assert (only_b - exact_b).abs().mean() < 0.02
    assert ((joint_ll - only_b) - (exact_joint - exact_b)).abs().mean() < 0.05  # log p(x_a | x_b)
