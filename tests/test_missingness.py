"""The missingness mechanisms (data/missingness.py) as the imputation literature simulates them: each hides its rate
in every column (binary and few-valued columns included), MAR depends on observed variables only, the MNAR kinds on
values that go missing, every mask reproduces from its seed, and a run composes, hides and trains with each kind."""

import pytest
import torch
from conftest import make_cfg

from vae_runner.build import load_data
from vae_runner.data import DataSplits, Split
from vae_runner.data.missingness import KINDS, fit_logistic, hide_missing, mnar_mask

CPU = torch.device("cpu")
RATE = 0.3


def table(n: int = 6000, seed: int = 0) -> torch.Tensor:
    """Correlated columns: four Gaussian ones, a binary one (mean 0.3) and a three-valued one."""
    g = torch.Generator().manual_seed(seed)
    common = torch.randn(n, 1, generator=g)
    gauss = 0.7 * common + 0.7 * torch.randn(n, 4, generator=g)
    binary = (torch.rand(n, 1, generator=g) < 0.3).float()
    levels = torch.randint(0, 3, (n, 1), generator=g).float()
    return torch.cat([gauss, binary, levels], 1)


def splits(x: torch.Tensor) -> DataSplits:
    n = len(x) // 3
    return DataSplits(Split(x[:n]), Split(x[n : 2 * n]), Split(x[2 * n :]), in_unit_range=False)


def masks(kind: str, x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    return torch.isnan(hide_missing(splits(x), kind, RATE, seed, inputs=0.3).test.x)


@pytest.mark.parametrize("kind", ["mcar", "mnar", "mnar_logistic", "self_masking"])
def test_every_column_loses_the_rate_binary_and_few_valued_ones_too(kind):
    rates = masks(kind, table()).float().mean(0)
    assert torch.allclose(rates, torch.full_like(rates, RATE), atol=0.04), f"{kind}: {rates.tolist()}"


def test_the_threshold_mechanism_breaks_ties_so_a_binary_column_hits_its_rate():
    """A 0/1 column with 30 % ones at rate 0.1: the largest 20 % are all ones; before ties were broken at random no
    entry was above the quantile (1) and nothing went missing."""
    x = (torch.rand(5000, 1, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    mask = mnar_mask(x, 0.1, seed=0)
    assert mask.float().mean().item() == pytest.approx(0.1, abs=0.015)
    assert x[mask].eq(1).all()  # what is missing is what is large


def test_mar_keeps_its_inputs_observed_and_depends_on_them_only():
    x = table()
    mechanism = fit_logistic(x[:2000], RATE, "mar", 0.3, seed=0)
    inputs, targets = mechanism.inputs.tolist(), mechanism.targets.tolist()
    assert len(inputs) == 2 and sorted(inputs + targets) == list(range(6))
    mask = masks("mar", x)
    assert not mask[:, inputs].any()
    assert torch.allclose(mask[:, targets].float().mean(0), torch.full((4,), RATE, dtype=torch.float), atol=0.04)
    other = x.clone()
    other[:, targets] = torch.randn(len(x), len(targets))  # the values that go missing, changed: the same mask
    assert torch.equal(masks("mar", other), mask)
    changed = x.clone()
    changed[:, inputs] = torch.randn(len(x), len(inputs))  # the observed values changed: another mask
    assert not torch.equal(masks("mar", changed), mask)


def test_mar_is_not_mcar_missingness_follows_the_observed_values():
    x = table()
    test = x[4000:]
    mechanism = fit_logistic(x[:2000], RATE, "mar", 0.3, seed=0)
    mask = masks("mar", x)
    score = (test[:, mechanism.inputs] - mechanism.mean.float()) / mechanism.scale.float() @ mechanism.weights.float()
    for j, t in enumerate(mechanism.targets.tolist()):
        high = score[:, j] > score[:, j].median()
        assert mask[high, t].float().mean() > mask[~high, t].float().mean() + 0.1  # positive weights


def test_mnar_logistic_hides_its_inputs_and_self_masking_hides_large_values():
    x = table()
    mechanism = fit_logistic(x[:2000], RATE, "mnar_logistic", 0.3, seed=0)
    mask = masks("mnar_logistic", x)
    assert mask[:, mechanism.inputs].float().mean().item() == pytest.approx(RATE, abs=0.04)  # inputs MCAR
    test = x[4000:]
    self_mask = masks("self_masking", x)
    for c in range(4):  # Gaussian columns: what is missing is larger on average
        assert test[self_mask[:, c], c].mean() > test[~self_mask[:, c], c].mean() + 0.3


@pytest.mark.parametrize("kind", KINDS[1:])
def test_masks_reproduce_from_their_seed_and_differ_between_seeds(kind):
    x = table()
    assert torch.equal(masks(kind, x, seed=3), masks(kind, x, seed=3))
    assert not torch.equal(masks(kind, x, seed=3), masks(kind, x, seed=4))


def test_a_one_hot_group_is_one_variable():
    """wine's class (three one-hot columns): an input as a whole or hidden as a whole, under every kind."""
    for kind in KINDS[1:]:
        data = load_data(
            make_cfg(
                "dataset=tabular",
                "dataset.table=wine",
                "dataset.label_column=true",
                "likelihood=gaussian",
                f"missing.kind={kind}",
                "missing.rate=.3",
            ),
            CPU,
        )
        [(start, stop)] = data.categorical_columns
        hidden = torch.isnan(data.test.x[:, start:stop])
        assert (hidden.all(1) | ~hidden.any(1)).all(), kind


@pytest.mark.parametrize("kind", KINDS[1:])
def test_each_kind_composes_validates_and_trains_a_run(kind, tmp_path, no_threads):
    from vae_runner import run

    overrides = ("dataset=tabular", "dataset.table=wine", "likelihood=gaussian", f"missing.kind={kind}")
    metrics = run.train(make_cfg(*overrides, "missing.rate=0.3", "evaluation.imputation.draws=5"), tmp_path)
    assert 0 < metrics["test/impute_rmse"] < 2


def test_mar_and_mnar_logistic_need_a_share_of_inputs_inside_0_and_1():
    from vae_runner.config.checks import validate
    from vae_runner.errors import UserError

    with pytest.raises(UserError, match="missing.inputs"):
        validate(make_cfg("dataset=tabular", "missing.kind=mar", "missing.inputs=1.0"))
