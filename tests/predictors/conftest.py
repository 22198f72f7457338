"""Small synthetic data where accuracy rises with one feature (and with a graph property)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def rising():
    """Flat features; y increases with feature 0 (plus noise and a weaker feature 1)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(160, 6))
    y = 70 + 5 * X[:, 0] + 1.5 * X[:, 1] + rng.normal(scale=0.5, size=160)
    return X[:100], y[:100], X[100:], y[100:]


@pytest.fixture(scope="module")
def nb201_graph_data():
    """NB201 graphs with one global 'proxy' feature; y rises with the count of conv ops."""
    import spaces
    from predictors import FeaturePipeline

    space = spaces.get("nb201")
    rng = np.random.default_rng(1)
    archs = list({str(a): a for a in (space.sample(rng) for _ in range(220))}.values())[:160]
    convs = np.array([sum(op.startswith("nor_conv") for op in a.ops) for a in archs], float)
    y = 60 + 5 * convs + rng.normal(scale=0.8, size=len(archs))
    proxy = convs + rng.normal(scale=1.0, size=len(archs))

    class Table:  # the ProxyTable surface the pipeline uses
        names = ["fake"]

        def __init__(self):
            self._v = {str(a): p for a, p in zip(archs, proxy)}

        def __contains__(self, arch):
            return str(arch) in self._v

        def lookup(self, archs_, names):
            return np.array([[self._v.get(str(a), np.nan)] for a in archs_])

    pipe = FeaturePipeline(space, "onehot", proxies=["fake"], proxy_table=Table())
    return pipe, archs, y
