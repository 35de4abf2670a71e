"""Training and imputing with missing entries: the observed-only likelihood, the masks applied to every split without
leaking a hidden value into training, the importance-weighted imputations against a linear-Gaussian model's closed
form, and `experiment=impute_tabular` end to end."""

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.distributions as td
from torch import nn

from tests.conftest import make_cfg, table_reading
from vae_runner.build import load_data
from vae_runner.config.compose import build_option
from vae_runner.data.missingness import hide_missing
from vae_runner.data.tabular import load_tabular, standardized
from vae_runner.errors import UserError
from vae_runner.evaluation.imputation_report import accuracy
from vae_runner.imputation.importance import importance_imputations
from vae_runner.model.likelihoods import ObservedOnly
from vae_runner.model.priors.gaussian import GaussianPrior
from vae_runner.model.vae import VAE

AS_GIVEN = table_reading()


def test_the_observed_only_likelihood_sums_the_observed_entries_and_ignores_the_rest():
    torch.manual_seed(0)
    loc, scale = torch.randn(5, 7, requires_grad=True), torch.rand(5, 7) + 0.5
    x = torch.randn(5, 7)
    missing = torch.rand(5, 7) < 0.4
    lp = ObservedOnly(td.Normal(loc, scale), 1).log_prob(x.masked_fill(missing, float("nan")))
    expected = torch.where(missing, 0.0, td.Normal(loc, scale).log_prob(x)).sum(1)
    assert torch.allclose(lp, expected)
    lp.sum().backward()
    assert torch.isfinite(loc.grad).all() and (loc.grad[missing] == 0).all() and (loc.grad[~missing] != 0).all()
    no_nan = ObservedOnly(td.Normal(loc, scale), 1).log_prob(x)
    assert torch.allclose(no_nan, td.Independent(td.Normal(loc, scale), 1).log_prob(x))


def table(seed: int = 0):
    return load_tabular("wine", val_fraction=0.2, test_fraction=0.2, split_seed=seed, label_column=False, **AS_GIVEN)


def test_masks_hide_entries_in_every_split_and_keep_the_truth_for_validation_and_test_only():
    data = table()
    hidden = hide_missing(data, "mcar", 0.3, seed=4)
    for name in ("train", "val", "test"):
        full, split = getattr(data, name), getattr(hidden, name)
        missing = torch.isnan(split.x)
        assert missing.float().mean().item() == pytest.approx(0.3, abs=0.06)
        assert (~missing).any(1).all()  # every row keeps an observed entry
        assert torch.equal(split.x[~missing], full.x[~missing])
    assert hidden.train.truth is None  # the training split keeps no copy of what it hides
    assert torch.equal(hidden.test.truth, data.test.x) and torch.equal(hidden.val.truth, data.val.x)
    again, other = hide_missing(data, "mcar", 0.3, seed=4), hide_missing(data, "mcar", 0.3, seed=5)
    assert torch.equal(torch.isnan(again.test.x), torch.isnan(hidden.test.x))
    assert not torch.equal(torch.isnan(other.test.x), torch.isnan(hidden.test.x))
    assert not torch.equal(torch.isnan(hidden.train.x[: len(hidden.test)]), torch.isnan(hidden.test.x))


