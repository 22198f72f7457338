"""Partial trainings in the loop: Search(scheduler=ASHAScheduler(...)), simulated and real."""

from __future__ import annotations

import json

import pytest

from prednas.errors import InvalidParameterError
from prednas.search import (
    ASHAScheduler,
    InProcessExecutor,
    MutationMutator,
    NoFilter,
    PoolExecutor,
    Search,
    SimulatedEvaluator,
    TrainingEvaluator,
)
from prednas.search.engine import _slug
from prednas.search.fidelity import PARTIAL


def _sim(table, path, *, seed=0, budget=6, workers=2, rungs=(5, 10, 20), rank_by="partial",
         filter=None):  # noqa: A002
    # the filter's predictor only where a test needs predictions (it refits every round)
    return Search(table.space, oracle=table, simulate=True, budget=budget, per_round=3,
                  seed=seed, run_dir=path, scheduler=ASHAScheduler(rungs=rungs, rank_by=rank_by),
                  filter=filter or NoFilter(),
                  evaluator=SimulatedEvaluator(workers=workers, decision_seconds=0.01))


def _lines(path):
    return [json.loads(x) for x in (path / "evaluations.jsonl").read_text().splitlines()]


def _summary(path):
    return [(r["kind"], r["arch"], r["rung"], r["fidelity"], r.get("table_seed"),
             round(r["objective"], 6), r.get("sim_start"), r.get("sim_end"))
            for r in _lines(path)]


def test_simulated_asha_pauses_promotes_and_continues_the_same_run(sim_table, tmp_path):
    res = _sim(sim_table, tmp_path / "a").run()
    recs = _lines(tmp_path / "a")
    assert {r["kind"] for r in recs} == {PARTIAL, "candidate"}
    first = {r["arch"]: r for r in recs if r["rung"] == 0}
    assert len(first) == sum(1 for r in recs if r["rung"] == 0)  # none started twice
    promoted = [r for r in recs if r["rung"] > 0]
    assert promoted and len(first) > len(promoted)  # most stop at the first rung
    for r in promoted:  # a promotion continues the very run it paused: same seed, later steps
        assert r["continued"] and r["from_steps"] == (5 if r["rung"] == 1 else 10)
        assert r["table_seed"] == first[r["arch"]]["table_seed"]
        assert r["curve"]["step"][-1] == r["fidelity"] and len(r["curve"]["step"]) > 1
    assert all(r["kind"] == "candidate" for r in recs if r["fidelity"] == 20)
    assert [r.arch for r in res.records] == [r["arch"] for r in recs if r["kind"] == "candidate"]
    assert res.best_arch in {r["arch"] for r in recs if r["kind"] == "candidate"}
    assert "- partial trainings (asha, rungs 5/10/20 steps)" in (
        tmp_path / "a" / "report.md").read_text()
    # the simulated workers: never more than two jobs at once, each starting when one is free
    spans = sorted((r["sim_start"], r["sim_end"]) for r in recs)
    for t, _ in spans:
        assert sum(1 for a, b in spans if a <= t < b) <= 2
    # the budget counts full trainings' worth of steps, partial ones included
    spent = sum(r["fidelity"] - r["from_steps"] for r in recs) / 20
    assert 6 <= spent < 6 + 2


@pytest.mark.parametrize("workers", [3, 5])
def test_a_candidate_still_running_is_not_proposed_again(sim_table, tmp_path, workers):
    # a plan made while jobs run must not start a second first-rung training of one of them
    _sim(sim_table, tmp_path / "a", workers=workers, budget=8).run()
    started = [r["canonical"] for r in _lines(tmp_path / "a") if r["from_steps"] == 0]
    assert len(started) == len(set(started)) > 5


