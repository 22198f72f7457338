"""Simulation mode: a tiny table with seeds and learning curves, built on the fly.

The shipped ``blocks1d-mnist1d-v2`` table takes hours to build; these tests build a table of the
same kind (20 architectures, 2-3 seeds each, a curve point every 5 of 20 steps) in seconds.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

import prednas
from prednas.benchmarks import blocks1d_mnist1d as b1d
from prednas.errors import InvalidParameterError
from prednas.search import MutationMutator, SimClock, SimulatedEvaluator
from prednas.search.simulate import NB201_EPOCH_SECONDS, recorded_runs


@pytest.fixture
def table(sim_table):
    return sim_table


def search(table, tmp_path, name="run", **kw):
    kw.setdefault("evaluator", SimulatedEvaluator(workers=2, decision_seconds=0.5))
    kw.setdefault("mutator", MutationMutator(mutations=30, max_tries=3))  # a 20-arch space
    kw.setdefault("budget", 8)
    kw.setdefault("per_round", 2)
    return prednas.Search(table.space, oracle=table, simulate=True, run_dir=tmp_path / name,
                          seed=kw.pop("seed", 0), **kw)


def test_the_table_has_curves_and_seeds(table):
    assert table.has_curves and table.complete and len(table) == 20
    run = table.seeds(table.arch_strings()[0])[0]
    c = run["curve"]
    assert c["step"] == [5, 10, 15, 20]
    assert all(len(c[k]) == 4 for k in ("val_acc", "val_loss", "train_loss", "seconds", "cpu"))
    assert all(np.diff(c["seconds"]) > 0) and c["seconds"][-1] <= run["train_seconds"]
    assert run["cpu_seconds"] > 0 and run["curve_seconds"] >= 0 and run["eval_seconds"] > 0


def test_a_simulated_search_replays_recorded_runs_on_a_clock(table, tmp_path):
    result = search(table, tmp_path, baseline=table.space.default_arch()).run()
    cands = result.records
    assert len(cands) == 8
    for r in cands:
        assert r.get("simulated") is True and r.get("fidelity") == 20
        runs = {int(x["seed"]): x for x in table.seeds(r.arch)}
        drawn = runs[r.get("table_seed")]
        assert r.get("val_acc") == drawn["val_acc"] and r.get("test_acc") == drawn["test_acc"]
        assert r.get("seconds") == pytest.approx(drawn["cpu_seconds"])
        assert r.get("sim_end") == pytest.approx(r.get("sim_start") + r.get("seconds"))
    state = json.loads((result.run_dir / "state.json").read_text())
    assert state["config"]["mode"] == "simulate"
    # two workers, two candidates a round, 0.5 s per decision: each round costs 0.5 s plus its
    # slower candidate, and the baseline comes first
    base = result.baseline
    assert base is not None and base.get("simulated") and base.get("sim_start") == 0.0
    clock = base.get("sim_end")
    for rnd in sorted({r.round for r in cands}):
        rs = [r for r in cands if r.round == rnd]
        assert min(r.get("sim_start") for r in rs) == pytest.approx(clock + 0.5)
        clock = max(r.get("sim_end") for r in rs)
    assert state["sim_clock"] == pytest.approx(clock)
    assert "simulated" in (result.run_dir / "report.md").read_text().lower()


def test_seeds_are_drawn_without_replacement_until_they_run_out(table):
    ev = SimulatedEvaluator()
    ev.bench_, ev.run_seed_, ev.runs_ = table, 3, recorded_runs(table)
    arch = table.arch_strings()[0]
    n = len(table.seeds(arch))
    draws = [ev.draw(arch, k) for k in range(n + 2)]
    assert len({int(d[0]["seed"]) for d in draws[:n]}) == n and not any(d[1] for d in draws[:n])
    assert all(d[1] for d in draws[n:])
    assert [d[0]["seed"] for d in draws] == [d[0]["seed"] for d in
                                              (ev.draw(arch, k) for k in range(n + 2))]


def test_time_scale_charges_the_recorded_seconds_of_a_faster_or_slower_machine(table, tmp_path):
    ev = SimulatedEvaluator(workers=2, decision_seconds=0.5, time_scale=0.5)
    result = search(table, tmp_path, evaluator=ev).run()
    for r in result.records:
        drawn = {int(x["seed"]): x for x in table.seeds(r.arch)}[r.get("table_seed")]
        assert r.get("seconds") == pytest.approx(0.5 * drawn["cpu_seconds"])


@pytest.mark.parametrize("scale", [0, -1.0, math.nan, "fast"])
def test_a_time_scale_out_of_range_is_refused(table, tmp_path, scale):
    with pytest.raises(InvalidParameterError, match="time_scale"):
        search(table, tmp_path, evaluator=SimulatedEvaluator(time_scale=scale)).run()
    assert not (tmp_path / "run").exists()


def test_measure_time_scale_runs_a_real_search_and_compares_its_seconds_with_the_table(table):
    from prednas.search.simulate import measure_time_scale

    cap = int(sorted(table.query(a, "params") for a in table.arch_strings())[10])
    out = measure_time_scale(table, n=4, workers=0, max_params=cap)
    assert 1 <= len(out["runs"]) <= 4
    for r in out["runs"]:
        recorded = [x["cpu_seconds"] for x in table.seeds(r["arch"])]
        assert r["table"] == pytest.approx(np.mean(recorded)) and r["here"] > 0
    # the clock charges sums: the ratio of the summed seconds
    assert out["time_scale"] == pytest.approx(sum(r["here"] for r in out["runs"])
                                              / sum(r["table"] for r in out["runs"]))
    with pytest.raises(InvalidParameterError, match="'n'"):
        measure_time_scale(table, n=0)


def test_a_fixed_decision_cost_makes_a_run_reproducible(table, tmp_path):
    a = search(table, tmp_path, "a", seed=4).run()
    b = search(table, tmp_path, "b", seed=4).run()
    key = [(r.arch, r.get("table_seed"), r.get("sim_end")) for r in a.records]
    assert key == [(r.arch, r.get("table_seed"), r.get("sim_end")) for r in b.records]


def test_max_seconds_is_simulated_time(table, tmp_path):
    full = search(table, tmp_path, "full", budget=12).run()
    cap = full.records[3].get("sim_end")
    short = search(table, tmp_path, "short", budget=12, max_seconds=cap).run()
    assert 4 <= len(short.records) < 12
    assert all(r.get("sim_start") <= cap + 0.5 + 1e-9 for r in short.records)


def test_a_resumed_simulation_ends_where_an_uninterrupted_one_does(table, tmp_path):
    whole = search(table, tmp_path, "whole", budget=8).run()
    search(table, tmp_path, "part", budget=4).run()
    resumed = prednas.Search.resume(tmp_path / "part", budget=8, oracle=table).run()
    assert resumed.records[0].get("simulated")
    key = [(r.arch, r.get("table_seed"), round(r.get("sim_end"), 6)) for r in whole.records]
    assert key == [(r.arch, r.get("table_seed"), round(r.get("sim_end"), 6))
                   for r in resumed.records]


def test_a_lower_fidelity_answers_with_the_curve(table, tmp_path):
    res = search(table, tmp_path, evaluator=SimulatedEvaluator(steps=10, decision_seconds=0.0),
                 budget=4).run()
    for r in res.records:
        run = next(x for x in table.seeds(r.arch) if x["seed"] == r.get("table_seed"))
        assert r.get("steps") == 10 and r.get("fidelity") == 10
        assert r.get("val_acc") == run["curve"]["val_acc"][1]
        assert r.get("seconds") == pytest.approx(run["curve"]["cpu"][1])
        assert math.isnan(r.get("test_acc")) and r.get("curve")["step"] == [5, 10]


@pytest.mark.parametrize("steps, match", [(25, "cannot simulate 25 steps"),
                                          (7, "curve points at 5, 10, 15, 20; cannot")])
def test_steps_the_table_did_not_record_are_refused(table, tmp_path, steps, match):
    with pytest.raises(InvalidParameterError, match=match):
        search(table, tmp_path, evaluator=SimulatedEvaluator(steps=steps))
    assert not (tmp_path / "run").exists()


def test_simulation_needs_a_table_with_curves(tmp_path):
    with pytest.raises(InvalidParameterError, match="'blocks1d-mnist1d' has none"):
        prednas.Search(b1d.load_blocks1d_mnist1d().space, oracle="blocks1d-mnist1d",
                       simulate=True, run_dir=tmp_path / "r")
    with pytest.raises(InvalidParameterError, match="needs oracle="):
        prednas.Search("blocks1d", task="synthetic", simulate=True, run_dir=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_the_clock_schedules_on_free_workers():
    clock = SimClock(workers=2, now=1.0)
    clock.start_batch()
    assert clock.place(3.0) == (1.0, 4.0)
    assert clock.place(1.0) == (1.0, 2.0)
    assert clock.place(1.0) == (2.0, 3.0)  # the worker free first takes the next job
    clock.end_batch()
    assert clock.now == 4.0
    clock.charge(0.5)
    assert clock.now == 4.5


def test_nb201_simulates_two_fidelities_with_a_modelled_cost(tmp_path):
    bench = prednas.benchmarks.load("nb201")
    for steps, key in ((12, "cifar10_valid_12ep"), (200, "cifar10_test_200ep")):
        res = prednas.Search("nb201", oracle="nb201", simulate=True, budget=4, per_round=2,
                             evaluator=SimulatedEvaluator(steps=steps, workers=2,
                                                          decision_seconds=0.0),
                             run_dir=tmp_path / str(steps)).run()
        for r in res.records:
            assert r.get("val_acc") == bench.query(r.arch, key) and r.get("simulated")
            mflops = r.get("flops") / 1e6
            per_epoch = NB201_EPOCH_SECONDS[0] + NB201_EPOCH_SECONDS[1] * mflops
            assert r.get("seconds") == pytest.approx(steps * per_epoch)
    with pytest.raises(InvalidParameterError, match="at 12, 200; cannot simulate 50"):
        prednas.Search("nb201", oracle="nb201", evaluator=SimulatedEvaluator(steps=50),
                       run_dir=tmp_path / "x")


@pytest.mark.parametrize("argv, match", [
    (["--bench", "blocks1d-mnist1d", "--simulate"], "has none"),
    (["--bench", "nb201", "--simulate", "--steps", "300"], "cannot simulate 300"),
    (["--simulate"], "needs --bench"),
    (["--bench", "blocks1d-mnist1d-v2", "--simulate", "--executor", "pool"], "--workers are"),
    (["--bench", "blocks1d-mnist1d-v2", "--simulate", "--steps", "310"], "cannot simulate 310"),
    (["--bench", "blocks1d-mnist1d-v2", "--decision-seconds", "1"], "goes with --simulate"),
])
def test_cli_refuses_what_it_cannot_simulate(tmp_path, argv, match):
    out = tmp_path / "run"
    p = subprocess.run([sys.executable, "-m", "prednas", "search", *argv, "--out", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    assert match in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert not out.exists()
