"""Multi-objective search: NSGA-II order, hypervolume, the front on disk, constraints, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest

import prednas
from prednas.errors import InvalidParameterError, UnknownNameError
from prednas.search import MutationMutator, PredictorFilter, Search, nsga2, random_search
from prednas.search.pareto import crowding_distance, hypervolume, nsga2_order, pareto_front

OBJ = ["cifar10_test_200ep", "params"]


@pytest.fixture(scope="module")
def bench():
    return prednas.benchmarks.load("nb201")


def test_nsga2_order_ranks_fronts_then_crowding():
    # minimisation: rows 0, 1, 3 are non-dominated; 2 is dominated by 1
    F = np.array([[1, 5], [2, 3], [3, 4], [4, 1], [np.nan, 0]], float)
    order = nsga2_order(F)
    assert set(order[:3]) == {0, 1, 3} and order[3] == 2 and order[4] == 4
    assert np.isinf(crowding_distance(F[[0, 1, 3]])[[0, 2]]).all()
    assert sorted(pareto_front(F)) == [0, 1, 3]


def test_hypervolume_of_a_known_front():
    F = np.array([[1, 5], [2, 3], [4, 1]], float)
    assert hypervolume(F, [5, 6]) == pytest.approx(1 * 1 + 2 * 3 + 1 * 5)
    assert hypervolume(np.zeros((0, 2)), [1, 1]) == 0.0


def small(bench, path, **kw):
    kw.setdefault("mutator", MutationMutator(parents=5, mutations=150))
    kw.setdefault("filter", PredictorFilter(proxy_table=None, min_fit=4, survivors=6))
    return Search("nb201", oracle=bench, objectives=OBJ, budget=15, per_round=3, seed=1,
                  run_dir=path, **kw)


def test_front_and_hypervolume_are_written_each_round(bench, tmp_path):
    res = small(bench, tmp_path / "r").run()
    state = json.loads((tmp_path / "r" / "state.json").read_text())
    hv = [h["hypervolume"] for h in state["hypervolume"]]
    assert len(hv) == 5 and all(np.diff(hv) >= 0) and hv[-1] > 0
    front = [json.loads(x) for x in (tmp_path / "r" / "pareto.jsonl").read_text().splitlines()]
    assert front and all(set(m) >= {"arch", OBJ[0], "params"} for m in front)
    pts = np.array([[-r.objective, r.get("params")] for r in res.records])
    members = {res.records[i].arch for i in pareto_front(pts)}
    assert {m["arch"] for m in front} == members
    for r in res.records:  # params were computed for every evaluated architecture
        assert r.get("params") > 0
    assert "Pareto front" in (tmp_path / "r" / "report.md").read_text()
    assert (tmp_path / "r" / "pareto_params.png").exists()


def test_multi_objective_resume_equals_uninterrupted(bench, tmp_path, monkeypatch):
    from prednas.search import rundir

    ref = small(bench, tmp_path / "ref").run()
    real, n = rundir.RunDir.append, {"k": 0}

    def append(self, rec):
        n["k"] += 1
        if n["k"] == 7:
            raise KeyboardInterrupt
        return real(self, rec)

    monkeypatch.setattr(rundir.RunDir, "append", append)
    with pytest.raises(KeyboardInterrupt):
        small(bench, tmp_path / "run").run()
    monkeypatch.setattr(rundir.RunDir, "append", real)
    res = Search.resume(tmp_path / "run").run()
    assert [(r.arch, r.objective) for r in res.records] == [(r.arch, r.objective)
                                                          for r in ref.records]
    assert ((tmp_path / "run" / "pareto.jsonl").read_text()
            == (tmp_path / "ref" / "pareto.jsonl").read_text())


def test_constraint_keeps_violators_off_the_front(bench, tmp_path):
    cap = 500_000
    res = small(bench, tmp_path / "r", constraints={"params": cap}).run()
    front = [json.loads(x) for x in (tmp_path / "r" / "pareto.jsonl").read_text().splitlines()]
    assert all(m["params"] <= cap for m in front)
    assert any(r.get("params") > cap for r in res.records) or front


def test_baselines_run_multi_objective(bench, tmp_path):
    for make, name in ((nsga2, "nsga2"), (random_search, "random")):
        res = make("nb201", oracle=bench, objectives=OBJ, budget=12, seed=0,
                   run_dir=tmp_path / name).run()
        assert len(res.records) == 12
        assert (tmp_path / name / "pareto.jsonl").read_text()


def test_bad_objectives_are_one_line_errors(bench, tmp_path):
    with pytest.raises(UnknownNameError, match="latency_ms"):
        Search("nb201", oracle=bench, objectives=[OBJ[0], "latency_ms"], run_dir=tmp_path / "a")
    with pytest.raises(UnknownNameError, match="cifar10_test_200ep"):
        Search("nb201", oracle=bench, objectives=["accuracy", "params"], run_dir=tmp_path / "b")
    with pytest.raises(InvalidParameterError, match="val_acc"):
        Search("blocks1d", task="synthetic", objectives=["test_acc", "params"],
               run_dir=tmp_path / "c")
    with pytest.raises(InvalidParameterError, match="hv_reference"):
        Search("nb201", oracle=bench, objectives=OBJ, hv_reference=[0.0],
               run_dir=tmp_path / "d")
    assert not any((tmp_path / x).exists() for x in "abcd")


def test_training_mode_measures_latency(synthetic_task, tmp_path):
    from prednas.search import NoFilter, TrainingEvaluator

    res = Search("blocks1d", task=synthetic_task, objectives=["val_acc", "latency_ms"],
                 evaluator=TrainingEvaluator(steps=2, device="cpu"), filter=NoFilter(),
                 budget=2, per_round=2, ensembler=False, seed=0, run_dir=tmp_path / "r").run()
    for r in res.records:
        assert r.get("latency_ms") > 0 and r.get("latency_device")
        assert r.get("latency_batch") == 64 and r.get("latency_batch_ms") > 0
    assert (tmp_path / "r" / "pareto.jsonl").exists()


def test_latency_at_a_chosen_batch_is_an_objective_and_a_constraint(synthetic_task, tmp_path):
    from prednas.search import NoFilter, TrainingEvaluator

    res = Search("blocks1d", task=synthetic_task, objectives=["val_acc", "latency_batch_ms"],
                 constraints={"latency_batch_ms": 1e-9},  # nothing is that fast
                 evaluator=TrainingEvaluator(steps=2, device="cpu", latency_batch=7),
                 filter=NoFilter(), budget=2, per_round=2, ensembler=False, seed=0,
                 run_dir=tmp_path / "r").run()
    assert all(r.get("latency_batch") == 7 and r.get("latency_batch_ms") > 0
               for r in res.records)
    assert (tmp_path / "r" / "pareto.jsonl").read_text() == ""  # the constraint excludes all


def test_latency_batch_is_the_batch_it_says():
    import torch

    from prednas.training import latency_stats, measure_latency

    seen = []
    model = torch.nn.Linear(3, 2)
    model.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
    assert measure_latency(model, (3,), repeats=2, warmup=1, batch=9) > 0
    assert seen == [9, 9, 9]
    st = latency_stats(model, torch.zeros(4, 3), repeats=3, warmup=0, threads=1)
    assert (st["batch"], st["repeats"], st["warmup"]) == (4, 3, 0) and st["ms"] > 0
    with pytest.raises(InvalidParameterError, match="batch"):
        measure_latency(model, (3,), batch=0)


def test_cli_objectives(tmp_path):
    from prednas.cli import main

    out = tmp_path / "r"
    assert main(["search", "--bench", "nb201", "--objectives", "cifar10_test_200ep,flops",
                 "--strategy", "nsga2", "--budget", "8", "--out", str(out)]) == 0
    assert json.loads((out / "pareto.jsonl").read_text().splitlines()[0])["flops"] > 0
    assert main(["search", "--bench", "nb201", "--objectives", "cifar10_test_200ep,speed",
                 "--out", str(tmp_path / "x")]) == 2
    assert main(["search", "--bench", "nb201", "--latency-batch", "8",
                 "--out", str(tmp_path / "y")]) == 2
    assert main(["search", "--task", "synthetic", "--latency-batch", "0",
                 "--out", str(tmp_path / "z")]) == 2


def test_nb201_costs_depend_only_on_the_cost_key():
    import torch

    import spaces
    from prednas.search.evaluators import model_cost

    space, rng = spaces.get("nb201"), np.random.default_rng(3)
    for _ in range(5):
        a = space.sample(rng)
        with torch.device("meta"):
            direct = sum(p.numel() for p in space.build(a, 10, (3, 32, 32)).parameters())
        assert model_cost(space, a, "params") == direct
