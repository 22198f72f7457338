"""The search loop on the NB201 oracle and the synthetic task, baselines, failures, executors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import prednas
from prednas.errors import CandidateError, InvalidParameterError, PredNASError, UnknownNameError
from prednas.search import (
    InProcessExecutor,
    MutationMutator,
    NoFilter,
    OracleEvaluator,
    PoolExecutor,
    PredictorFilter,
    Search,
    SearchContext,
    TrainingEvaluator,
    random_search,
    regularized_evolution,
)


@pytest.fixture(scope="module")
def bench():
    return prednas.benchmarks.load("nb201")


def small(bench, tmp_path, name="run", **kw):
    kw.setdefault("mutator", MutationMutator(parents=5, mutations=150))
    kw.setdefault("filter", PredictorFilter(proxy_table=None, min_fit=4))
    kw.setdefault("budget", 12)
    kw.setdefault("per_round", 3)
    return Search("nb201", oracle=bench, seed=3, run_dir=tmp_path / name, **kw)


def candidates(result):
    return [(r.round, r.slot, r.arch, r.objective)
            for r in sorted(result.records, key=lambda r: (r.round, r.slot))]


def test_oracle_search_end_to_end(bench, tmp_path):
    res = small(bench, tmp_path).run()
    assert len(res.records) == 12
    archs = [r.arch for r in res.records]
    canon = [r.canonical for r in res.records]
    assert len(set(canon)) == len(canon), "an architecture was evaluated twice"
    for r in res.records:  # one lookup each, values straight from the table
        assert r.objective == pytest.approx(bench.query(r.arch, "cifar10_test_200ep"))
    assert res.best.objective == max(r.objective for r in res.records)
    best = json.loads((res.run_dir / "best.json").read_text())
    assert best["arch"] in archs
    lines = (res.run_dir / "evaluations.jsonl").read_text().splitlines()
    assert len(lines) == 12 and all("arch" in json.loads(x) for x in lines)
    assert (res.run_dir / "report.md").exists()
    assert (res.run_dir / "best_so_far.png").exists()
    curve = res.best_so_far()
    assert np.all(np.diff(curve) >= 0)
    # the filter predicted something once the predictor was fitted
    assert any(r.get("predicted") is not None for r in res.records)


def test_same_seed_same_result(bench, tmp_path):
    a = small(bench, tmp_path, "a").run()
    b = small(bench, tmp_path, "b").run()
    assert candidates(a) == candidates(b)


@pytest.mark.parametrize("make", [random_search, regularized_evolution])
def test_baselines_same_code_path(bench, tmp_path, make):
    res = make("nb201", oracle=bench, budget=25, seed=0, run_dir=tmp_path / "r").run()
    assert len(res.records) == 25
    assert len({r.canonical for r in res.records}) == 25
    assert math.isfinite(res.best.objective)


def test_predictor_filter_picks_better_than_the_pool(bench):
    """Fitted on 40 evaluated architectures, the filter's picks beat the pool they come from."""
    import spaces
    from prednas.search import Candidate, History, Record

    space = spaces.get("nb201")
    rng = np.random.default_rng(0)
    seen, pool = [], []
    while len(seen) < 40:
        a = space.sample(rng)
        seen.append(Record(arch=str(a), canonical=str(space.canonical(a)), kind="candidate",
                           round=0, slot=len(seen), status="ok",
                           objective=bench.query(a, "cifar10_test_200ep")))
    history = History(space, seen)
    while len(pool) < 300:
        a = space.sample(rng)
        if not history.is_seen(a):
            pool.append(Candidate(a))
    flt = PredictorFilter(proxy_table=None, min_fit=5)
    flt.setup(SearchContext(space=space, seed=0, device="cpu"))
    picked = flt.select(space, pool, history, 20, np.random.default_rng(1))
    assert len(picked) == 20 and all(np.isfinite(c.predicted) for c in picked)
    acc = lambda cs: np.mean([bench.query(c.arch, "cifar10_test_200ep") for c in cs])  # noqa: E731
    assert acc(picked) > acc(pool) + 2.0


