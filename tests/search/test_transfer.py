"""Transfer: a predictor pretrained elsewhere (saved file) used as the search filter's prior."""

from __future__ import annotations

import numpy as np
import pytest

import predictors
import prednas
import spaces
from prednas.search import Candidate, History, PredictorFilter, Search, SearchContext


@pytest.fixture(scope="module")
def prior_file(tmp_path_factory):
    """An XGB predictor fitted on CIFAR-100 labels of 150 NB201 cells (another metric)."""
    bench = prednas.benchmarks.load("nb201")
    space = spaces.get("nb201")
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(150)]
    pipe = predictors.FeaturePipeline(space, encoding="onehot", proxy_table=None)
    est = predictors.get("xgb", random_state=0).fit(pipe.transform(archs),
                                                    bench.values("cifar100_test_200ep", archs))
    path = tmp_path_factory.mktemp("prior") / "c100.pred"
    predictors.save(est, path, pipe)
    return path


def _context(space="nb201", task=None):
    return SearchContext(space=spaces.get(space), task=task, seed=0, device="cpu")


def test_prior_orders_candidates_before_any_evaluation(prior_file):
    bench = prednas.benchmarks.load("nb201")
    space = spaces.get("nb201")
    rng = np.random.default_rng(1)
    pool = [Candidate(space.sample(rng)) for _ in range(300)]
    flt = PredictorFilter(proxy_table=None, prior=str(prior_file))
    flt.setup(_context())
    picked = flt.select(space, pool, History(space), 10, np.random.default_rng(0))
    acc = lambda c: bench.query(c.arch, "cifar10_test_200ep")  # noqa: E731
    assert np.mean([acc(c) for c in picked]) > np.mean([acc(c) for c in pool]) + 3


def test_search_with_prior_records_it(prior_file, tmp_path):
    bench = prednas.benchmarks.load("nb201")
    res = Search("nb201", oracle=bench, seed=3, budget=8, per_round=4, run_dir=tmp_path / "run",
                 filter=PredictorFilter(proxy_table=None, prior=str(prior_file), min_fit=4)).run()
    assert len(res.records) == 8
    assert "transfer" in (res.run_dir / "report.md").read_text()
    again = Search.resume(tmp_path / "run").run()  # the prior path survives in the run state
    assert len(again.records) == 8


def test_prior_for_another_space_is_refused(prior_file):
    from prednas.errors import IncompatibleArtifactError

    with pytest.raises(IncompatibleArtifactError, match="nb201"):
        PredictorFilter(proxy_table=None, prior=str(prior_file)).setup(_context("blocks1d"))


def test_pretrained_prior_sees_identical_features_in_the_search(tmp_path):
    """``prednas pretrain`` and the search's filter build features through the same pipeline
    (encodings + shipped proxy table): the prior gets exactly the rows it was trained on, and the
    filter's own stage-1 proxy columns are the same values."""
    from predictors.features import FeaturePipeline
    from prednas.cli import main

    out = tmp_path / "c10.pred"
    assert main(["pretrain", "--bench", "nb201", "--n-train", "30", "--n-test", "50",
                 "--predictor", "xgb", "--out", str(out), "--seed", "0"]) == 0
    est, pipe = predictors.load(out, "nb201")
    assert pipe.proxies, "the pretrained predictor uses proxy features"
    table = pipe.proxy_table
    archs = [a for a in table.arch_strings[:40]]
    flt = PredictorFilter(prior=str(out))
    flt.setup(_context())
    prior_est, prior_pipe = flt.prior_
    assert prior_pipe.config() == pipe.config()
    np.testing.assert_array_equal(prior_pipe.transform(archs), pipe.transform(archs))
    np.testing.assert_array_equal(flt._prior_mean(archs), est.predict(pipe.transform(archs)))
    own = flt.stage1_.transform(archs)[:, -len(flt.table_names_):]
    ref = FeaturePipeline("nb201", encoding=None, proxies=flt.table_names_,
                          proxy_table="shipped").transform(archs)
    np.testing.assert_array_equal(own, ref)


def test_table_prior_is_learned_in_the_search_spaces_own_encoding():
    # the full blocks1d space holds every architecture of the 1-D table (a sub-space of it):
    # the prior learns from all of them in the full space's encoding and ranks held-in ones
    from scipy.stats import spearmanr

    from predictors.pretrain import table_prior

    bench = prednas.benchmarks.load("blocks1d-mnist1d")
    full = spaces.get("blocks1d")
    est, pipe = table_prior(full)
    archs = bench.arch_strings()[:300]
    pred = est.predict(pipe.transform([full.coerce(a) for a in archs]))
    assert pipe.space is full
    assert spearmanr(pred, bench.values("test_acc")[:300])[0] > 0.8
    with pytest.raises(prednas.errors.InvalidParameterError, match="holds 0 of"):
        table_prior(spaces.get("nb201"))


def test_table_prior_orders_a_filter_before_any_evaluation():
    bench = prednas.benchmarks.load("blocks1d-mnist1d")
    space = bench.space
    rng = np.random.default_rng(2)
    pool = [Candidate(space.sample(rng)) for _ in range(200)]
    flt = PredictorFilter(proxy_table=None, prior="table")
    flt.setup(_context("blocks1d"))
    assert "learned from the shipped table blocks1d-mnist1d" in flt.signals()["prior"]
    picked = flt.select(space, pool, History(space), 10, np.random.default_rng(0))
    acc = lambda c: bench.query(str(c.arch), "test_acc")  # noqa: E731
    assert np.mean([acc(c) for c in picked]) > np.mean([acc(c) for c in pool]) + 1
