"""A run as an Optuna study: the journal equals the records (oracle, training, Pareto), through
kill -9 and resume, while a search writes; readers never write into an owned run."""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import predictors
import prednas
import spaces
from prednas.errors import CandidateError, RunDirectoryError
from prednas.search import (
    MutationMutator,
    OracleEvaluator,
    PredictorFilter,
    Search,
    TrainingEvaluator,
)
from prednas.search import study as study_mod
from prednas.search.base import Record

REPO = Path(__file__).resolve().parents[2]
OBJ = ["cifar10_test_200ep", "params"]


@pytest.fixture(scope="module")
def bench():
    return prednas.benchmarks.load("nb201")


def oracle_search(bench, path, **kw):
    kw.setdefault("budget", 12)
    kw.setdefault("per_round", 4)
    return Search("nb201", oracle=bench, seed=3, run_dir=path,
                  mutator=MutationMutator(parents=3, mutations=60),
                  filter=PredictorFilter(predictor=predictors.get("xgb", n_estimators=20),
                                         proxy_table=None, min_fit=3), **kw)


class FlakyOracle(OracleEvaluator):
    """Fails the architectures with two or more 'none' edges, as a broken candidate would."""

    def evaluate(self, space, arch, **kw):
        if str(arch).count("none") >= 2:
            raise CandidateError("simulated failure: too many empty edges")
        return super().evaluate(space, arch, **kw)


class CurveEvaluator(TrainingEvaluator):
    """Real training, plus the learning curve and fidelity a curve-recording evaluator adds."""

    def evaluate(self, space, arch, **kw):
        out = super().evaluate(space, arch, **kw)
        if out.get("status") == "ok":
            acc = float(out["val_acc"])
            out["curve"] = {"step": [1, 2, 3], "val_acc": [acc / 3, 2 * acc / 3, acc],
                            "val_loss": [2.0, 1.5, 1.0], "train_loss": [2.1, 1.6, 1.1],
                            "seconds": [0.1, 0.2, 0.3]}
            out["fidelity"] = 3
        return out


def read_records(path: Path) -> list[Record]:
    return [Record.from_json(json.loads(x))
            for x in (path / "evaluations.jsonl").read_text().splitlines() if x.strip()]


def journal(path: Path) -> optuna.Study:
    """The journal exactly as on disk (no syncing), read with Optuna's own storage."""
    from optuna.storages.journal import JournalFileBackend

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(path / "study.log")))
    return optuna.load_study(study_name="prednas-search", storage=storage)


def assert_study_equals_records(st, path: Path, space, objectives=("cifar10_test_200ep",)):
    """Values, parameters, states and intermediate values of every trial are its record's."""
    records = read_records(path)
    trials = st.get_trials(deepcopy=False)
    assert [t.number for t in trials] == list(range(len(records)))
    assert [t.user_attrs["record"] for t in trials] == list(range(len(records)))
    assert len({(r.kind, r.query) for r in records}) == len(records)  # one record per evaluation
    assert st.directions == ([optuna.study.StudyDirection.MAXIMIZE]
                             + [optuna.study.StudyDirection.MINIMIZE] * (len(objectives) - 1))
    assert st.metric_names == list(objectives)
    for t, r in zip(trials, records):
        assert t.user_attrs["arch"] == r.arch and t.user_attrs["kind"] == r.kind
        assert t.user_attrs["query"] == r.query
        costs = [r.get(c) for c in objectives[1:]]
        placed = r.ok and all(c is not None and math.isfinite(float(c)) for c in costs)
        if placed:
            assert t.state == TrialState.COMPLETE
            assert t.values == [r.objective] + [float(c) for c in costs]
        else:
            assert t.state == TrialState.FAIL and t.values is None
            assert t.user_attrs["status"] == r.status and t.user_attrs.get("reason") == r.reason
        if space is not None:
            params, dists = space.to_optuna(space.parse(r.arch))
            assert t.params == params and t.distributions == dists
        curve = r.get("curve") or {}
        assert t.intermediate_values == dict(zip(curve.get("step", []), curve.get("val_acc", [])))
        for key in ("params", "fidelity", "predicted", "seconds"):
            if r.get(key) is not None and not (isinstance(r.get(key), float)
                                               and math.isnan(r.get(key))):
                assert t.user_attrs[key] == r.get(key)
    return records, trials


