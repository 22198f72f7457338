"""Fault injection for the search engine.

``kill -9`` at many points of a run (oracle and training mode) then resume; two processes on one
run directory; bad input that must leave nothing behind; read-only and hand-edited run
directories; strict resume; failures that must show; a report without built-in targets.

The killed runs are real processes (see ``_search_child.py``): one child imports prednas once and
forks a fresh process per kill point, which sends itself SIGKILL; resuming happens here.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import prednas
from prednas.cli import main
from prednas.errors import CandidateError, InvalidParameterError, PredNASError, RunDirectoryError
from prednas.search import NoFilter, OracleEvaluator, PredictorFilter, Search
from prednas.search.rundir import RunDir

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def _load_child():
    spec = importlib.util.spec_from_file_location("_search_child", HERE / "_search_child.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


child = _load_child()


def _env() -> dict:
    """The environment of a child process: this checkout's code first, one torch thread."""
    old = os.environ.get("PYTHONPATH")
    return dict(os.environ, PYTHONPATH=str(REPO) + (os.pathsep + old if old else ""),
                OMP_NUM_THREADS="1")


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bench():
    return prednas.benchmarks.load("nb201")


@pytest.fixture
def one_thread():
    """Training on one CPU thread (deterministic, and what the killed children use)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def rows(records) -> list[tuple]:
    """What an interrupted run must reproduce: every record's identity and objective."""
    return sorted((r.kind, r.round, r.slot, r.arch, r.objective) for r in records)


def all_rows(path: Path) -> list[tuple]:
    """Rows of the complete lines of ``evaluations.jsonl`` (none when it is missing)."""
    from prednas.search import Record

    p = path / "evaluations.jsonl"
    complete = p.read_text().split("\n")[:-1] if p.exists() else []
    return rows(Record.from_json(json.loads(x)) for x in complete)


def check_clean(path: Path) -> list[dict]:
    """Every line parses, no ``(kind, round, slot)`` twice, the run is done."""
    text = (path / "evaluations.jsonl").read_text()
    assert text == "" or text.endswith("\n")
    lines = [json.loads(x) for x in text.splitlines()]
    keys = [(x["kind"], x["round"], x["slot"]) for x in lines]
    assert len(keys) == len(set(keys)), f"duplicate records: {sorted(keys)}"
    state = json.loads((path / "state.json").read_text())
    assert state["done"] is True and state["phase"] == "done"
    return lines