@pytest.mark.parametrize("rank_by", ["partial", "estimate"])
def test_simulated_asha_is_reproducible_and_resumes_exactly(sim_table, tmp_path, kill_when,
                                                            rank_by):
    budget = 6 if rank_by == "partial" else 12
    ref = _sim(sim_table, tmp_path / "ref", seed=3, rank_by=rank_by, budget=budget)
    ref.run()
    assert _summary(tmp_path / "ref") == (
        _sim(sim_table, tmp_path / "again", seed=3, rank_by=rank_by, budget=budget).run()
        and _summary(tmp_path / "again"))
    # killed with jobs running and a candidate paused between rungs
    kill_when(lambda rec, n: n == 7,
              _sim(sim_table, tmp_path / "run", seed=3, rank_by=rank_by, budget=budget).run)
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["fidelity"]["inflight"]  # the jobs that were running are known
    Search.resume(tmp_path / "run", oracle=sim_table).run()
    assert _summary(tmp_path / "run") == _summary(tmp_path / "ref")


@pytest.mark.parametrize("rungs,match", [
    ((5, 10), "must end at the full training's 20 steps"),
    ((7, 20), "recorded a curve point"),
    ((10, 5, 20), "strictly increasing"),
])
def test_rungs_are_checked_before_the_run_directory_exists(sim_table, tmp_path, rungs, match):
    with pytest.raises(InvalidParameterError, match=match):
        _sim(sim_table, tmp_path / "r", rungs=rungs)
    assert not (tmp_path / "r").exists()


def test_reduction_factor_and_evaluator_are_checked(sim_table, tmp_path):
    with pytest.raises(InvalidParameterError, match="'reduction_factor'"):
        ASHAScheduler(rungs=(5, 20), reduction_factor=1)
    with pytest.raises(InvalidParameterError, match="trains partially"):
        Search("nb201", oracle="nb201", scheduler=ASHAScheduler(rungs=(12, 200)),
               run_dir=tmp_path / "o")
    assert not (tmp_path / "o").exists()


def _train(task, path, executor=None, budget=3):
    return Search("blocks1d", task=task, evaluator=TrainingEvaluator(steps=6, device="cpu"),
                  scheduler=ASHAScheduler(rungs=(2, 4, 6), reduction_factor=2), budget=budget,
                  per_round=3, seed=1, run_dir=path, ensembler=False, max_params=20000,
                  filter=NoFilter(), executor=executor or InProcessExecutor(),
                  mutator=MutationMutator(mutations=30, parents=3))


def test_training_pauses_and_continues_from_its_checkpoint(synthetic_task, tmp_path):
    from prednas.training import train

    _train(synthetic_task, tmp_path / "a").run()
    recs = _lines(tmp_path / "a")
    full = [r for r in recs if r["kind"] == "candidate"]
    assert full and all(r["continued"] and r["from_steps"] == 4 for r in full)
    assert all(r["rung"] == 0 and not r["continued"] for r in recs if r["from_steps"] == 0)
    # continued from checkpoints, the full training is the one that was never paused
    ref = train("blocks1d", full[0]["arch"], synthetic_task, steps=6, seed=1, device="cpu",
                keep_model=False)
    assert full[0]["val_acc"] == pytest.approx(ref.val_acc)
    assert full[0]["curve"]["step"] == [2, 4, 6]
    # the checkpoint a continued training started from is gone; paused candidates keep theirs
    weights = tmp_path / "a" / "weights"
    for r in full:
        assert not (weights / f"{_slug(r['arch'])}-4.ckpt").exists()
        assert (weights / f"{_slug(r['arch'])}.pt").exists()  # its trained weights
    paused = [r for r in recs if r["kind"] == PARTIAL and r["arch"] not in
              {x["arch"] for x in recs if x["from_steps"] == r["fidelity"]}]
    assert paused and all((weights / f"{_slug(r['arch'])}-{r['fidelity']}.ckpt").exists()
                          for r in paused)