def test_no_hidden_training_value_reaches_the_model():
    """Two tables that differ only in the entries the training mask hides give bit-identical training inputs,
    standardisation and gradients: nothing the model learns from can depend on a hidden value."""
    data = table()
    mask = torch.isnan(hide_missing(data, "mcar", 0.3, seed=1).train.x)
    changed = replace(data, train=replace(data.train, x=torch.where(mask, data.train.x * 100 + 7, data.train.x)))
    a, b = (standardized(hide_missing(d, "mcar", 0.3, seed=1)) for d in (data, changed))
    assert torch.equal(torch.isnan(a.train.x), mask)
    assert torch.equal(a.train.x.nan_to_num(), b.train.x.nan_to_num()) and torch.equal(a.scale, b.scale)
    assert torch.equal(a.offset, b.offset)

    def gradients(d):
        torch.manual_seed(0)
        f = d.shape[0]
        vae = VAE(
            build_option("architecture", "mlp", "encoder", hidden=[16], input_shape=(f,), latent_dim=3),
            build_option("architecture", "mlp", "decoder", hidden=[16], output_shape=(f,), latent_dim=3),
            GaussianPrior(3),
            build_option("likelihood", "gaussian", data_shape=(f,), init_sigma=1.0),
        ).accept_missing()
        loss = build_option("objective", "elbo")(vae, d.train.x)["loss"].mean()
        loss.backward()
        return torch.cat([p.grad.flatten() for p in vae.parameters()])

    ga, gb = gradients(a), gradients(b)
    assert torch.isfinite(ga).all() and torch.equal(ga, gb)


class LinearDecoder(nn.Module):
    def __init__(self, w: torch.Tensor, b: torch.Tensor):
        super().__init__()
        self.w, self.b = nn.Parameter(w), nn.Parameter(b)

    def forward(self, z):
        return z @ self.w.T + self.b


class WideProposal(nn.Module):
    """q(z|x) = N(0, 2^2 I) whatever x: a proposal wider than the prior (so than any posterior), exact as K grows."""

    def __init__(self, d: int):
        super().__init__()
        self.d = d

    def forward(self, x):
        zeros = x.new_zeros(x.shape[0], self.d)
        return zeros, zeros + math.log(4.0)


def test_importance_imputations_recover_the_closed_form_conditional_of_a_linear_gaussian_model():
    """x = W z + b + sigma eps with z ~ N(0, I) is N(b, W W^T + sigma^2 I): its conditional mean and log-density of
    the missing entries given the observed ones are known; the imputer's must match, and its 90 % intervals must
    cover about 90 % of draws from the model."""
    torch.manual_seed(0)
    d, f, sigma = 2, 5, 0.4
    w, b = torch.randn(f, d), torch.randn(f)
    lik = build_option("likelihood", "mse", data_shape=(f,), sigma=sigma)
    model = VAE(WideProposal(d), LinearDecoder(w, b), GaussianPrior(d), lik).accept_missing()
    truth = (torch.randn(300, d) @ w.T + b + sigma * torch.randn(300, f)).double()
    missing = torch.zeros(300, f, dtype=torch.bool)
    missing[:, 1] = missing[:, 3] = True
    x = truth.float().masked_fill(missing, float("nan"))
    mean, draws, cond = importance_imputations(model, x, truth.float(), samples=20000, draws=400, seed=0)
    assert draws.shape == (400, 300, f) and torch.equal(mean[~missing], x[~missing])
    cov = (w @ w.T + sigma**2 * torch.eye(f)).double()
    o, m = [0, 2, 4], [1, 3]
    gain = cov[m][:, o] @ torch.linalg.inv(cov[o][:, o])
    cond_mean = b[m].double() + (truth[:, o] - b[o].double()) @ gain.T
    cond_cov = cov[m][:, m] - gain @ cov[o][:, m]
    exact = td.MultivariateNormal(cond_mean, cond_cov).log_prob(truth[:, m])
    assert (mean[:, m].double() - cond_mean).abs().mean() < 0.02  # self-normalised IS: consistent, a little
    assert (cond.double() - exact).abs().mean() < 0.05  # noisy in the rows whose posterior lies far out
    lo, hi = torch.quantile(draws[:, :, m], torch.tensor([0.05, 0.95]), dim=0)
    inside = ((truth[:, m].float() >= lo) & (truth[:, m].float() <= hi)).float().mean().item()
    assert inside == pytest.approx(0.9, abs=0.04)
    assert math.isfinite(cond.mean().item())


