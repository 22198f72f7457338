"""Failures late in a run (issue 21, defect 1): what makes the objective undefined is refused before
anything runs; what still fails late leaves a run that ``--resume`` finishes once the cause is
fixed; and the ensemble never mixes in a member whose outputs are not numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import spaces
from prednas import ensemble as _ensemble
from prednas import tasks
from prednas.errors import CandidateError, InvalidParameterError
from prednas.search import NoFilter, ReplicaEnsembler, Search, TrainingEvaluator
from prednas.training import train


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _search(path: Path, **kw) -> Search:
    return Search("blocks1d", task="synthetic", task_options={"n": 64}, budget=2, per_round=2,
                  evaluator=TrainingEvaluator(steps=4, device="cpu"), filter=NoFilter(),
                  device="cpu", run_dir=path, **kw)


@pytest.mark.parametrize("empty", ["train", "val", "test"])
def test_a_task_with_an_empty_split_is_refused_before_anything_runs(empty, tmp_path):
    task = tasks.get("synthetic", n=64)
    fields = {"train": ("x_train", "y_train"), "val": ("x_val", "y_val"),
              "test": ("x_test", "y_test")}[empty]
    for f in fields:
        setattr(task, f, getattr(task, f)[:0])
    with pytest.raises(InvalidParameterError, match="empty") as info:
        Search("blocks1d", task=task, budget=2, run_dir=tmp_path / "a" / "run").run()
    assert "\n" not in str(info.value)
    assert not (tmp_path / "a").exists()


def test_a_late_ensemble_failure_resumes_once_the_cause_is_fixed(tmp_path, monkeypatch,
                                                                 one_thread):
    path = tmp_path / "run"

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in the ensemble's weights")

    monkeypatch.setattr(_ensemble, "fit_weights", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        _search(path, ensembler=ReplicaEnsembler(2)).run()
    state = json.loads((path / "state.json").read_text())
    assert state["phase"] == "ensemble" and not state["done"]
    assert not (path / ".owner.json").exists()
    monkeypatch.undo()  # the cause fixed

    # one replica diverged meanwhile (NaN weights): the ensemble leaves it out
    lines = [json.loads(x) for x in (path / "evaluations.jsonl").read_text().splitlines()]
    replicas = [x for x in lines if x["kind"] == "replica"]
    assert len(replicas) == 2
    bad = path / "weights" / Path(replicas[0]["weights"]).name
    sd = torch.load(bad, weights_only=True)
    torch.save({k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
                for k, v in sd.items()}, bad)

    result = Search.resume(path).run()
    ens = result.ensemble
    assert ens["path"] and len(ens["archs"]) == 1 and ens["weights"] == [1.0]
    assert json.loads((path / "state.json").read_text())["done"] is True


def test_a_network_with_nothing_to_train_is_a_candidate_failure():
    space = spaces.get("blocks1d")
    build = type(space).build

    def frozen(self, *args, **kwargs):
        net = build(self, *args, **kwargs)
        for p in net.parameters():
            p.requires_grad_(False)
        return net

    task = tasks.get("synthetic", n=64)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(type(space), "build", frozen)
        with pytest.raises(CandidateError, match="no trainable parameter"):
            train(space, "mlp:16", task, steps=2, device="cpu")


def test_an_impossible_constraint_is_said_not_hidden(tmp_path, capsys, one_thread):
    """Under a latency bound no candidate meets, the front is empty, and the command says so
    beside the best it still reports (issue 21)."""
    from prednas.cli import main

    out = tmp_path / "run"
    code = main(["search", "--task", "synthetic", "--task-opt", "n=64", "--steps", "2",
                 "--budget", "2", "--replicas", "1", "--param-cap", "0", "--executor",
                 "inprocess", "--objectives", "val_acc,latency_ms", "--max-latency-ms", "1e-9",
                 "--no-start", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert (out / "pareto.jsonl").read_text() == ""
    assert "no candidate met the constraints (latency_ms <= 1e-09)" in printed
    assert printed.index("no candidate met") < printed.index("best:")