class FlakyOracle(OracleEvaluator):
    """Fails (as a diverged run) on every third query; declares a failed candidate on
    architectures with pooling."""

    name = "flaky"

    def evaluate(self, space, arch, *, seed, parent_state_path=None, save_path=None):
        if "avg_pool_3x3~0|+|avg_pool" in str(arch):
            raise CandidateError("simulated crash")
        out = super().evaluate(space, arch, seed=seed)
        if hash(str(arch)) % 3 == 0:
            return {"status": "diverged", "reason": "non-finite training loss (nan) by step 3",
                    "objective": math.nan, "seconds": 0.0}
        return out


def test_failed_candidates_recorded_and_search_goes_on(bench, tmp_path):
    res = small(bench, tmp_path, evaluator=FlakyOracle(bench), filter=NoFilter(),
                budget=15).run()
    assert len(res.records) == 15
    failed = [r for r in res.records if r.status != "ok"]
    assert failed, "expected some simulated failures"
    assert all(r.reason for r in failed)
    assert all(math.isnan(r.objective) for r in failed)
    assert res.best.status == "ok"
    report = (res.run_dir / "report.md").read_text()
    assert "Failed candidates" in report


class BuggyOracle(OracleEvaluator):
    """An evaluator with a bug (an undeclared exception) on the fourth query."""

    name = "buggy"

    def evaluate(self, space, arch, *, seed, parent_state_path=None, save_path=None):
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls == 4:
            raise KeyError("a typo in the evaluator")
        return super().evaluate(space, arch, seed=seed)


def test_undeclared_evaluator_error_stops_the_search_resumably(bench, tmp_path, monkeypatch):
    from prednas.search.registries import REGISTRIES

    monkeypatch.setitem(REGISTRIES["evaluator"]._items, "buggy", BuggyOracle)
    with pytest.raises(KeyError, match="typo"):
        small(bench, tmp_path, evaluator=BuggyOracle(), filter=NoFilter(), budget=6).run()
    lines = (tmp_path / "run" / "evaluations.jsonl").read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(x)["status"] == "ok" for x in lines)
    res = Search.resume(tmp_path / "run").run()  # the bug "fixed": a fresh evaluator object
    assert len(res.records) == 6 and all(r.ok for r in res.records)


def test_training_diverged_candidate_is_recorded(synthetic_task, tmp_path):
    ev = TrainingEvaluator(steps=5, lr=1e30, device="cpu")
    res = Search("blocks1d", task=synthetic_task, evaluator=ev, budget=2, per_round=2,
                 filter=NoFilter(), mutator=MutationMutator(mutations=2), ensembler=False,
                 max_params=5000, seed=0, run_dir=tmp_path / "r").run()
    assert len(res.records) == 2
    for r in res.records:
        assert r.status in ("ok", "diverged")
        if r.status == "diverged":
            assert "non-finite" in r.reason


def test_synthetic_training_search_with_baseline_and_ensemble(synthetic_task, tmp_path):
    ev = TrainingEvaluator(steps=15, device="cpu", max_params=6000)
    res = Search("blocks1d", task=synthetic_task, evaluator=ev, budget=3, per_round=2,
                 mutator=MutationMutator(parents=2, mutations=30),
                 filter=PredictorFilter(proxy_table=None, min_fit=2, survivors=4),
                 baseline="conv3:16|conv3:16", max_params=6000, seed=0,
                 run_dir=tmp_path / "r").run()
    assert len(res.records) == 3
    assert all(r.get("params") <= 6000 for r in res.records)
    # each record says when it finished, in seconds of the search (the time to a result)
    ends = [res.baseline.get("elapsed")] + [r.get("elapsed") for r in res.records]
    assert all(e > 0 for e in ends) and ends == sorted(ends)
    assert res.baseline is not None and res.baseline.kind == "baseline"
    ens = res.ensemble
    assert ens is not None and len(ens["weights"]) == 2
    assert min(ens["weights"]) >= 0 and sum(ens["weights"]) == pytest.approx(1.0)
    model = prednas.ensemble.load(ens["path"])
    pred = model.predict(synthetic_task.x_test[:7])
    assert pred.shape == (7,)
    kinds = [json.loads(x)["kind"] for x in
             (res.run_dir / "evaluations.jsonl").read_text().splitlines()]
    assert kinds.count("baseline") == 1 and kinds.count("replica") == 2
    assert "baseline" in (res.run_dir / "report.md").read_text()