def test_load_data_hides_then_standardises_by_the_observed_training_entries():
    overrides = ("dataset=tabular", "dataset.table=wine", "likelihood=gaussian", "missing.kind=mcar", "missing.rate=.2")
    cfg = make_cfg(*overrides)
    data = load_data(cfg, torch.device("cpu"))
    x = data.train.x
    assert data.has_missing and torch.isnan(x).any()
    seen = torch.where(torch.isnan(x), 0.0, x)
    counts = (~torch.isnan(x)).sum(0)
    assert torch.allclose(seen.sum(0) / counts, torch.zeros(x.shape[1]), atol=1e-5)  # observed mean 0 per column
    original = load_tabular("wine", 0.1, 0.2, 0, label_column=False, **AS_GIVEN).test.x
    assert torch.allclose(data.test.truth * data.scale + data.offset, original, atol=1e-3)


def test_mnar_above_half_is_refused_before_data_is_read():
    from vae_runner.config.checks import validate

    with pytest.raises(UserError, match="missing.rate <= 0.5"):
        validate(make_cfg("dataset=tabular", "missing.kind=mnar", "missing.rate=0.6"))


def train_impute_tabular(run_dir, *overrides: str) -> dict:
    """experiment=impute_tabular, shrunk to a few seconds, trained and evaluated; its metrics.json."""
    from vae_runner.api import train

    shrink = [
        "trainer.epochs=3",
        "trainer.num_threads=1",
        "evaluation.iw_samples=16",
        "evaluation.imputation.samples=64",
        "evaluation.imputation.draws=20",
        "evaluation.imputation.baseline_draws=2",
        "logger.progress_bar=false",
    ]
    train(["experiment=impute_tabular", *overrides, *shrink], run_dir=run_dir)
    return json.loads((run_dir / "metrics.json").read_text())


def test_impute_tabular_trains_and_reports_ours_beside_the_baselines(tmp_path):
    metrics = train_impute_tabular(
        tmp_path / "run", "dataset.table=wine", "evaluation.imputation.baselines=[mean,knn,mice,mice_norm]"
    )
    ours = ["rmse", "coverage", "crps", "cond_ll", "dependence"]
    theirs = [f"{score}_{name}" for score in ("coverage", "crps", "dependence") for name in ("mice", "mice_norm")]
    for key in [*ours, "rmse_mean", "rmse_knn", "rmse_mice", "rmse_mice_norm", *theirs]:
        assert np.isfinite(metrics[f"test/impute_{key}"]), key
    assert 0 <= metrics["test/impute_coverage"] <= 1 and metrics["test/impute_entries"] > 0
    assert (tmp_path / "run" / "imputations.png").is_file()


