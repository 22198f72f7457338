"""The final protocol: a run's picks retrained on fresh seeds with the run's recipe."""

from __future__ import annotations

import json
import math

import pytest

from prednas.errors import InvalidParameterError
from prednas.search import MutationMutator, NoFilter, Search, TrainingEvaluator
from prednas.search.protocol import retrain, score


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("protocol") / "run"
    Search("blocks1d", task="synthetic", task_options={"n": 96}, budget=1, per_round=1, seed=0,
           evaluator=TrainingEvaluator(steps=12, batch_size=16, device="cpu"),
           mutator=MutationMutator(parents=1, mutations=5), filter=NoFilter(),
           baseline="conv3:16", ensembler=False, run_dir=path).run()
    return path


def test_retrain_uses_the_runs_recipe_and_resumes_from_done(run):
    seen = []
    rows = retrain(run, ["conv3:16", "mlp:16"], seeds=(1000, 1001), on_result=seen.append)
    assert [len(v) for v in rows.values()] == [2, 2] and len(seen) == 4
    assert {r["seed"] for r in rows["conv3:16"]} == {1000, 1001}
    assert all(r["status"] == "ok" and 0 <= r["test_acc"] <= 100 for r in seen)
    # the run's recipe (12 steps), not the library's default (300), on the run's model
    base = next(json.loads(x) for x in (run / "evaluations.jsonl").read_text().splitlines()
                if json.loads(x)["kind"] == "baseline")
    assert all(r["steps"] == 12 for r in seen)
    assert base["params"] == rows["conv3:16"][0]["params"]
    again = retrain(run, ["conv3:16"], seeds=(1000, 1001, 1002), done=seen,
                    on_result=seen.append)
    assert len(seen) == 5 and again["conv3:16"][:2] == rows["conv3:16"]  # one new training
    assert score(again["conv3:16"]) == pytest.approx(
        sum(r["test_acc"] for r in again["conv3:16"]) / 3)
    assert math.isnan(score([rows["mlp:16"][0], {"status": "failed", "test_acc": 50.0}]))


def test_a_lookup_run_has_no_recipe_to_retrain(tmp_path):
    Search("nb201", oracle="nb201", budget=2, per_round=2, seed=0, run_dir=tmp_path / "o").run()
    with pytest.raises(InvalidParameterError, match="'oracle' run"):
        retrain(tmp_path / "o", ["x"])


def test_a_model_runs_space_is_regenerated(tmp_path):
    # a --model run: the space of the user's network comes back from the run's notes
    from pathlib import Path

    from prednas.cli import main

    model = Path(__file__).resolve().parents[2] / "examples" / "models.py"
    out = tmp_path / "m"
    assert main(["search", "--model", f"{model}:SmallCNN1d", "--task", "synthetic",
                 "--task-opt", "n=96", "--task-opt", "num_classes=10", "--budget", "1",
                 "--steps", "12", "--replicas", "0",
                 "--workers", "1", "--max-minutes", "5", "--out", str(out)]) in (0, None)
    base = next(json.loads(x) for x in (out / "evaluations.jsonl").read_text().splitlines()
                if json.loads(x)["kind"] == "baseline")
    rows = retrain(out, [base["arch"]], seeds=(1000,))[base["arch"]]
    assert rows[0]["status"] == "ok" and rows[0]["params"] == base["params"]
    assert rows[0]["steps"] == 12
