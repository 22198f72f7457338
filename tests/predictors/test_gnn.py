from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import kendalltau

from predictors import GNNPredictor
from prednas.errors import InvalidParameterError, NotFittedError, PredNASError


def _small(**kw):
    params = dict(hidden=16, layers=2, n_steps=150, batch_size=32)
    params.update(kw)
    return GNNPredictor(**params)


def test_learns_rising_property(nb201_graph_data):
    pipe, archs, y = nb201_graph_data
    G = pipe.graphs(archs)
    m = _small(random_state=0).fit(G[:110], y[:110])
    p = m.predict(G[110:])
    assert p.shape == (len(archs) - 110,) and np.all(np.isfinite(p))
    assert kendalltau(y[110:], p).statistic > 0.4


def test_deterministic_and_restores_global_rng(nb201_graph_data):
    pipe, archs, y = nb201_graph_data
    G = pipe.graphs(archs[:60])
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = _small(random_state=5, n_steps=30).fit(G, y[:60]).predict(G)
    after = torch.rand(3)
    b = _small(random_state=5, n_steps=30).fit(G, y[:60]).predict(G)
    np.testing.assert_array_equal(a, b)
    assert torch.equal(before, after)  # fit did not consume or reseed the global RNG


def test_nan_global_features_are_imputed(nb201_graph_data):
    pipe, archs, y = nb201_graph_data
    G = pipe.graphs(archs[:60])
    for g in G[::2]:
        g.u = torch.full_like(g.u, float("nan"))
    p = _small(random_state=0, n_steps=20).fit(G, y[:60]).predict(G)
    assert np.all(np.isfinite(p))


def test_graphs_without_global_features():
    import spaces

    space = spaces.get("blocks1d")
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(30)]
    G = [space.to_graph(a) for a in archs]
    y = np.array([len(a.blocks) for a in archs], float) + rng.normal(scale=0.1, size=30)
    p = _small(random_state=0, n_steps=20).fit(G, y).predict(G)
    assert p.shape == (30,) and np.all(np.isfinite(p))


def test_errors(nb201_graph_data):
    pipe, archs, y = nb201_graph_data
    G = pipe.graphs(archs[:10])
    with pytest.raises(NotFittedError):
        GNNPredictor().predict(G)
    with pytest.raises(PredNASError, match="list of torch_geometric"):
        GNNPredictor().fit(np.zeros((10, 3)), y[:10])
    with pytest.raises(PredNASError, match="mismatched lengths"):
        GNNPredictor().fit(G, y[:9])
    with pytest.raises(PredNASError, match="constant"):
        GNNPredictor().fit(G, np.full(10, 3.0))
    with pytest.raises(InvalidParameterError, match="'n_steps' parameter of GNNPredictor"):
        GNNPredictor(n_steps=0).fit(G, y[:10])


def test_sklearn_params_roundtrip():
    from sklearn.base import clone

    m = GNNPredictor(hidden=8, random_state=3)
    c = clone(m)
    assert c.get_params() == m.get_params()
