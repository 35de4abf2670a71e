"""Proper multiple imputation (evaluation.imputation.proper): the Gaussian part's posterior draws by data
augmentation, exact where the posterior is known, and their use per imputation."""

import pytest
import torch

from vae_runner.model.correlated_gaussian import CorrelatedGaussian, gaussian_mle, posterior_draws


def test_complete_rows_draw_the_normal_inverse_wishart_posterior():
    """No missing entries: Sigma | x ~ IW(N - 1, S) and mu | Sigma, x ~ N(mean, Sigma / N) exactly, so that
    E[Sigma] = S / (N - F - 2) and Cov[mu] = E[Sigma] / N."""
    g = torch.Generator().manual_seed(0)
    n, f = 30, 3
    mix = torch.tensor([[1, 0, 0], [0.5, 1, 0], [0, 0.3, 1.0]], dtype=torch.float64)
    x = torch.randn(n, f, generator=g, dtype=torch.float64) @ mix.T
    _, draws = posterior_draws(x, 4000, seed=1, burn_in=0, thin=1)
    means, covs = torch.stack([m for m, _ in draws]), torch.stack([c for _, c in draws])
    scatter = (x - x.mean(0)).T @ (x - x.mean(0))
    expected = scatter / (n - f - 2)
    top = float(expected.diagonal().max())
    torch.testing.assert_close(covs.mean(0), expected, atol=0.06 * top, rtol=0)
    torch.testing.assert_close(means.mean(0), x.mean(0), atol=4 * (top / n / 4000) ** 0.5, rtol=0)
    torch.testing.assert_close(torch.cov(means.T), expected / n, atol=0.1 * top / n, rtol=0)


def test_with_missing_entries_the_chain_reaches_the_observed_data_posterior():
    """One column with half its entries missing: the observed-data posterior under the same prior is that of the
    n_o observed values alone, E[sigma^2 | x_obs] = S_o / (n_o - 3) and E[mu | x_obs] = their mean -- which the
    chain has to reach from the maximum-likelihood start through its draws of the missing entries."""
    g = torch.Generator().manual_seed(2)
    x = 2 + 1.5 * torch.randn(40, 1, generator=g, dtype=torch.float64)
    x[::2] = float("nan")
    seen = x[~x.isnan()]
    _, draws = posterior_draws(x, 6000, seed=3, burn_in=20, thin=1)
    variances = torch.stack([c[0, 0] for _, c in draws]).numpy()
    means = torch.stack([m[0] for m, _ in draws]).numpy()
    want = float(((seen - seen.mean()) ** 2).sum() / (len(seen) - 3))
    assert variances.mean() == pytest.approx(want, rel=0.05)  # MC error ~ 2 % (autocorrelated: 0.5 per step)
    assert means.mean() == pytest.approx(float(seen.mean()), abs=0.06)
    assert means.var() == pytest.approx(want / len(seen), rel=0.12)  # the t posterior's variance: S_o/(n_o(n_o-3))


def test_draws_reproduce_from_the_seed_and_differ_between_seeds():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(50, 4, generator=g, dtype=torch.float64)
    x[torch.rand(50, 4, generator=g) < 0.3] = float("nan")
    (mean, cov), a = posterior_draws(x, 3, seed=5)
    _, b = posterior_draws(x, 3, seed=5)
    _, c = posterior_draws(x, 3, seed=6)
    torch.testing.assert_close(cov, gaussian_mle(x)[1])
    assert all(torch.equal(p[1], q[1]) for p, q in zip(a, b))
    assert not torch.equal(a[0][1], c[0][1]) and not torch.equal(a[0][1], a[1][1])


def test_parameter_draws_move_the_models_covariance_as_the_posterior_moves_the_ml_fit():
    """A model whose covariance is the training rows' ML fit C (the start, full rank) gets each drawn C_b itself
    (A C A^T = C_b) and its mean shifted by m_b - m; `drawn` applies one setting within its block only."""
    g = torch.Generator().manual_seed(7)
    x = torch.randn(200, 4, generator=g) @ torch.randn(4, 4, generator=g).T
    x[torch.rand(200, 4, generator=g) < 0.3] = float("nan")
    lik = CorrelatedGaussian((4,), init_sigma=0.5, min_sigma=0.001, rank=None, start_correlation=1.0)
    lik.start_from(x)
    settings = lik.parameter_draws(x, 3, seed=8)
    (mean, _), draws = posterior_draws(x[:, :].double(), 3, seed=8)
    for (cov, shift), (mean_b, cov_b) in zip(settings, draws):
        torch.testing.assert_close(cov.double(), cov_b, rtol=1e-3, atol=1e-3)
        torch.testing.assert_close(shift.double(), mean_b - mean, rtol=1e-4, atol=1e-5)
    loc = torch.zeros(2, 4)
    fitted = lik(loc).cov.detach().clone()
    with lik.drawn(settings[0]):
        p = lik(loc)
        torch.testing.assert_close(p.cov, settings[0][0])
        torch.testing.assert_close(p.loc, loc + settings[0][1])
    torch.testing.assert_close(lik(loc).cov.detach(), fitted)


def test_a_run_imputes_properly_reproducibly_and_wider_than_one_models_draws(tmp_path):
    """Run.impute(proper=...): the M draws reproduce from the seed, keep the observed entries, and spread wider
    than the same run's improper draws (the parameters' estimation error added; summed over the missing entries);
    the preset's default is proper."""
    from tests.test_missing_data import train_impute_tabular
    from vae_runner.api import load

    train_impute_tabular(tmp_path / "run", "dataset.table=wine")
    run = load(tmp_path / "run")
    assert run.config.evaluation.imputation.proper
    x = run.data.test.x
    missing = torch.isnan(x)
    a = run.impute(x, samples=64, draws=30, seed=1).draws
    b = run.impute(x, samples=64, draws=30, seed=1, proper=True).draws
    improper = run.impute(x, samples=64, draws=30, seed=1, proper=False).draws
    assert torch.equal(a, b) and not torch.equal(a, improper)
    assert torch.equal(a[:, ~missing], x[~missing].expand(30, -1)) and not a.isnan().any()
    assert a.var(0)[missing].sum() > improper.var(0)[missing].sum()


def test_proper_imputation_needs_a_likelihood_that_draws_its_parameters():
    from tests.conftest import make_cfg
    from vae_runner.config.checks import validate
    from vae_runner.errors import UserError

    with pytest.raises(UserError, match="evaluation.imputation.proper=true draws the likelihood's parameters"):
        validate(make_cfg("experiment=impute_tabular", "likelihood=gaussian"))
    validate(make_cfg("experiment=impute_tabular", "likelihood=gaussian", "evaluation.imputation.proper=false"))
    validate(make_cfg("experiment=impute_tabular"))