def snapshot(path: Path) -> dict:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file()}


@pytest.fixture
def no_warnings(caplog):
    caplog.set_level(logging.WARNING, logger="prednas.search.study")
    yield
    assert not [r for r in caplog.records if r.name == "prednas.search.study"], caplog.text


# ------------------------------------------------------------------------------------------------
# the mirror, written by the search as it runs
# ------------------------------------------------------------------------------------------------
def test_oracle_run_is_mirrored_as_it_runs(bench, tmp_path, no_warnings):
    path = tmp_path / "run"
    res = oracle_search(bench, path, evaluator=FlakyOracle()).run()
    st = journal(path)  # written by the search itself
    records, trials = assert_study_equals_records(st, path, spaces.get("nb201"))
    assert any(t.state == TrialState.FAIL for t in trials)
    failed = next(t for t in trials if t.state == TrialState.FAIL)
    assert "simulated failure" in failed.user_attrs["reason"]
    assert st.direction == optuna.study.StudyDirection.MAXIMIZE
    best = max((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.value)
    assert best.value == res.best.objective
    # the public reader gives the same trials and names the winner (it fills in the views)
    st2 = prednas.study(path)
    assert_study_equals_records(st2, path, spaces.get("nb201"))
    assert st2.user_attrs["winner"]["arch"] == res.best.arch
    assert st2.user_attrs["views"] == {"records": len(records), "done": True}


def test_pareto_run_sets_directions_and_constraints(bench, tmp_path, no_warnings):
    path = tmp_path / "run"
    limit = 600_000.0  # about half of NB201's cells are above it
    oracle_search(bench, path, objectives=OBJ, budget=9, per_round=3,
                  constraints={"params": limit}).run()
    st = prednas.study(path)
    _, trials = assert_study_equals_records(st, path, spaces.get("nb201"), OBJ)
    assert len(st.directions) == 2
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert done and all(len(t.values) == 2 for t in done)
    for t in done:  # Optuna's feasibility: every constraint value <= 0
        assert (t.system_attrs["constraints"][0] <= 0) == (t.values[1] <= limit)
    front = {t.number for t in st.best_trials}
    assert front and all(trials[n].state == TrialState.COMPLETE for n in front)


def test_training_run_with_baseline_and_curves(tmp_path, no_warnings):
    path = tmp_path / "run"
    Search("blocks1d", task="synthetic", task_options={"n": 128, "seed": 0}, budget=2,
           per_round=2, seed=0, run_dir=path, device="cpu", baseline="conv3:16|conv3:16",
           evaluator=CurveEvaluator(steps=3, batch_size=32, device="cpu", max_params=20_000),
           mutator=MutationMutator(parents=2, mutations=20),
           filter=PredictorFilter(predictor=predictors.get("xgb", n_estimators=20),
                                  proxy_table=None, min_fit=2, survivors=4),
           ensembler=False).run()
    st = journal(path)
    records, trials = assert_study_equals_records(st, path, spaces.get("blocks1d"),
                                                  ("val_acc",))
    kinds = [t.user_attrs["kind"] for t in trials]
    assert kinds == ["baseline", "candidate", "candidate"]
    ok = next(t for t in trials if t.state == TrialState.COMPLETE)
    assert ok.intermediate_values and max(ok.intermediate_values) == 3
    assert ok.user_attrs["fidelity"] == 3 and ok.params["depth"] >= 1
    st2 = prednas.study(path)
    assert st2.user_attrs["baseline"]["trial"] == 0


# ------------------------------------------------------------------------------------------------
# interruptions: never a duplicate, always completed from the records
# ------------------------------------------------------------------------------------------------
class Interrupt(BaseException):
    """Stands for kill -9 between the record's append and the study's."""


def test_interrupted_between_record_and_study_then_resumed(bench, tmp_path, monkeypatch,
                                                           no_warnings):
    import prednas.search.engine as engine

    path = tmp_path / "run"
    real, calls = engine.mirror_study, {"n": 0}

    def mirror(search, rd, records, state=None):
        if state is None:
            calls["n"] += 1
            if calls["n"] == 6:  # the 6th record is on disk, not yet in the study
                raise Interrupt()
        real(search, rd, records, state)

    monkeypatch.setattr(engine, "mirror_study", mirror)
    with pytest.raises(Interrupt):
        oracle_search(bench, path).run()
    monkeypatch.setattr(engine, "mirror_study", real)
    assert len(journal(path).trials) == 5 and len(read_records(path)) == 6
    with open(path / "study.log", "ab") as f:  # and a torn last line of the journal
        f.write(b'{"op_code": 4, "worker_id": "x", "study_id": 0, "datetime_st')
    Search.resume(path).run()
    assert_study_equals_records(journal(path), path, spaces.get("nb201"))
    assert len(read_records(path)) == 12


CHILD = textwrap.dedent("""
    import os, signal, sys
    import predictors
    from prednas.search import MutationMutator, PredictorFilter, Search, rundir
    real, n = rundir.RunDir.append, {"n": 0}
    def append(self, record):
        real(self, record)
        n["n"] += 1
        if n["n"] == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)  # the record is on disk, the study not yet
    rundir.RunDir.append = append
    Search("nb201", oracle="nb201", seed=3, run_dir=sys.argv[1], budget=12, per_round=4,
           mutator=MutationMutator(parents=3, mutations=60),
           filter=PredictorFilter(predictor=predictors.get("xgb", n_estimators=20),
                                  proxy_table=None, min_fit=3)).run()
""")


def _child_env():
    return {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def test_kill_9_then_resume(tmp_path, no_warnings):
    path = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", CHILD, str(path), "7"], env=_child_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert len(read_records(path)) == 7 and len(journal(path).trials) == 6
    before = snapshot(path)
    st = prednas.study(path)  # no process owns it: the reader completes the journal
    assert len(st.trials) == 7
    assert snapshot(path)["evaluations.jsonl"] == before["evaluations.jsonl"]
    Search.resume(path).run()
    assert_study_equals_records(journal(path), path, spaces.get("nb201"))


# ------------------------------------------------------------------------------------------------
# readers: rebuilt when missing, refused when edited, never written while another process owns
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def finished(bench, tmp_path_factory):
    path = tmp_path_factory.mktemp("finished") / "run"
    oracle_search(bench, path).run()
    return path


def copy_run(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_missing_study_is_rebuilt_from_the_records(finished, tmp_path, no_warnings):
    path = copy_run(finished, tmp_path / "run")
    (path / "study.log").unlink()
    assert_study_equals_records(prednas.study(path), path, spaces.get("nb201"))
    assert_study_equals_records(journal(path), path, spaces.get("nb201"))


def test_hand_edited_study_is_refused_and_left_alone(finished, tmp_path):
    path = copy_run(finished, tmp_path / "run")
    text = (path / "study.log").read_text()
    rec = read_records(path)[2]
    edited = text.replace(json.dumps(rec.objective), json.dumps(rec.objective + 1.5), 1)
    assert edited != text
    (path / "study.log").write_text(edited)
    before = snapshot(path)
    with pytest.raises(RunDirectoryError, match="disagrees with evaluations.jsonl") as info:
        prednas.study(path)
    assert "\n" not in str(info.value)
    assert snapshot(path) == before
    # a search that resumes rebuilds it from the records (the truth), and says so
    Search.resume(path, budget=14).run()
    assert_study_equals_records(journal(path), path, spaces.get("nb201"))


def test_study_is_read_only(finished):
    st = prednas.study(finished)
    with pytest.raises(RunDirectoryError, match="read-only"):
        st.set_user_attr("x", 1)
    with pytest.raises(RunDirectoryError, match="read-only"):
        st.optimize(lambda t: 0.0, n_trials=1)
    assert len(prednas.study(finished).trials) == len(read_records(finished))


def test_not_a_run_directory(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(RunDirectoryError, match="not a prednas search run"):
        prednas.study(tmp_path / "x")
    assert list((tmp_path / "x").iterdir()) == []


def test_owned_run_is_read_without_writing(finished, tmp_path, no_warnings):
    """Another process holds the run: its journal is read as is, or (none) the records are read
    into memory; nothing in the directory changes."""
    from filelock import FileLock

    path = copy_run(finished, tmp_path / "run")
    (path / "study.log").unlink()
    full = (path / "evaluations.jsonl").read_bytes()
    lines = full.splitlines(keepends=True)
    (path / "evaluations.jsonl").write_bytes(b"".join(lines[:8]))
    lock = FileLock(str(path / ".lock"), timeout=0)  # held, as a running search holds it
    lock.acquire()
    try:
        before = snapshot(path)
        view = study_mod.StudyView(path)
        st = view.open()
        assert view.source == "records" and len(st.trials) == 8
        assert_study_equals_records(st, path, spaces.get("nb201"))
        (path / "evaluations.jsonl").write_bytes(full)  # the owner appends four more
        assert view.refresh() == 4 and len(st.trials) == len(lines)
        assert_study_equals_records(st, path, spaces.get("nb201"))
        assert not (path / "study.log").exists()
        assert {k: v for k, v in snapshot(path).items() if k != "evaluations.jsonl"} == {
            k: v for k, v in before.items() if k != "evaluations.jsonl"}
    finally:
        lock.release()
    view = study_mod.StudyView(path)  # no owner any more: the reader writes the journal
    view.open()
    assert view.source == "journal"
    assert_study_equals_records(journal(path), path, spaces.get("nb201"))


WRITER = Path(__file__).resolve().parents[1] / "search" / "_writing_search.py"


def start_writer(path: Path, budget: int, delay: float, hold_at: int) -> subprocess.Popen:
    """A search in another process, ``delay`` seconds per evaluation, that holds after
    ``hold_at`` evaluations until the file ``path.with_suffix(".go")`` exists; returns once its
    study has those trials."""
    proc = subprocess.Popen([sys.executable, str(WRITER), str(path), str(budget), str(delay),
                             str(hold_at), str(path.with_suffix(".go"))], env=_child_env(),
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while journal_trials(path) < hold_at:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "the search wrote no trial"
        time.sleep(0.1)
    return proc


def journal_trials(path: Path) -> int:
    if not (path / "study.log").exists():  # (Optuna's backend would create it)
        return 0
    try:
        return len(journal(path).trials)
    except (KeyError, ValueError):
        return 0


def test_study_while_a_search_is_writing(tmp_path, no_warnings):
    path = tmp_path / "run"
    proc = start_writer(path, 16, delay=0.1, hold_at=4)
    try:
        seen = [len(prednas.study(path).trials)]  # the owner's journal, read as is
        assert seen == [4]
        path.with_suffix(".go").touch()
        while proc.poll() is None:
            # ... as it grows: one snapshot of its trials (each ``st.trials`` reads the journal
            # again, and the search goes on writing)
            trials = prednas.study(path).trials
            n = len(trials)
            records = read_records(path)  # read after the study: never behind it
            assert n <= len(records)
            for t in trials:
                assert t.user_attrs["arch"] == records[t.number].arch
                assert t.value == records[t.number].objective
            seen.append(n)
        assert len(seen) >= 2 and seen == sorted(seen), seen
        assert proc.wait(timeout=120) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert_study_equals_records(prednas.study(path), path, spaces.get("nb201"))


# ------------------------------------------------------------------------------------------------
# spaces as Optuna distributions
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("space", [spaces.get("nb201"), spaces.get("blocks1d"),
                                   spaces.get("blocks1d", ops=("conv3", "gru"), widths=(16, 32),
                                              max_blocks=3, skips=False)],
                         ids=["nb201", "blocks1d", "blocks1d-sub"])
def test_space_choices_are_optuna_distributions(space):
    import numpy as np

    rng = np.random.default_rng(0)
    for _ in range(20):
        arch = space.sample(rng)
        params, dists = space.to_optuna(arch)
        assert params and params.keys() == dists.keys()
        for k, v in params.items():
            assert dists[k]._contains(dists[k].to_internal_repr(v)), (k, v)
        if space.name == "nb201":
            assert tuple(params.values()) == arch.ops
        else:
            assert params["depth"] == len(arch)
            assert [params[f"op_{i}"] for i in range(1, len(arch) + 1)] == [b.op for b in
                                                                            arch.blocks]
            assert [params[f"width_{i}"] for i in range(1, len(arch) + 1)] == [
                b.width for b in arch.blocks]
            assert ("skip_2" in params) == (space.skips and len(arch) >= 2)


def test_model_space_choices_are_optuna_distributions():
    import numpy as np
    import torch
    from torch import nn

    model = nn.Sequential(nn.Conv1d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv1d(8, 8, 3, padding=1),
                          nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(8, 4))
    space = spaces.from_model(model, torch.randn(2, 1, 16))
    arch = space.sample(np.random.default_rng(1))
    params, dists = space.to_optuna(arch)
    assert list(params) == [s.name for s in space.slots]
    assert all(dists[s.name].choices == s.labels for s in space.slots)
    assert space.parse("|".join(f"{k}={v}" for k, v in params.items())) == arch


# ------------------------------------------------------------------------------------------------
# the prednas views (note and figures), from hand-made records
# ------------------------------------------------------------------------------------------------
def test_views_name_the_winner_baseline_front_and_failures():
    pytest.importorskip("plotly", reason="the figures need the dashboard extra")
    from prednas.search._study_views import FIGURES, render

    def rec(i, kind, arch, acc, params, predicted=None, status="ok", rnd=0):
        return Record(arch=arch, canonical=arch, kind=kind, round=rnd if kind == "candidate" else -1,
                      slot=i, status=status, objective=acc if status == "ok" else math.nan,
                      query=i, reason="" if status == "ok" else "diverged",
                      predicted=predicted, predicted_std=0.5 if predicted else None,
                      metrics={"params": params, "sim_end": 10.0 * (i + 1)})

    records = [rec(0, "baseline", "conv5:64|conv5:64", 80.0, 900),
               rec(0, "candidate", "conv3:16", 70.0, 100, 72.0),
               rec(1, "candidate", "conv3:32", 85.0, 300, 80.0),
               rec(2, "candidate", "gru:32", 88.0, 2000, 84.0, rnd=1),  # over the constraint
               rec(3, "candidate", "attn:16", 0.0, 150, 75.0, status="failed", rnd=1),
               rec(4, "candidate", "conv7:32", 86.0, 250, 86.5, rnd=1)]
    config = {"space": "blocks1d", "mode": "train", "task": "mnist1d", "budget": 5,
              "per_round": 3, "objectives": ["val_acc", "params"],
              "constraints": {"params": 1000}, "strategies": {"filter": {"name": "predictor"}}}
    state = {"seed": 0, "round": 2, "done": True, "hv_reference": [0, 4000],
             "overhead": [{"round": 0, "pool": 40, "seconds": 0.1},
                          {"round": 1, "pool": 60, "seconds": 0.2}],
             "hypervolume": [{"round": 1, "evaluations": 5, "front": 3, "hypervolume": 1.5e5}]}
    note, figs = render(records, [1.0 * i for i in range(len(records))], config, state,
                        {"encodings": ["onehot"]})
    assert "### Winner\n\nTrial 3: `gru:32`" in note  # as the engine's best.json: by objective
    assert "Baseline (trial 0)" in note
    assert "### Pareto front" in note and "| baseline 0 |" in note and "Hypervolume" in note
    assert "### Failed (1)" in note and "diverged" in note
    assert "encodings: ['onehot']" in note and "Kendall tau" in note
    assert set(figs) == set(FIGURES)
    pareto = figs["pareto-front"]
    names = [t.name for t in pareto.data]
    assert {"baseline", "Pareto front", "over a constraint"} <= set(names)
    front = next(t for t in pareto.data if t.name == "Pareto front")
    assert list(front.x) == [100, 250]  # conv3:16 (70) then conv7:32 (86); conv3:32 is dominated
    best = figs["best-so-far"]
    assert best.layout.xaxis.title.text == "simulated seconds"
    assert list(next(t for t in best.data if t.name == "best so far").y) == [70.0, 85.0, 88.0, 88.0]
    json.loads(pareto.to_json())  # what optuna-dashboard stores