def test_binary_columns_are_bernoulli_and_the_rest_gaussian():
    torch.manual_seed(0)
    loc, binary = torch.randn(4, 5), torch.tensor([False, True, False, False, True])
    lik = build_option("likelihood", "gaussian", data_shape=(5,), init_sigma=0.7)
    lik.model_binary_columns(binary)
    x = torch.where(binary, (torch.rand(4, 5) < 0.5).float(), torch.randn(4, 5))
    p = lik(loc)
    bernoulli = td.Bernoulli(logits=loc, validate_args=False)  # scored on every entry, kept on the binary ones
    per_entry = torch.where(binary, bernoulli.log_prob(x), td.Normal(loc, lik.sigma).log_prob(x))
    assert torch.allclose(p.log_prob(x), per_entry.sum(1), atol=1e-6)
    assert torch.allclose(p.mean[:, binary], torch.sigmoid(loc[:, binary]))
    assert set(p.sample()[:, binary].unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(UserError, match="binary columns"):
        build_option("likelihood", "bernoulli", data_shape=(5,)).model_binary_columns(binary)


def test_tables_mark_their_binary_columns_and_can_carry_the_class():
    cancer = load_tabular("breast_cancer", 0.1, 0.2, 0, label_column=True, **AS_GIVEN)
    assert cancer.binary_columns[-1] and sum(cancer.binary_columns) == 1
    assert torch.equal(cancer.train.x[:, -1], (cancer.train.y == 1).float())  # 1 = benign
    wine = load_tabular("wine", 0.1, 0.2, 0, label_column=True, **AS_GIVEN)
    assert wine.columns[-3:] == ("class=class_0", "class=class_1", "class=class_2")
    assert torch.equal(wine.test.x[:, -3:].argmax(1), wine.test.y)
    diabetes = standardized(load_tabular("diabetes", 0.1, 0.2, 0, label_column=False, **AS_GIVEN))
    assert diabetes.binary_columns[1] and set(diabetes.train.x[:, 1].tolist()) == {0.0, 1.0}  # sex stays 0/1
    assert abs(diabetes.train.x[:, 0].mean().item()) < 1e-5  # age standardised
    with pytest.raises(UserError, match="labelled table"):
        load_tabular("diabetes", 0.1, 0.2, 0, label_column=True, **AS_GIVEN)


@pytest.mark.parametrize("table", ["breast_cancer", "wine"])  # one binary class column; a one-hot group of three
def test_impute_tabular_imputes_a_class_column(tmp_path, table):
    metrics = train_impute_tabular(tmp_path / "run", f"dataset.table={table}", "dataset.label_column=true")
    for key in ("accuracy", "accuracy_mean", "accuracy_knn", "accuracy_mice"):
        assert 0 <= metrics[f"test/impute_{key}"] <= 1, key
    assert np.isfinite(metrics["test/impute_rmse"]) and np.isfinite(metrics["test/impute_rmse_mice"])


def test_a_one_hot_group_is_one_categorical_hidden_and_scored_as_a_whole():
    torch.manual_seed(0)
    loc, x = torch.randn(6, 5), torch.randn(6, 5)
    x[:, 2:5] = torch.nn.functional.one_hot(torch.randint(3, (6,)), 3).float()
    lik = build_option("likelihood", "gaussian", data_shape=(5,), init_sigma=0.7)
    lik.model_binary_columns(torch.tensor([False, False, True, True, True]), [(2, 5)])
    p = lik(loc)
    expected = td.Normal(loc[:, :2], lik.sigma[:2]).log_prob(x[:, :2]).sum(1)
    expected = expected + td.OneHotCategorical(logits=loc[:, 2:]).log_prob(x[:, 2:])
    assert torch.allclose(p.log_prob(x), expected, atol=1e-5)
    assert torch.allclose(p.mean[:, 2:], torch.softmax(loc[:, 2:], 1)) and torch.equal(p.mean[:, :2], loc[:, :2])
    draws = p.sample((4,))
    assert draws.shape == (4, 6, 5) and torch.equal(draws[..., 2:].sum(-1), torch.ones(4, 6))
    wine = load_tabular("wine", 0.1, 0.2, 0, label_column=True, **AS_GIVEN)
    assert wine.categorical_columns == ((13, 16),)
    hidden = hide_missing(wine, "mcar", 0.3, seed=1)
    group = torch.isnan(hidden.train.x[:, 13:16])
    assert torch.equal(group.all(1), group.any(1))  # all three columns hidden, or none
    assert group.all(1).float().mean().item() == pytest.approx(0.3, abs=0.1)
    truth = np.zeros((3, 4))
    truth[[0, 1, 2], [1, 2, 1]] = 1  # classes 0, 1, 0 in columns 1..3; column 0 a binary one
    truth[:, 0] = [1, 0, 1]
    imputed = np.array([[0.9, 0.6, 0.3, 0.1], [0.2, 0.5, 0.1, 0.4], [0.4, 0.7, 0.2, 0.1]])
    mask = np.array([[True] * 4, [True] * 4, [False, True, True, True]])
    # the group: rows 0 and 2 right, row 1 wrong; the binary column: rows 0 and 1 right
    assert accuracy(truth, imputed, mask, ((1, 4),)) == pytest.approx(4 / 5)


def test_missing_seed_defaults_to_the_run_seed_and_can_be_fixed_apart_from_it():
    base = ("dataset=tabular", "dataset.table=wine", "likelihood=gaussian", "missing.kind=mcar", "missing.rate=.3")
    masks = {
        name: torch.isnan(load_data(make_cfg(*base, *extra), torch.device("cpu")).test.x)
        for name, extra in {
            "run seed 5": ("seed=5",),
            "missing.seed 5": ("seed=0", "missing.seed=5"),
            "run seed 0": ("seed=0",),
        }.items()
    }
    assert torch.equal(masks["run seed 5"], masks["missing.seed 5"])
    assert not torch.equal(masks["run seed 0"], masks["missing.seed 5"])


def test_input_dropout_hides_more_entries_from_the_encoder_in_training_only():
    """objective.input_dropout from its yaml: in a training step the encoder sees about that share more NaNs (read
    as 0), the likelihood still scores every observed entry; evaluation (no progress) sees the row as it is."""
    torch.manual_seed(0)
    f = 20
    vae = VAE(
        build_option("architecture", "mlp", "encoder", hidden=[16], input_shape=(f,), latent_dim=3),
        build_option("architecture", "mlp", "decoder", hidden=[16], output_shape=(f,), latent_dim=3),
        GaussianPrior(3),
        build_option("likelihood", "gaussian", data_shape=(f,), init_sigma=1.0),
    ).accept_missing()
    seen = []
    vae.encoder.register_forward_pre_hook(lambda m, args: seen.append(args[0].clone()))  # after zero_missing: 0s
    x = torch.randn(400, f).masked_fill(torch.rand(400, f) < 0.2, float("nan"))
    objective = build_option("objective", "elbo", input_dropout=0.5)
    terms = objective(vae, x, progress=(0.0, 0))
    zeros = (seen[-1] == 0).float().mean().item()
    assert zeros == pytest.approx(0.2 + 0.8 * 0.5, abs=0.03) and torch.isfinite(terms["loss"]).all()
    torch.manual_seed(1)
    evaluated = objective(vae, x)
    assert (seen[-1] == 0).float().mean().item() == pytest.approx(0.2, abs=0.03)
    torch.manual_seed(1)
    plain = build_option("objective", "elbo")(vae, x)
    assert torch.equal(evaluated["elbo"], plain["elbo"])


def test_input_dropout_on_a_complete_table_trains(tmp_path):
    """Found by experiment=impute_file on breast_cancer: the encoder got the NaN of input_dropout where the data had
    no missing entry (the model had not been told to accept them), and the covariance's Cholesky failed."""
    metrics = train_impute_tabular(tmp_path, "missing.kind=none", "objective.input_dropout=0.3")
    assert np.isfinite(metrics["test/elbo"]) and np.isfinite(metrics["val/elbo"])


def test_monitor_imputation_keeps_the_epoch_whose_held_out_entries_scored_best(tmp_path):
    """trainer.monitor=imputation: a seeded fifth of the validation rows' observed entries is held out, its
    conditional log-likelihood logged each epoch, and best.pt is the epoch where it was highest."""
    from vae_runner.imputation.held_out import held_out_mask
    from vae_runner.runs.checkpoint import load_checkpoint

    x = torch.tensor([[1.0, float("nan")] * 500] * 4)
    held = held_out_mask(x, seed=3)
    assert not held[torch.isnan(x)].any() and 0.15 < held.float().mean() * 2 < 0.25
    assert torch.equal(held, held_out_mask(x, seed=3))
    train_impute_tabular(tmp_path / "run", "dataset.table=wine", "trainer.monitor=imputation")
    log = (tmp_path / "run" / "vae-run.log").read_text()
    scores = [float(line.split("held-out entries ")[1].split()[0]) for line in log.splitlines() if "held-out" in line]
    best = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")
    assert len(scores) == 3 and best["epoch"] == 1 + scores.index(max(scores))
    assert best["best_val_elbo"] == pytest.approx(max(scores), abs=5e-4)
