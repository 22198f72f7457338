"""Resume after an interruption anywhere: nothing lost or repeated, same final result."""

from __future__ import annotations

import json
import os

import pytest

import prednas
from prednas.errors import RunDirectoryError
from prednas.search import MutationMutator, OracleEvaluator, PredictorFilter, Search
from prednas.search import rundir as rundir_mod


@pytest.fixture(scope="module")
def bench():
    return prednas.benchmarks.load("nb201")


def make(bench, path):
    return Search("nb201", oracle=bench, budget=14, per_round=3, seed=7, run_dir=path,
                  mutator=MutationMutator(parents=4, mutations=120),
                  filter=PredictorFilter(proxy_table=None, min_fit=3))


def summary(result):
    return [(r.round, r.slot, r.arch, r.objective)
            for r in sorted(result.records, key=lambda r: (r.round, r.slot))]


class Boom(BaseException):
    """Stands for Ctrl-C / kill -9 (not caught by anything in the library)."""


class StopAfter(OracleEvaluator):
    name = "oracle"  # rebuilt as a plain oracle on resume

    def __init__(self, benchmark=None, metric=None, after=3):
        super().__init__(benchmark, metric)
        self.after = after
        self.calls = 0

    def evaluate(self, space, arch, **kw):
        self.calls += 1
        if self.calls > self.after:
            raise Boom()
        return super().evaluate(space, arch, **kw)

    def describe(self):  # recorded as the plain oracle it stands in for
        return OracleEvaluator(self.benchmark, self.metric).describe()


@pytest.fixture(scope="module")
def reference(bench, tmp_path_factory):
    return summary(make(bench, tmp_path_factory.mktemp("ref") / "run").run())


@pytest.mark.parametrize("after", [0, 1, 4, 8, 13])
def test_resume_after_interrupted_evaluation(bench, tmp_path, reference, after):
    path = tmp_path / "run"
    s = make(bench, path)
    s.evaluator = StopAfter(after=after)
    with pytest.raises(Boom):
        s.run()
    n_before = len((path / "evaluations.jsonl").read_text().splitlines())
    assert n_before == after
    res = Search.resume(path).run()
    assert summary(res) == reference
    lines = [json.loads(x) for x in (path / "evaluations.jsonl").read_text().splitlines()]
    assert len(lines) == 14  # nothing repeated
    assert len({x["arch"] for x in lines}) == 14


@pytest.mark.parametrize("fail_on", [1, 2, 3, 6])
def test_resume_after_kill_during_state_write(bench, tmp_path, reference, monkeypatch, fail_on):
    """A crash right before the n-th state snapshot (the evaluations already appended)."""
    path = tmp_path / "run"
    calls = {"n": 0}
    real = rundir_mod.RunDir.write_state

    def flaky(self, state):
        calls["n"] += 1
        if calls["n"] == fail_on:
            raise Boom()
        return real(self, state)

    monkeypatch.setattr(rundir_mod.RunDir, "write_state", flaky)
    with pytest.raises(Boom):
        make(bench, path).run()
    monkeypatch.setattr(rundir_mod.RunDir, "write_state", real)
    if not (path / "state.json").exists():  # killed before the very first snapshot
        return
    res = Search.resume(path).run()
    assert summary(res) == reference


def test_resume_with_torn_last_line(bench, tmp_path, reference):
    path = tmp_path / "run"
    s = make(bench, path)
    s.evaluator = StopAfter(after=5)
    with pytest.raises(Boom):
        s.run()
    with open(path / "evaluations.jsonl", "ab") as f:  # kill -9 in the middle of a write
        f.write(b'{"arch": "|nor_conv_3x3~0|+|none~0')
    res = Search.resume(path).run()
    assert summary(res) == reference
    for line in (path / "evaluations.jsonl").read_text().splitlines():
        json.loads(line)


def test_resume_finished_run_is_a_no_op(bench, tmp_path, reference):
    path = tmp_path / "run"
    make(bench, path).run()
    before = (path / "evaluations.jsonl").read_bytes()
    res = Search.resume(path).run()
    assert summary(res) == reference
    assert (path / "evaluations.jsonl").read_bytes() == before


def snapshot(path):
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(path.iterdir())
            if p.is_file()}


@pytest.mark.parametrize("damage", ["garbage_line", "foreign_state", "bad_json_state",
                                    "no_state", "missing_keys", "other_format"])
def test_corrupted_or_foreign_run_dir(bench, tmp_path, damage):
    path = tmp_path / "run"
    make(bench, path).run()
    ev, st = path / "evaluations.jsonl", path / "state.json"
    if damage == "garbage_line":
        lines = ev.read_text().splitlines()
        lines.insert(3, "this is not json")
        ev.write_text("\n".join(lines) + "\n")
    elif damage == "foreign_state":
        st.write_text(json.dumps({"kind": "something-else", "format": 1}))
    elif damage == "bad_json_state":
        st.write_text("{not json")
    elif damage == "no_state":
        os.unlink(st)
    elif damage == "missing_keys":
        with open(ev, "a") as f:
            f.write(json.dumps({"hello": 1}) + "\n")
    elif damage == "other_format":
        d = json.loads(st.read_text())
        d["format"] = 99
        st.write_text(json.dumps(d))
    before = snapshot(path)
    with pytest.raises(RunDirectoryError):
        Search.resume(path).run()
    assert snapshot(path) == before


def test_new_run_refuses_existing_dir(bench, tmp_path):
    path = tmp_path / "run"
    make(bench, path).run()
    before = snapshot(path)
    with pytest.raises(RunDirectoryError, match="resume"):
        make(bench, path).run()
    assert snapshot(path) == before


def test_resume_missing_dir(tmp_path):
    with pytest.raises(RunDirectoryError):
        Search.resume(tmp_path / "nope")
