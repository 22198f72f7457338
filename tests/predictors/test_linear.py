from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import kendalltau

from predictors import RidgePredictor
from prednas.errors import InvalidParameterError, NotFittedError


def test_learns_rising_feature_with_nan_and_heavy_tails(rising):
    X, y, Xt, yt = rising
    X = X.copy()
    X[:, 2] = np.exp(20 * X[:, 2])  # heavy-tailed column gets a log
    X[::4, 1] = np.nan
    Xt = Xt.copy()
    Xt[:, 2] = np.exp(20 * Xt[:, 2])
    p = RidgePredictor().fit(X, y).predict(Xt)
    assert np.all(np.isfinite(p))
    assert kendalltau(yt, p).statistic > 0.5


def test_errors(rising):
    X, y, _, _ = rising
    with pytest.raises(NotFittedError):
        RidgePredictor().predict(X)
    with pytest.raises(InvalidParameterError, match="alphas"):
        RidgePredictor(alphas=[-1.0]).fit(X, y)


def test_sklearn_estimator_checks():
    from sklearn.utils.estimator_checks import check_estimator

    check_estimator(RidgePredictor())
