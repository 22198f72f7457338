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


def test_expected_improvement_and_scaled_seconds():
    from prednas.search.cost import expected_improvement, full_training_seconds

    ei = expected_improvement([0.5, 0.6, 0.7, 0.6], [0.1, 0.1, 0.1, 0.0], best=0.6)
    assert ei[0] < ei[1] < ei[2] and ei[3] == 0.0 and np.all(ei >= 0)
    assert np.isclose(ei[1], 0.1 / np.sqrt(2 * np.pi))  # at the incumbent: std * pdf(0)
    assert full_training_seconds({"seconds": 4.0, "steps": 300}) == 4.0
    assert full_training_seconds({"seconds": 4.0, "steps": 300, "fidelity": 300,
                                  "from_steps": 0}) == 4.0
    # a promotion from 100 to 300 steps paid for 200 of them
    assert full_training_seconds({"seconds": 4.0, "steps": 300, "fidelity": 300,
                                  "from_steps": 100}) == 6.0
    assert np.isnan(full_training_seconds({"seconds": 0.001}))  # a lookup: it did not train
    assert np.isnan(full_training_seconds({"steps": 300}))


def test_the_cost_prior_fits_the_search_space_or_is_none(bench):
    import spaces
    from prednas.search.cost import cost_prior

    small = spaces.get("blocks1d", ops=["conv3", "mlp"], widths=[16, 32], max_blocks=2)
    model = cost_prior(small)
    assert model is not None and model.space is small  # the table's archs this space holds
    assert cost_prior(small, None) is None
    assert cost_prior(spaces.get("nb201")) is None  # no table of its times


def _oracle_search(bench, time_weight, tmp_path):
    from prednas.search import MutationMutator, PredictorFilter, Search

    return Search(bench.space, oracle=bench, budget=30, per_round=5, seed=0,
                  run_dir=tmp_path / f"tw{time_weight}",
                  mutator=MutationMutator(parents=5, mutations=60),
                  filter=PredictorFilter(proxy_table=None, time_weight=time_weight, min_fit=5,
                                         survivors=10)).run()


def test_cost_aware_proposals_pick_cheaper_candidates(bench, tmp_path):
    import json

    secs = dict(zip(bench.arch_strings(), bench.values("train_seconds")))
    plain, timed = (_oracle_search(bench, w, tmp_path) for w in (0.0, 4.0))
    mean_secs = [np.mean([secs[str(r.arch)] for r in res.records[5:]]) for res in (plain, timed)]
    assert mean_secs[1] < 0.8 * mean_secs[0]
    recs = [json.loads(x) for x in (tmp_path / "tw4.0" / "evaluations.jsonl").read_text()
            .splitlines()]
    assert all(r["predicted_seconds"] > 0 for r in recs[5:])
    assert "expected improvement per (relative predicted second) ** 4" in (
        tmp_path / "tw4.0" / "report.md").read_text()


def test_predicted_seconds_calibrate_to_the_run(bench):
    # trainings seen in the run, on a machine 3x slower than the table's, bring the filter's
    # predicted seconds up to this machine's (shrunk toward the prior while they are few)
    from prednas.search import PredictorFilter
    from prednas.search.base import Record, SearchContext
    from prednas.search.cost import CostModel

    flt = PredictorFilter(proxy_table=None, time_weight=1.0)
    flt.setup(SearchContext(space=bench.space, seed=0, device="cpu"))
    prior = CostModel.from_benchmark(bench)
    archs = bench.arch_strings()[:40]
    seen = [Record(arch=a, canonical=a, kind="candidate", round=0, slot=i, status="ok",
                   objective=0.9, metrics={"steps": 300, "seconds": 3 * float(s)})
            for i, (a, s) in enumerate(zip(archs[:30], prior.predict(archs[:30])))]
    rel = flt._relative_seconds(seen, archs[:30], archs[30:])
    secs = np.asarray([flt.last_seconds_[a] for a in archs[30:]])
    assert np.allclose(secs / prior.predict(archs[30:]), 3 ** (30 / 32))
    assert np.isclose(np.median(rel), 1.0)
    # a lookup's record (no steps: it did not train) calibrates nothing
    lookups = [Record(arch=a, canonical=a, kind="candidate", round=0, slot=i, status="ok",
                      objective=0.9, metrics={"seconds": 1e-4}) for i, a in enumerate(archs[:30])]
    flt._relative_seconds(lookups, archs[:30], archs[30:])
    assert np.allclose([flt.last_seconds_[a] for a in archs[30:]], prior.predict(archs[30:]))