def snapshot(path: Path) -> dict:
    """Bytes and mtimes of every file under ``path`` (the lock file included)."""
    return {str(p.relative_to(path)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(path.rglob("*")) if p.is_file()}


def one_line(msg: str) -> str:
    msg = str(msg).strip()
    assert msg and "\n" not in msg and "Traceback" not in msg, msg
    return msg


def cli_error(capsys) -> str:
    cap = capsys.readouterr()
    return one_line(cap.err)


class Interrupt(BaseException):
    """Stops a run in this process the way Ctrl-C would (nothing in the library catches it)."""


class StopAt(OracleEvaluator):
    """The plain oracle (so stored and rebuilt as ``oracle``) that raises ``exc`` on call ``at``."""

    at: int = 10**9
    exc: BaseException = Interrupt()

    def evaluate(self, space, arch, **kw):
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls == self.at:
            raise self.exc
        return super().evaluate(space, arch, **kw)


def stop_at(at: int, exc: BaseException | None = None) -> StopAt:
    ev = StopAt()
    ev.at = at
    if exc is not None:
        ev.exc = exc
    return ev


def interrupted(path: Path, at: int = 5, **kw) -> Path:
    """An oracle run stopped at its ``at``-th evaluation (``at - 1`` records, state mid-round)."""
    s = child.build("oracle", path, **kw)
    s.evaluator = stop_at(at)
    with pytest.raises(Interrupt):
        s.run()
    return path


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """Uninterrupted runs of both tiny searches: ``mode -> (rows, ensemble, run_dir)``."""
    base = tmp_path_factory.mktemp("ref")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = {}
        for mode in ("oracle", "train"):
            res = child.build(mode, base / mode).run()
            out[mode] = (all_rows(base / mode), res.ensemble, base / mode)
    finally:
        torch.set_num_threads(n)
    return out


# ------------------------------------------------------------------------------------------------
# 1. kill -9 anywhere, then resume
# ------------------------------------------------------------------------------------------------
#: (id, mode, patched call, n-th call, before / after / torn)
KILL_POINTS = [
    ("oracle-inside-first-snapshot", "oracle", "replace_state", 1, "before"),
    ("oracle-after-first-snapshot", "oracle", "write_state", 1, "after"),
    ("oracle-after-record-1", "oracle", "append", 1, "after"),
    ("oracle-mid-round", "oracle", "append", 5, "after"),  # round 1: 2 of 3 recorded
    ("oracle-after-plan-snapshot", "oracle", "write_state", 4, "after"),  # round 1 planned
    ("oracle-torn-line", "oracle", "append", 4, "torn"),
    ("oracle-before-done", "oracle", "write_state", 8, "before"),
    ("train-after-baseline", "train", "append", 1, "after"),
    ("train-after-record-1", "train", "append", 2, "after"),
    ("train-mid-round", "train", "append", 4, "after"),  # round 1: 1 of 2 recorded
    ("train-after-round-snapshot", "train", "write_state", 3, "after"),
    ("train-torn-line", "train", "append", 3, "torn"),
    ("train-ensemble-phase", "train", "write_state", 6, "after"),  # phase: ensemble, no replica
    ("train-after-replica", "train", "append", 6, "after"),  # replica recorded, no ensemble yet
]


def _point_values(p):
    return p.values if hasattr(p, "values") else p


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    """Run every kill point in child processes; ``id -> (run_dir, {"signal", "exit"})``."""
    base = tmp_path_factory.mktemp("killed")
    runs = [{"id": i, "mode": m, "run_dir": str(base / i), "target": t, "n": n, "when": w}
            for i, m, t, n, w in map(_point_values, KILL_POINTS)]
    spec = base / "spec.json"
    spec.write_text(json.dumps({"runs": runs, "out": str(base / "out.json")}))
    proc = subprocess.run([sys.executable, str(HERE / "_search_child.py"), "kill", str(spec)],
                          cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads((base / "out.json").read_text())
    assert Path(out.pop("__prednas__")).is_relative_to(REPO), "the child imported other code"
    return {k: (base / k, v, proc.stderr) for k, v in out.items()}


@pytest.mark.parametrize("point, mode, target, n, when", KILL_POINTS)
def test_kill_9_then_resume(point, mode, target, n, when, killed, references, one_thread):
    path, status, err = killed[point]
    assert status == {"signal": 9, "exit": None}, f"{point} was not killed: {status}\n{err}"
    ref_rows, ref_ensemble, _ = references[mode]
    if not (path / "state.json").exists():  # killed before the first snapshot landed
        with pytest.raises(RunDirectoryError) as info:
            Search.resume(path)
        assert "state.json" in one_line(info.value)
        res = child.build(mode, path).run()  # the same command again starts the run afresh
    else:
        if when == "torn":  # the half-written line is there, and resume must cope with it
            assert not (path / "evaluations.jsonl").read_bytes().endswith(b"\n")
        before = all_rows(path)
        res = Search.resume(path).run()
        assert set(before) <= set(all_rows(path)), "a completed record was lost or changed"
    check_clean(path)
    # exact: one CPU thread, fixed seeds; objectives are table values or accuracies on fixed splits
    assert all_rows(path) == ref_rows
    assert rows(res.records) == [r for r in ref_rows if r[0] == "candidate"]
    if mode == "train":
        assert res.ensemble is not None
        drop = ("path",)
        assert ({k: v for k, v in res.ensemble.items() if k not in drop}
                == {k: v for k, v in ref_ensemble.items() if k not in drop})
        assert (path / "ensemble.pt").exists()
    assert (path / "report.md").exists()


# ------------------------------------------------------------------------------------------------
# 2. two processes on one run directory
# ------------------------------------------------------------------------------------------------
def test_second_process_is_refused_while_the_first_runs(tmp_path):
    path, ready, go = tmp_path / "run", tmp_path / "ready", tmp_path / "go"
    holder = subprocess.Popen([sys.executable, str(HERE / "_search_child.py"), "hold", str(path),
                               str(ready), str(go)], cwd=REPO, env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert holder.poll() is None, holder.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the holding child never started evaluating"
            time.sleep(0.05)
        before = (path / "evaluations.jsonl").read_bytes()
        assert len(before.splitlines()) == 1
        with pytest.raises(RunDirectoryError) as info:
            Search.resume(path).run()
        assert f"pid {holder.pid}" in one_line(info.value)
        cli = subprocess.run([sys.executable, "-m", "prednas", "search", "--resume", str(path)],
                             cwd=REPO, env=_env(), capture_output=True, text=True, timeout=120)
        assert cli.returncode == 2, cli.stderr
        assert len(cli.stderr.strip().splitlines()) == 1, cli.stderr
        assert f"pid {holder.pid}" in cli.stderr and "in use" in cli.stderr
        assert (path / "evaluations.jsonl").read_bytes() == before
    finally:
        go.touch()
        out, err = holder.communicate(timeout=120)
    assert holder.returncode == 0, err[-3000:]
    lines = check_clean(path)
    assert len(lines) == 6 and len({x["canonical"] for x in lines}) == 6
    assert not (path / ".owner.json").exists()


# ------------------------------------------------------------------------------------------------
# 3. bad input leaves nothing behind
# ------------------------------------------------------------------------------------------------
@pytest.fixture
def garbage_prior(tmp_path) -> Path:
    p = tmp_path / "garbage.pred"
    p.write_bytes(b"\x00\x01 this is not a predictor file \xff" * 10)
    return p


@pytest.mark.parametrize("case, argv, named", [
    ("metric", ["--bench", "nb201", "--metric", "no_such_metric"], "'no_such_metric'"),
    ("prior-garbage", ["--bench", "nb201", "--prior", "{garbage}"], "garbage.pred"),
    ("prior-missing", ["--bench", "nb201", "--prior", "{missing}"], "missing.pred"),
    ("prior-garbage-train", ["--task", "synthetic", "--task-opt", "n=64", "--steps", "2",
                             "--warmup-seconds", "0", "--prior", "{garbage}"], "garbage.pred"),
    ("negative-seed", ["--bench", "nb201", "--seed", "-1"], "'seed'"),
    ("budget-zero", ["--bench", "nb201", "--budget", "0"], "'--budget'"),
    ("strategy", ["--bench", "nb201", "--strategy", "evolution"], "'evolution'"),
])
def test_cli_bad_input_leaves_nothing(case, argv, named, tmp_path, garbage_prior, capsys,
                                      one_thread):
    out = tmp_path / "a" / "b" / "run"
    argv = [a.format(garbage=garbage_prior, missing=tmp_path / "missing.pred") for a in argv]
    assert main(["search", *argv, "--out", str(out)]) == 2
    err = cli_error(capsys)
    assert err.startswith("prednas search: error:") and named in err
    assert not (tmp_path / "a").exists()


def _api_cases(bench, tmp_path, garbage):
    xgb = PredictorFilter(proxy_table=None, prior=garbage)
    return {
        "metric": lambda out: Search("nb201", oracle=bench, metric="no_such_metric", run_dir=out),
        "evaluator-metric": lambda out: Search("nb201", oracle=bench, run_dir=out, budget=3,
                                               evaluator=OracleEvaluator(metric="nope")).run(),
        "prior-garbage": lambda out: Search("nb201", oracle=bench, run_dir=out, budget=3,
                                            filter=xgb).run(),
        "prior-missing": lambda out: Search(
            "nb201", oracle=bench, run_dir=out, budget=3,
            filter=PredictorFilter(proxy_table=None, prior=tmp_path / "missing.pred")).run(),
        "negative-seed": lambda out: Search("nb201", oracle=bench, seed=-1, run_dir=out),
        "budget-zero": lambda out: Search("nb201", oracle=bench, budget=0, run_dir=out),
        "strategy-not-a-strategy": lambda out: Search("nb201", oracle=bench, mutator="random",
                                                      run_dir=out),
    }


@pytest.mark.parametrize("case, named", [
    ("metric", "'no_such_metric'"), ("evaluator-metric", "'nope'"),
    ("prior-garbage", "garbage.pred"), ("prior-missing", "missing.pred"),
    ("negative-seed", "'seed'"), ("budget-zero", "'budget'"),
    ("strategy-not-a-strategy", "'mutator'")])
def test_api_bad_input_leaves_nothing(case, named, bench, tmp_path, garbage_prior):
    out = tmp_path / "a" / "b" / "run"
    with pytest.raises(PredNASError) as info:
        _api_cases(bench, tmp_path, garbage_prior)[case](out)
    assert named in one_line(info.value)
    assert not (tmp_path / "a").exists()


def test_api_bad_input_leaves_no_temp_dir(bench, tmp_path, garbage_prior, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(PredNASError):
        Search("nb201", oracle=bench, budget=3,
               filter=PredictorFilter(proxy_table=None, prior=garbage_prior)).run()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage.pred"]


# ------------------------------------------------------------------------------------------------
# 4. read-only run directory
# ------------------------------------------------------------------------------------------------
def test_read_only_run_dir(tmp_path):
    path = interrupted(tmp_path / "run")
    modes = {p: p.stat().st_mode for p in [path, *path.rglob("*")]}
    for p in [*path.rglob("*"), path]:
        p.chmod(stat.S_IMODE(modes[p]) & ~0o222)
    try:
        if os.access(path, os.W_OK) or os.access(path / "evaluations.jsonl", os.W_OK):
            pytest.skip("running as root: chmod does not stop this process writing (the "
                        "permission checks are covered by test_unwritable_evaluations_file)")
        before = snapshot(path)
        with pytest.raises(RunDirectoryError, match="not writable") as info:
            Search.resume(path).run()
        one_line(info.value)
        assert snapshot(path) == before
    finally:
        for p, m in modes.items():
            p.chmod(stat.S_IMODE(m))


@pytest.mark.parametrize("what", ["evaluations.jsonl", "directory"])
def test_unwritable_evaluations_file(what, tmp_path, monkeypatch):
    """``os.access`` says the file (or the directory) is read-only, as for a non-root user."""
    path = interrupted(tmp_path / "run")
    target = path / "evaluations.jsonl" if what != "directory" else path
    real = os.access

    def access(p, mode, *a, **kw):
        if Path(p) == target and mode & os.W_OK:
            return False
        return real(p, mode, *a, **kw)

    before = snapshot(path)
    monkeypatch.setattr(os, "access", access)
    with pytest.raises(RunDirectoryError, match="not writable") as info:
        RunDir.open(path)
    assert str(target.name) in one_line(info.value)
    with pytest.raises(RunDirectoryError, match="not writable"):
        Search.resume(path).run()
    assert snapshot(path) == before
    monkeypatch.setattr(os, "access", real)
    rd, state, records = RunDir.open(path)  # the refused attempts left no lock behind
    rd.release()
    assert len(records) == 4 and state["done"] is False


# ------------------------------------------------------------------------------------------------
# 5. hand-edited state.json
# ------------------------------------------------------------------------------------------------
def _edit(state: dict, case: str) -> None:
    strategies = state["config"]["strategies"]
    if case == "round-string":
        state["round"] = str(state["round"])
    elif case == "negative-seed":
        state["seed"] = -1
    elif case == "plan-malformed":
        state["plan"] = {"round": state["round"], "candidates": "|nor_conv_3x3~0|"}
    elif case == "config-without-budget":
        del state["config"]["budget"]
    elif case == "unregistered-strategy":
        strategies["mutator"]["name"] = "no_such_mutator"
    elif case == "parameter-out-of-range":
        strategies["filter"]["params"]["survivors"] = 0
    elif case == "strategy-not-an-object":
        strategies["filter"] = "predictor"
    elif case == "budget-not-an-int":
        state["config"]["budget"] = "nine"


_STATE_CASES = ["round-string", "negative-seed", "plan-malformed", "config-without-budget",
                "unregistered-strategy", "parameter-out-of-range",
                "strategy-not-an-object", "budget-not-an-int"]


@pytest.fixture(scope="module")
def interrupted_run(tmp_path_factory) -> Path:
    return interrupted(tmp_path_factory.mktemp("interrupted") / "run")


@pytest.mark.parametrize("via", ["api", "cli"])
@pytest.mark.parametrize("case", _STATE_CASES)
def test_hand_edited_state(case, via, interrupted_run, tmp_path, capsys, one_thread):
    path = tmp_path / "run"
    shutil.copytree(interrupted_run, path)
    st = path / "state.json"
    state = json.loads(st.read_text())
    _edit(state, case)
    st.write_text(json.dumps(state, indent=2))
    before = snapshot(path)
    if via == "api":
        with pytest.raises(RunDirectoryError) as info:
            Search.resume(path).run()
        msg = one_line(info.value)
    else:
        assert main(["search", "--resume", str(path)]) == 2
        msg = cli_error(capsys)
        assert msg.startswith("prednas search: error:")
    assert "state.json" in msg or "the run's" in msg
    assert snapshot(path) == before


# ------------------------------------------------------------------------------------------------
# 6. strict resume
# ------------------------------------------------------------------------------------------------
def test_unstorable_predictor_is_refused_at_construction(bench, tmp_path):
    from sklearn.linear_model import Ridge

    out = tmp_path / "run"
    with pytest.raises(InvalidParameterError) as info:
        Search("nb201", oracle=bench, filter=PredictorFilter(predictor=Ridge()), run_dir=out)
    msg = one_line(info.value)
    assert "'predictor' parameter of PredictorFilter" in msg and "Ridge" in msg
    assert not out.exists()


def test_registered_predictor_is_stored_and_rebuilt_equal(tmp_path):
    path = tmp_path / "run"
    s = child.build("oracle", path)
    interrupted(path)
    again = Search.resume(path)
    assert again.filter.describe() == s.filter.describe()
    assert again.filter.describe()["params"]["predictor"]["__predictor__"]["name"] == "xgb"
    assert type(again.filter.predictor) is type(s.filter.predictor)
    assert again.filter.predictor.get_params() == s.filter.predictor.get_params()
    assert again.filter.predictor.get_params()["n_estimators"] == 20


@pytest.mark.parametrize("key", ["filter", "seed"])
def test_resume_refuses_a_different_search(key, tmp_path):
    import predictors

    path = interrupted(tmp_path / "run")
    other = {"filter": PredictorFilter(predictor=predictors.get("xgb", n_estimators=30),
                                       proxy_table=None, min_fit=3),
             "seed": 6}[key]
    before = snapshot(path)
    with pytest.raises(RunDirectoryError) as info:
        Search.resume(path, **{key: other})
    msg = one_line(info.value)
    assert f"{key} differs" in msg
    assert ("n_estimators: 30 given, 20 recorded" in msg) if key == "filter" else (
        "6 given, 5 recorded" in msg)
    assert snapshot(path) == before


def test_resume_accepts_the_recorded_seed(interrupted_run):
    assert Search.resume(interrupted_run, seed=5).seed == 5
    with pytest.raises(RunDirectoryError, match="6 given, 5 recorded"):
        Search.resume(interrupted_run, seed=6)


def test_resume_with_a_larger_budget_continues_to_it(tmp_path, references):
    path = interrupted(tmp_path / "run", budget=6)
    res = Search.resume(path, budget=9).run()
    assert len(res.records) == 9
    check_clean(path)
    assert all_rows(path) == references["oracle"][0]  # as if it had been 9 from the start


def test_a_larger_budget_is_recorded(tmp_path, monkeypatch):
    path = interrupted(tmp_path / "run", budget=6)
    real = RunDir.write_state

    def stop_after_round_1(self, state):  # interrupted again, right after round 1's snapshot
        real(self, state)
        if state["round"] == 2 and state["plan"] is None:
            raise Interrupt()

    monkeypatch.setattr(RunDir, "write_state", stop_after_round_1)
    with pytest.raises(Interrupt):
        Search.resume(path, budget=9).run()
    monkeypatch.setattr(RunDir, "write_state", real)
    assert len(Search.resume(path).run().records) == 9
    assert Search.resume(path).budget == 9


def test_finished_run_resumed_with_a_larger_budget_continues(tmp_path, references):
    path = tmp_path / "run"
    assert len(child.build("oracle", path, budget=6).run().records) == 6
    res = Search.resume(path, budget=9).run()
    assert len(res.records) == 9
    assert all_rows(path) == references["oracle"][0]


# ------------------------------------------------------------------------------------------------
# 7. failures show
# ------------------------------------------------------------------------------------------------
def test_undeclared_error_stops_the_run_resumably(tmp_path, references):
    path = tmp_path / "run"
    s = child.build("oracle", path)
    s.evaluator = stop_at(4, KeyError("a bug in the evaluator"))
    with pytest.raises(KeyError, match="a bug in the evaluator"):
        s.run()
    lines = [json.loads(x) for x in (path / "evaluations.jsonl").read_text().splitlines()]
    assert [x["status"] for x in lines] == ["ok"] * 3  # not turned into a failed record
    assert not (path / ".owner.json").exists()  # the lock was given back
    Search.resume(path).run()
    check_clean(path)
    assert all_rows(path) == references["oracle"][0]


def test_candidate_error_is_recorded_and_the_search_goes_on(tmp_path):
    class SomeFail(OracleEvaluator):
        def evaluate(self, space, arch, **kw):
            self.calls = getattr(self, "calls", 0) + 1
            if self.calls in (2, 5):
                raise CandidateError(f"simulated crash {self.calls}", status="crashed")
            return super().evaluate(space, arch, **kw)

    s = child.build("oracle", tmp_path / "run")
    s.evaluator = SomeFail()
    res = s.run()
    assert len(res.records) == 9
    failed = sorted((r for r in res.records if not r.ok), key=lambda r: r.query)
    assert [r.status for r in failed] == ["crashed", "crashed"]
    assert [r.reason for r in failed] == ["CandidateError: simulated crash 2",
                                          "CandidateError: simulated crash 5"]
    assert all(math.isnan(r.objective) for r in failed)
    assert res.best.ok
    report = (tmp_path / "run" / "report.md").read_text()
    assert "simulated crash 2" in report and "simulated crash 5" in report


def test_unknown_warmup_option_is_a_clear_error(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(InvalidParameterError, match="no_such_option"):
        Search("blocks1d", task="synthetic", task_options={"n": 64, "seed": 0}, budget=2,
               per_round=2, ensembler=False, run_dir=out, device="cpu",
               evaluator=prednas.search.TrainingEvaluator(steps=2, device="cpu"),
               filter=PredictorFilter(proxy_table=None, supernet="auto",
                                      warmup_kwargs={"no_such_option": 1, "steps": 2})).run()
    assert not out.exists()


def test_diverged_warmup_is_reported_and_the_search_goes_on(tmp_path, monkeypatch, one_thread):
    from prednas.supernet import WarmupDiverged

    calls = []

    def diverge(*args, **kwargs):
        calls.append(kwargs)
        raise WarmupDiverged("the supernet warm-up diverged: 12 non-finite losses by step 11")

    monkeypatch.setattr(prednas, "warmup", diverge)
    res = Search("blocks1d", task="synthetic", task_options={"n": 64, "seed": 0}, budget=2,
                 per_round=2, ensembler=False, run_dir=tmp_path / "run", device="cpu", seed=0,
                 evaluator=prednas.search.TrainingEvaluator(steps=2, batch_size=32, device="cpu"),
                 filter=PredictorFilter(proxy_table=None, supernet="auto")).run()
    assert len(calls) == 1
    assert len(res.records) == 2 and all(r.ok for r in res.records)
    report = (tmp_path / "run" / "report.md").read_text()
    assert "warm-up diverged" in report and "without it" in report


# ------------------------------------------------------------------------------------------------
# 8. the report
# ------------------------------------------------------------------------------------------------
def test_report_has_no_built_in_targets(references):
    report = (references["train"][2] / "report.md").read_text()
    # the sections where targets used to be printed are there
    assert "## Against the baseline" in report and "## Ensemble" in report
    for banned in ("60%", "+0.30", "target"):
        assert banned not in report.lower(), banned


@pytest.mark.parametrize("pyplot_first", [False, True])
def test_report_keeps_the_matplotlib_backend(pyplot_first, tmp_path):
    import matplotlib

    if pyplot_first:
        import matplotlib.pyplot  # noqa: F401
    old = matplotlib.get_backend()
    matplotlib.use("svg")  # not the Agg a report could force
    try:
        before = matplotlib.get_backend()
        res = child.build("oracle", tmp_path / "run", budget=3,
                          filter=NoFilter()).run()
        assert (res.run_dir / "best_so_far.png").exists()
        assert matplotlib.get_backend() == before == "svg"
    finally:
        matplotlib.use(old)
