"""The cost model: ranks training times, calibrates to the machine, refuses misuse."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from prednas import benchmarks
from prednas.errors import InvalidParameterError, NotFittedError
from prednas.search.cost import CostModel


@pytest.fixture(scope="module")
def bench():
    return benchmarks.load("blocks1d-mnist1d")


def test_the_prior_ranks_held_out_times(bench):
    archs, y = bench.arch_strings(), bench.values("train_seconds")
    perm = np.random.default_rng(0).permutation(len(archs))
    model = CostModel(bench.space).fit([archs[i] for i in perm[:300]], y[perm[:300]])
    pred = model.predict([archs[i] for i in perm[300:600]])
    assert spearmanr(pred, y[perm[300:600]])[0] > 0.6
    assert np.all(pred > 0)


def test_observed_times_calibrate_to_a_slower_machine(bench):
    archs, y = bench.arch_strings(), bench.values("train_seconds")
    model = CostModel.from_benchmark(bench)
    assert model.factor == 1.0
    before = model.predict(archs[:50])
    for a, s in zip(archs[:20], y[:20]):
        model.observe(a, 3.0 * s)
    assert 2.0 < model.factor < 3.0  # shrunk toward 1 with 20 observations
    assert np.allclose(model.predict(archs[:50]), before * model.factor)


def test_misuse_is_a_one_line_error(bench):
    with pytest.raises(NotFittedError):
        CostModel(bench.space).predict(["conv3:16"])
    with pytest.raises(InvalidParameterError, match="at least 2"):
        CostModel(bench.space).fit(["conv3:16"], [1.0])
    with pytest.raises(InvalidParameterError, match="alpha"):
        CostModel(bench.space, alpha=-1)
