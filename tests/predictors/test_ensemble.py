from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import kendalltau

from predictors import EnsemblePredictor, GNNPredictor, XGBPredictor
from prednas.errors import NotFittedError, PredNASError


def test_flat_members_mean_and_std(rising):
    X, y, Xt, yt = rising
    ens = EnsemblePredictor(members=[XGBPredictor(n_estimators=60),
                                     XGBPredictor(objective="rank", n_estimators=60)],
                            random_state=0).fit(X, y)
    mean, std = ens.predict(Xt, return_std=True)
    assert mean.shape == std.shape == (len(Xt),)
    assert np.all(std >= 0) and np.all(np.isfinite(mean))
    np.testing.assert_allclose(ens.predict(Xt), mean)
    assert kendalltau(yt, mean).statistic > 0.5
    # deterministic for a seed
    again = EnsemblePredictor(members=[XGBPredictor(n_estimators=60),
                                       XGBPredictor(objective="rank", n_estimators=60)],
                              random_state=0).fit(X, y).predict(Xt)
    np.testing.assert_array_equal(again, mean)


def test_graph_and_vector_members(nb201_graph_data):
    pipe, archs, y = nb201_graph_data
    G = pipe.graphs(archs)
    ens = EnsemblePredictor(members=[XGBPredictor(n_estimators=60),
                                     GNNPredictor(hidden=16, layers=2, n_steps=100)],
                            random_state=0)
    assert ens.needs_graphs
    ens.fit(G[:110], y[:110])
    mean, std = ens.predict(G[110:], return_std=True)
    assert np.all(np.isfinite(mean)) and np.all(std >= 0)
    assert kendalltau(y[110:], mean).statistic > 0.4
    with pytest.raises(PredNASError, match="needs graphs"):
        ens.fit(pipe.transform(archs), y)


def test_errors(rising):
    X, y, _, _ = rising
    with pytest.raises(NotFittedError):
        EnsemblePredictor().predict(X)
    with pytest.raises(PredNASError, match="at least one member"):
        EnsemblePredictor(members=[]).fit(X, y)
    with pytest.raises(PredNASError, match="Unknown predictor"):
        EnsemblePredictor(members=["xgbb"]).fit(X, y)