def test_replicas_are_trained_in_parallel_by_the_runs_executor(synthetic_task, tmp_path):
    """The ensembler hands every replica to the executor at once (a pool trains them side by
    side), and a resumed run does not train a recorded replica again."""
    from prednas.search import ReplicaEnsembler

    class Recording(InProcessExecutor):
        batches: list[list[str]] = []

        def map_unordered(self, fn, jobs):
            Recording.batches.append([args[2] for _, args, _ in jobs])
            return super().map_unordered(fn, jobs)

    kw = dict(task=synthetic_task, evaluator=TrainingEvaluator(steps=3, device="cpu"), budget=2,
              per_round=2, filter=NoFilter(), mutator=MutationMutator(mutations=4),
              ensembler=ReplicaEnsembler(replicas=3, top_k=2), max_params=5000, seed=0,
              run_dir=tmp_path / "r")
    res = Search("blocks1d", executor=Recording(), **kw).run()
    top = [r.arch for r in res.records]
    assert sorted(Recording.batches[-1]) == sorted(top * 3)  # 2 archs x 3 replicas, one batch
    recs = [json.loads(x) for x in (res.run_dir / "evaluations.jsonl").read_text().splitlines()]
    replicas = [r for r in recs if r["kind"] == "replica"]
    assert sorted(r["slot"] for r in replicas) == list(range(6))
    assert len({(r["arch"], r["seed"]) for r in replicas}) == 6
    assert len(res.ensemble["archs"]) == 6
    # the ensemble is rebuilt from the records: nothing is trained again
    Recording.batches = []
    state = json.loads((res.run_dir / "state.json").read_text())
    state.update(done=False, ensemble=None, phase="ensemble")
    (res.run_dir / "state.json").write_text(json.dumps(state))
    again = Search.resume(res.run_dir, executor=Recording()).run()
    assert all(b == [] for b in Recording.batches) and len(again.ensemble["archs"]) == 6


def test_weight_inheritance_option(synthetic_task, tmp_path):
    ev = TrainingEvaluator(steps=5, device="cpu", inherit=True)
    res = Search("blocks1d", task=synthetic_task, evaluator=ev, budget=4, per_round=2,
                 mutator=MutationMutator(parents=1, mutations=10, max_edits=1),
                 filter=NoFilter(), ensembler=False, max_params=5000, seed=1,
                 run_dir=tmp_path / "r").run()
    children = [r for r in res.records if r.round >= 1]
    assert children and all(r.parent for r in children)
    assert any(r.get("inherited") > 0 for r in children)


def test_pool_executor_out_of_order(bench, tmp_path):
    ex = PoolExecutor(workers=2, start_method="fork")
    try:
        res = small(bench, tmp_path, executor=ex, budget=6).run()
    finally:
        ex.shutdown()
    ref = small(bench, tmp_path, "ref", budget=6).run()
    assert sorted(candidates(res)) == sorted(candidates(ref))


def test_inprocess_executor_interface():
    out = list(InProcessExecutor().map_unordered(lambda a, b=0: a + b, [("x", (1,), {"b": 2}),
                                                                         ("y", (5,), {})]))
    assert out == [("x", 3), ("y", 5)]


