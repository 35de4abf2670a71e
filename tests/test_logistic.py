"""The torch logistic regression (the linear probe's) against scikit-learn's LogisticRegression run to a tight
tolerance: the same optimum of the same objective, so the same coefficients and the same predictions."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from vae_runner.evaluation.logistic import fit_logistic


def problem(classes: int, n: int, features: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g) * (0.1 + 3 * torch.rand(features, generator=g)) + 2
    score = x[:, :3] @ torch.randn(3, generator=g) + torch.randn(n, generator=g)
    y = score.argsort().argsort() * classes // n + 3  # labels 3, 4, ...: not 0-based
    return x, y, torch.randn(200, features, generator=g) * 2 + 2


@pytest.mark.parametrize("classes, standardise", [(2, True), (3, False), (10, True), (10, False)])
def test_coefficients_and_predictions_are_scikit_learn_s(classes, standardise):
    x, y, x_new = problem(classes, 600, 12, classes)
    ours = fit_logistic(x, y, c=0.5, standardise=standardise)
    scaler = StandardScaler().fit(x.double().numpy()) if standardise else None
    prepared = (lambda t: scaler.transform(t.double().numpy())) if standardise else (lambda t: t.double().numpy())
    theirs = LogisticRegression(C=0.5, max_iter=20000, tol=1e-12).fit(prepared(x), y.numpy())

    def objective(weight, bias):  # C * the summed log-loss + ||W||^2 / 2, on the prepared inputs
        scores = torch.from_numpy(prepared(x)) @ weight + bias
        p = torch.softmax(scores, 1) if classes > 2 else torch.sigmoid(torch.cat([-scores, scores], 1))
        target = torch.unique(y, return_inverse=True)[1]
        return (-0.5 * p[torch.arange(len(y)), target].log().sum() + 0.5 * weight.pow(2).sum()).item()

    theirs_at = objective(torch.from_numpy(theirs.coef_.T), torch.from_numpy(theirs.intercept_))
    assert objective(ours.weight, ours.bias) == pytest.approx(theirs_at, rel=1e-8)  # the same optimum ...
    np.testing.assert_allclose(ours.weight.numpy().T, theirs.coef_, rtol=1e-3, atol=1e-3)  # ... in a flat valley
    np.testing.assert_allclose(ours.bias.numpy(), theirs.intercept_, rtol=1e-3, atol=1e-3)
    assert (ours.predict(x_new).numpy() == theirs.predict(prepared(x_new))).all()
    assert ours.accuracy(x, y) == pytest.approx(theirs.score(prepared(x), y.numpy()))


def test_a_constant_column_is_left_unscaled():
    x, y, _ = problem(3, 300, 4, 0)
    x[:, 1] = 5.0
    fit = fit_logistic(x, y, standardise=True)
    assert fit.scale[1] == 1 and torch.isfinite(fit.weight).all()
