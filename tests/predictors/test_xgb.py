from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import kendalltau

import predictors
from predictors import XGBPredictor
from prednas.errors import InvalidParameterError, NotFittedError, PredNASError, UnknownNameError


@pytest.mark.parametrize("objective", ["reg", "rank", "rank:ndcg"])
def test_learns_rising_feature(rising, objective):
    X, y, Xt, yt = rising
    m = XGBPredictor(objective=objective, n_estimators=100, random_state=0).fit(X, y)
    p = m.predict(Xt)
    assert p.shape == (len(Xt),) and np.all(np.isfinite(p))
    assert kendalltau(yt, p).statistic > 0.5


def test_deterministic_for_seed(rising):
    X, y, Xt, _ = rising
    a = XGBPredictor(n_estimators=50, random_state=3).fit(X, y).predict(Xt)
    b = XGBPredictor(n_estimators=50, random_state=3).fit(X, y).predict(Xt)
    np.testing.assert_array_equal(a, b)


def test_nan_features_do_not_crash(rising):
    X, y, Xt, yt = rising
    X = X.copy()
    X[::3, 1] = np.nan
    X[5, 0] = np.inf
    Xt = Xt.copy()
    Xt[::2, 1] = np.nan
    p = XGBPredictor(n_estimators=50, random_state=0).fit(X, y).predict(Xt)
    assert np.all(np.isfinite(p))
    assert kendalltau(yt, p).statistic > 0.3


def test_not_fitted():
    with pytest.raises(NotFittedError):
        XGBPredictor().predict(np.zeros((2, 3)))


def test_bad_inputs(rising):
    X, y, _, _ = rising
    with pytest.raises(PredNASError, match="mismatched lengths"):
        XGBPredictor().fit(X, y[:-1])
    with pytest.raises(PredNASError, match="empty targets|0 sample"):
        XGBPredictor().fit(np.zeros((0, 3)), np.zeros(0))
    for objective in ("reg", "rank"):
        with pytest.raises(PredNASError, match="constant"):
            XGBPredictor(objective=objective).fit(X, np.ones(len(X)))
    with pytest.raises(PredNASError, match="NaN or infinite"):
        XGBPredictor().fit(X, np.where(np.arange(len(y)) == 0, np.nan, y))
    m = XGBPredictor(n_estimators=5).fit(X, y)
    with pytest.raises(PredNASError, match="2 features, but XGBPredictor is expecting 6"):
        m.predict(X[:, :2])


def test_param_errors_are_sklearn_worded(rising):
    X, y, _, _ = rising
    with pytest.raises(InvalidParameterError,
                       match=r"The 'n_estimators' parameter of XGBPredictor must be an? int in "
                             r"\[1, inf\). Got 0 instead."):
        XGBPredictor(n_estimators=0).fit(X, y)
    with pytest.raises(UnknownNameError, match="rank"):
        XGBPredictor(objective="rnak").fit(X, y)


def test_registry_and_get():
    assert {"xgb", "gnn", "ensemble"} <= set(predictors.list_predictors())
    assert isinstance(predictors.get("xgb", max_depth=3), XGBPredictor)
    with pytest.raises(UnknownNameError, match="xgb"):
        predictors.get("xgbb")


def test_xgboost_imported_lazily():
    import subprocess
    import sys

    code = "import predictors, sys; print('xgboost' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# Checks skipped, and why (none: XGBPredictor passes every check of this sklearn version;
SKIPPED_CHECKS = {
    # NaN in X is accepted on purpose (a failed proxy) and declared through the allow_nan tag,
    # so sklearn does not expect NaN to be rejected.)
}


def test_sklearn_estimator_checks():
    from sklearn.utils.estimator_checks import check_estimator

    check_estimator(XGBPredictor(n_estimators=20, random_state=0),
                    expected_failed_checks=SKIPPED_CHECKS)
