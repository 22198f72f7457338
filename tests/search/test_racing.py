"""An honest winner: noise-aware estimates, and the race of the leaders on new seeds."""

from __future__ import annotations

import json

import pytest

import prednas
from prednas.errors import InvalidParameterError
from prednas.search import Search, SimulatedEvaluator
from prednas.search.racing import REPEAT


def _sim(table, path, *, race=0.4, budget=10, seed=0):
    return Search(table.space, oracle=table, simulate=True, budget=budget, per_round=2,
                  seed=seed, run_dir=path, race=race,
                  evaluator=SimulatedEvaluator(workers=2, decision_seconds=0.01))


def _lines(path):
    return [json.loads(x) for x in (path / "evaluations.jsonl").read_text().splitlines()]


def test_the_race_retrains_leaders_on_new_seeds_within_the_budget(sim_table, tmp_path):
    from prednas.search.estimates import NoiseAwareEstimate

    s = _sim(sim_table, tmp_path / "r")
    s.estimator = NoiseAwareEstimate(prior_noise_std=50.0, prior_weight=1e6)  # never separated
    res = s.run()
    recs = _lines(tmp_path / "r")
    cands = [r for r in recs if r["kind"] == "candidate"]
    reps = [r for r in recs if r["kind"] == REPEAT]
    assert len(cands) == 6 and len(reps) == 4  # 40% of 10 kept for the race, all spent
    assert res.estimate["separated"] is False and "budget ran out" in res.estimate["why"]
    for r in reps:  # a repeat is a leader trained again, on a seed it had not had
        assert r["arch"] in {c["arch"] for c in cands}
        first = next(c for c in cands if c["arch"] == r["arch"])
        assert r["seed"] != first["seed"]
    est = res.estimate
    best = json.loads((tmp_path / "r" / "best.json").read_text())
    assert best["arch"] == res.best_arch == est["arch"] and best["estimate"] == est
    n = 1 + sum(1 for r in reps if r["arch"] == est["arch"])
    assert est["trainings"] == n and "why" in est and est["why"].startswith("highest estimate")
    assert "why it won" in (tmp_path / "r" / "report.md").read_text()


def test_a_separated_best_ends_the_race_early(sim_table, tmp_path):
    from prednas.search.estimates import NoiseAwareEstimate

    s = _sim(sim_table, tmp_path / "e")
    s.estimator = NoiseAwareEstimate(prior_noise_std=1e-3, prior_weight=1e6,
                                     min_prediction_std=1e-3)  # every training is exact
    res = s.run()
    assert not [r for r in _lines(tmp_path / "e") if r["kind"] == REPEAT]
    assert res.estimate["separated"] is True and "above the runner-up" in res.estimate["why"]


def test_the_winner_is_the_best_estimate_not_the_luckiest_training(sim_table, tmp_path):
    s = _sim(sim_table, tmp_path / "w", race=0.0)
    s.run()
    from prednas.search.racing import estimates

    ests = estimates(s)
    assert s._records and ests[0].arch == json.loads(
        (tmp_path / "w" / "best.json").read_text())["arch"]


def test_a_race_killed_mid_batch_resumes_without_counting_twice(sim_table, tmp_path,
                                                                 monkeypatch, kill_when):
    from prednas.search.estimates import NoiseAwareEstimate

    # noise so large that the race always runs to its budget, in every search below
    monkeypatch.setattr(NoiseAwareEstimate.__init__, "__defaults__", (50.0, 1e6, 0.3, 8, False))
    _sim(sim_table, tmp_path / "ref", seed=2).run()
    kill_when(lambda rec, n: rec.get("kind") == REPEAT,
              _sim(sim_table, tmp_path / "run", seed=2).run)
    assert json.loads((tmp_path / "run" / "state.json").read_text())["race_plan"]
    Search.resume(tmp_path / "run", oracle=sim_table).run()

    def key(path):
        return [(r["kind"], r["slot"], r["arch"], r["objective"]) for r in _lines(path)]

    assert key(tmp_path / "run") == key(tmp_path / "ref")


def test_lookups_keep_the_best_value_and_the_share_is_checked(tmp_path):
    bench = prednas.benchmarks.load("nb201")
    res = Search("nb201", oracle=bench, budget=6, run_dir=tmp_path / "o", race=0.5,
                 filter=prednas.search.NoFilter()).run()
    assert res.estimate is None and len(res.records) == 6  # a table has no noise to race
    assert res.best.objective == max(r.objective for r in res.records)
    with pytest.raises(InvalidParameterError, match="'race'"):
        Search("nb201", oracle=bench, race=1.0, run_dir=tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_the_ensemble_is_of_the_winner_and_reuses_the_races_trainings(synthetic_task, tmp_path,
                                                                      monkeypatch):
    from prednas.search import MutationMutator, NoFilter, ReplicaEnsembler, TrainingEvaluator
    from prednas.search.estimates import NoiseAwareEstimate

    monkeypatch.setattr(NoiseAwareEstimate.__init__, "__defaults__", (50.0, 1e6, 0.3, 8, False))
    res = Search("blocks1d", task=synthetic_task, evaluator=TrainingEvaluator(steps=4, device="cpu"),
                 budget=4, per_round=2, seed=0, race=0.5, filter=NoFilter(),
                 mutator=MutationMutator(parents=3, mutations=30), run_dir=tmp_path / "e",
                 ensembler=ReplicaEnsembler(replicas=1)).run()
    recs = _lines(tmp_path / "e")
    reps = [r for r in recs if r["kind"] == REPEAT and r["arch"] == res.best_arch]
    assert reps and res.ensemble["archs"] == [res.best_arch]  # the winner, not the luckiest
    assert not [r for r in recs if r["kind"] == "replica"]  # its repeat was the replica


def test_a_training_search_reads_its_trainings_validation_losses_when_asked(synthetic_task, tmp_path,
                                                                 monkeypatch):
    from prednas.search import MutationMutator, NoFilter, TrainingEvaluator
    from prednas.search.estimates import NoiseAwareEstimate

    monkeypatch.setattr(NoiseAwareEstimate.__init__, "__defaults__", (0.9, 4.0, 0.3, 3, True))
    res = Search("blocks1d", task=synthetic_task, evaluator=TrainingEvaluator(steps=4, device="cpu"),
                 budget=5, per_round=5, seed=0, race=0.0, filter=NoFilter(),
                 mutator=MutationMutator(parents=3, mutations=30), run_dir=tmp_path / "l").run()
    assert res.estimate["loss_reading"] is not None
    assert "its validation loss reads" in res.estimate["why"]