def test_a_damaged_checkpoint_is_retrained_from_scratch_and_said(synthetic_task, tmp_path,
                                                                  kill_when):
    # stopped just as the first promotion finishes
    kill_when(lambda rec, n: rec.get("rung") == 1, _train(synthetic_task, tmp_path / "r").run)
    state = json.loads((tmp_path / "r" / "state.json").read_text())
    job = next(j for j in state["fidelity"]["inflight"].values() if j["rung"] == 1)
    for p in (tmp_path / "r" / "weights").glob("*-2.ckpt"):
        p.write_bytes(b"not a checkpoint")
    Search.resume(tmp_path / "r").run()
    recs = _lines(tmp_path / "r")
    again = [r for r in recs if r["arch"] == job["arch"] and r["rung"] == 1]
    assert len(again) == 1  # counted once
    assert "cannot be read" in again[0]["restarted"] and again[0]["from_steps"] == 0


def test_a_failed_candidate_is_recorded_with_its_fidelity_and_never_promoted(sim_table,
                                                                              tmp_path):
    s = _sim(sim_table, tmp_path / "f", budget=4)
    bad = None

    def evaluate(space, arch, **kw):  # the second candidate diverges at its first rung
        nonlocal bad
        out = orig(space, arch, **kw)
        if bad is None and kw.get("resume") is None and len(_lines(tmp_path / "f")) == 1:
            bad = str(arch)
            out.update(status="diverged", objective=float("nan"), reason="test")
        return out

    orig = s.evaluator.evaluate
    s.evaluator.evaluate = evaluate
    s.run()
    recs = [r for r in _lines(tmp_path / "f") if r["arch"] == bad]
    assert len(recs) == 1 and recs[0]["status"] == "diverged" and recs[0]["fidelity"] == 5


def test_a_pool_runs_the_scheduler_asynchronously(synthetic_task, tmp_path):
    res = _train(synthetic_task, tmp_path / "p", PoolExecutor(workers=2, start_method="fork"),
                 budget=2).run()
    recs = _lines(tmp_path / "p")
    assert len(recs) >= 5
    assert all(r["continued"] for r in recs if r["from_steps"])
    assert res.best is not None and res.best.get("fidelity") == 6  # the pick is fully trained


def test_a_budget_too_small_for_a_full_training_still_hands_over_a_fully_trained_pick(
        sim_table, tmp_path):
    res = _sim(sim_table, tmp_path / "s", budget=1).run()
    recs = _lines(tmp_path / "s")
    assert res.best is not None and res.best.get("fidelity") == 20
    assert [r["kind"] for r in recs].count("candidate") == 1
    assert recs[-1]["kind"] == "candidate" and recs[-1]["from_steps"] in (5, 10)


def test_ranking_by_estimate_combines_the_partial_accuracy_and_the_prediction(sim_table,
                                                                              tmp_path):
    from prednas.search import PredictorFilter
    from prednas.search.fidelity import FidelityLoop

    # one worker: the order of events, so which candidates reach a full training, does not
    # depend on the tiny table's measured seconds (with two, 9 of 20 random rescalings of them
    # left fewer than the 3 that the estimate needs)
    s = _sim(sim_table, tmp_path / "v", budget=12, rank_by="estimate", workers=1,
             filter=PredictorFilter(proxy_table=None, survivors=6, min_fit=3))
    s.run()
    loop = object.__new__(FidelityLoop)
    loop.s, loop.scheduler, loop.rungs = s, s.scheduler, [5, 10, 20]
    recs = s._records
    first = [r for r in recs if r.get("rung") == 0 and r.ok]
    assert loop.value(first[0], []) == first[0].objective  # no data yet: the partial accuracy
    full = {r.arch for r in recs if r.kind == "candidate" and r.ok}
    both = [r for r in first if r.arch in full]
    assert len(both) >= 3  # with data: moved to the full training's scale
    gap = sum(r.objective for r in recs if r.kind == "candidate" and r.arch in
              {b.arch for b in both}) / len(both) - sum(b.objective for b in both) / len(both)
    r = first[-1]
    shifted, v = r.objective + gap, loop.value(r, recs)
    if r.predicted is None:
        assert v == pytest.approx(shifted)
    else:  # a precision-weighted mean of the two: between them
        lo, hi = sorted((shifted, r.predicted))
        assert lo - 1e-9 <= v <= hi + 1e-9 and v != r.objective
