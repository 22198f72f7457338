"""Conformance suite: every registered strategy of every family obeys the engine's contract.

For each registered name: it builds with defaults, ``describe()`` is JSON and rebuilds an equal
strategy, a search with it is deterministic for a seed, and a run interrupted and resumed ends
exactly where an uninterrupted one does. A new strategy registered anywhere is picked up here.
"""

from __future__ import annotations

import json

import pytest

import prednas
from prednas.search import NoFilter, OracleEvaluator, PredictorFilter, Search, TrainingEvaluator, registries
from prednas.search.registries import rebuild_strategy


def _registered(family):
    return [(family, name) for name in registries.registry(family).names()]


ALL = [fn for fam in registries.FAMILIES for fn in _registered(fam)]


@pytest.fixture(scope="module")
def bench():
    return prednas.benchmarks.load("nb201")


def _make(family: str, name: str):
    """The strategy with small settings that keep a test fast."""
    small = {("mutator", "mutation"): {"mutations": 60, "parents": 3},
             ("filter", "predictor"): {"proxy_table": None, "min_fit": 3, "survivors": 4},
             ("executor", "pool"): {"workers": 2, "start_method": "fork"},
             ("evaluator", "train"): {"steps": 3, "device": "cpu"},
             ("ensembler", "replicas"): {"replicas": 1},
             ("scheduler", "asha"): {"rungs": (1, 3), "reduction_factor": 2},
             ("mutator", "stnas"): {"samples": 8, "warmup_steps": 2, "search_steps": 2,
                                    "batch_size": 8, "fraction": 0.5, "task": "synthetic",
                                    "task_options": {"n": 32, "image": True, "channels": 3},
                                    "supernet": {"C": 4, "N": 1}}}
    if (family, name) == ("executor", "ray"):
        _shared_ray()
    return registries.registry(family).get(name)(**small.get((family, name), {}))


_RAY: dict[str, bool] = {"started": False}


def _shared_ray() -> None:
    """One local Ray for the module, which every RayExecutor here joins (a RayExecutor uses the
    Ray its process is connected to): a Ray started per search costs ~12 s on two cores."""
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20)
        _RAY["started"] = True


@pytest.fixture(scope="module", autouse=True)
def _shutdown_shared_ray():
    yield
    if _RAY["started"]:
        import ray

        ray.shutdown()
        _RAY["started"] = False


@pytest.mark.parametrize("family,name", ALL)
def test_describe_is_json_and_rebuilds_an_equal_strategy(family, name):
    strat = _make(family, name)
    desc = strat.describe()
    assert desc["name"] == name and desc["family"] == family
    back = rebuild_strategy(family, json.loads(json.dumps(desc)))
    assert type(back) is type(strat)
    assert back.describe() == desc


@pytest.mark.parametrize("family,name", ALL)
def test_constraints_are_checked_when_constructed(family, name):
    cls = registries.registry(family).get(name)
    constraints = {}
    for klass in reversed(cls.__mro__):
        constraints.update(getattr(klass, "_parameter_constraints", {}) or {})
    defaults = _make(family, name).get_params()
    assert set(constraints) <= set(defaults), "constraints name only constructor parameters"
    for key, allowed in constraints.items():
        if None in allowed or "dict" in allowed:
            continue
        with pytest.raises(prednas.InvalidParameterError, match=repr(key)):
            cls(**{**defaults, key: object()})


def _search(family: str, name: str, bench, path, synthetic_task):
    """A tiny search that uses the strategy under test (others: fast defaults)."""
    strat = _make(family, name)
    kw = dict(budget=6, per_round=2, seed=5, run_dir=path, filter=NoFilter(),
              mutator=_make("mutator", "mutation"))
    if family == "evaluator" and name == "train" or family in ("ensembler", "scheduler"):
        kw.update(task=synthetic_task, evaluator=TrainingEvaluator(steps=3, device="cpu"),
                  budget=3, ensembler=False, max_params=20000)
        space = "blocks1d"
    else:
        kw.update(oracle=bench)
        space = "nb201"
    kw[family] = strat
    return Search(space, **kw)


def _summary(result):
    return [(r.round, r.slot, r.arch, round(r.objective, 6)) for r in
            sorted(result.records, key=lambda r: (r.round, r.slot))]


@pytest.mark.parametrize("family,name", ALL)
def test_same_seed_same_search(family, name, bench, tmp_path, synthetic_task):
    a = _search(family, name, bench, tmp_path / "a", synthetic_task).run()
    b = _search(family, name, bench, tmp_path / "b", synthetic_task).run()
    assert _summary(a) == _summary(b)


class _Interrupt(BaseException):
    pass


@pytest.mark.parametrize("family,name", ALL)
def test_resumed_run_equals_uninterrupted(family, name, bench, tmp_path, synthetic_task,
                                          monkeypatch):
    from prednas.search import rundir

    ref = _search(family, name, bench, tmp_path / "ref", synthetic_task).run()
    real, calls = rundir.RunDir.append, {"n": 0}

    def append(self, record):
        calls["n"] += 1
        if calls["n"] == 3:
            raise _Interrupt()
        return real(self, record)

    monkeypatch.setattr(rundir.RunDir, "append", append)
    with pytest.raises(_Interrupt):
        _search(family, name, bench, tmp_path / "run", synthetic_task).run()
    monkeypatch.setattr(rundir.RunDir, "append", real)
    res = Search.resume(tmp_path / "run").run()
    assert _summary(res) == _summary(ref)


def test_every_family_has_a_registry_api():
    import prednas.search as S

    for family in registries.FAMILIES:
        assert callable(getattr(S, f"register_{family}"))
        assert getattr(S, f"list_{family}s")() == registries.registry(family).names()
        assert callable(getattr(S, f"create_{family}"))


def test_unstorable_strategy_is_refused_when_the_search_is_made(bench, tmp_path):
    from sklearn.linear_model import Ridge

    with pytest.raises(prednas.InvalidParameterError, match="'predictor'.*Ridge"):
        Search("nb201", oracle=bench, filter=PredictorFilter(predictor=Ridge()),
               run_dir=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_oracle_evaluator_takes_the_searchs_benchmark(bench):
    ev = OracleEvaluator()
    assert ev.describe()["params"] == {"benchmark": None, "metric": None}


def test_task_options_are_stored_and_an_in_memory_task_must_be_given_again(synthetic_task,
                                                                           tmp_path):
    from prednas.errors import RunDirectoryError

    kw = dict(evaluator=TrainingEvaluator(steps=2, device="cpu"), budget=2, per_round=1,
              filter=NoFilter(), ensembler=False, seed=0)
    s = Search("blocks1d", task=synthetic_task, run_dir=tmp_path / "a", **kw)
    assert s.config()["task_options"] == {"n": 256, "seed": 0}
    s.run()
    assert Search.resume(tmp_path / "a").task.options == {"n": 256, "seed": 0}
    handmade = synthetic_task.subset(0.5)
    Search("blocks1d", task=handmade, run_dir=tmp_path / "b", **kw).run()
    with pytest.raises(RunDirectoryError, match="in-memory Task"):
        Search.resume(tmp_path / "b")
    assert len(Search.resume(tmp_path / "b", task=handmade).run().records) == 2