def test_bad_arguments(bench, tmp_path):
    with pytest.raises(InvalidParameterError, match="budget"):
        Search("nb201", oracle=bench, budget=0, run_dir=tmp_path / "a")
    with pytest.raises(InvalidParameterError, match="budget"):
        Search("nb201", oracle=bench, budget=10**6, run_dir=tmp_path / "b")
    with pytest.raises(InvalidParameterError):
        Search("nb201", run_dir=tmp_path / "c")
    with pytest.raises(UnknownNameError):
        Search("nb2o1", oracle=bench)
    with pytest.raises(UnknownNameError):
        Search("nb201", oracle="nope")
    with pytest.raises(UnknownNameError):
        Search("nb201", oracle=bench, metric="accuracy", run_dir=tmp_path / "d").run()
    assert issubclass(UnknownNameError, PredNASError)


def test_top_level_export():
    assert prednas.Search is Search


def _half_table(bench, path):
    """A proxy table file covering half of the architectures: 'meco' is the true accuracy."""
    import proxies

    archs = [s for s in bench.arch_strings() if int(s.encode().hex(), 16) % 2 == 0]
    vals = np.array([[bench.query(a, "cifar10_test_200ep"), i % 97] for i, a in enumerate(archs)])
    proxies.ProxyTable(archs, ["meco", "noise"], vals).to_csv(path)
    return set(archs)


def test_zero_shot_round_uses_table_proxies(bench, tmp_path):
    """Before any evaluation, candidates are ordered by the proxy; unscored ones come last."""
    import spaces
    from prednas.search import Candidate, History

    space = spaces.get("nb201")
    rng = np.random.default_rng(0)
    pool = [Candidate(space.sample(rng)) for _ in range(200)]
    table = _half_table(bench, tmp_path / "t.csv")
    flt = PredictorFilter(proxy_table=str(tmp_path / "t.csv"), zero_shot=["meco"])
    flt.setup(SearchContext(space=space, seed=0, device="cpu"))
    picked = flt.select(space, pool, History(space), 5, np.random.default_rng(0))
    assert all(str(c.arch) in table for c in picked)
    scored = sorted((bench.query(c.arch, "cifar10_test_200ep") for c in pool
                     if str(c.arch) in table),
                    reverse=True)
    got = sorted((bench.query(c.arch, "cifar10_test_200ep") for c in picked), reverse=True)
    assert got == pytest.approx(scored[:5])


def test_shape_error_of_an_invalid_candidate_is_recorded_other_errors_stop(synthetic_task,
                                                                         tmp_path, monkeypatch):
    """The training evaluator declares out of memory and a shape error from a network that
    cannot take its input as the candidate's failure; any other RuntimeError is a bug."""
    import prednas.training

    def shape_error(*a, **k):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (8x640 and 320x10)")

    kw = dict(task=synthetic_task, evaluator=TrainingEvaluator(steps=2, device="cpu"),
              budget=2, per_round=2, filter=NoFilter(), ensembler=False, seed=0)
    monkeypatch.setattr(prednas.training, "train", shape_error)
    res = Search("blocks1d", run_dir=tmp_path / "a", **kw).run()
    assert [r.status for r in res.records] == ["invalid", "invalid"]

    def bug(*a, **k):
        raise RuntimeError("a typo in the training loop")

    monkeypatch.setattr(prednas.training, "train", bug)
    with pytest.raises(RuntimeError, match="typo"):
        Search("blocks1d", run_dir=tmp_path / "b", **kw).run()


def test_filter_takes_a_graph_predictor(bench, tmp_path):
    """A GNN (or an ensemble with one) gets the candidates' graphs, with the filter's feature rows
    attached; the search runs and resumes like with any predictor."""
    from predictors import EnsemblePredictor, GNNPredictor, XGBPredictor

    for name, est in (("gnn", GNNPredictor(n_steps=20, hidden=16)),
                      ("ens", EnsemblePredictor(members=[XGBPredictor(n_estimators=20),
                                                         GNNPredictor(n_steps=20, hidden=16)]))):
        flt = PredictorFilter(proxy_table="auto", min_fit=4, predictor=est)
        res = small(bench, tmp_path, name, filter=flt, budget=9).run()
        assert len(res.records) == 9
        assert any(r.predicted is not None for r in res.records)
        again = Search.resume(res.run_dir, budget=12).run()
        assert len(again.records) == 12
