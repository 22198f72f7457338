"""``prednas dashboard RUN``: serves the run's trials over HTTP (live while a search writes), bad
input is one line and exit 2 with the run untouched; a real headless Chromium (slow) sees them."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import predictors
from prednas.cli import main
from prednas.commands import dashboard
from prednas.search import MutationMutator, PredictorFilter, Search

pytest.importorskip("optuna_dashboard", reason="the dashboard extra: pip install prednas[dashboard]")

REPO = Path(__file__).resolve().parents[2]
OBJ = ["cifar10_test_200ep", "params"]


def env() -> dict:
    return {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def small_search(path: Path, budget: int = 10, **kw) -> Search:
    return Search("nb201", oracle="nb201", seed=2, run_dir=path, budget=budget, per_round=5,
                  mutator=MutationMutator(parents=3, mutations=60),
                  filter=PredictorFilter(predictor=predictors.get("xgb", n_estimators=20),
                                         proxy_table=None, min_fit=3), **kw)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("dash") / "run"
    small_search(path).run()
    return path


def records(path: Path) -> list[dict]:
    return [json.loads(x) for x in (path / "evaluations.jsonl").read_text().splitlines()
            if x.strip()]


def snapshot(path: Path) -> dict:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file()}


class Served:
    """``prednas dashboard RUN --port 0`` in a subprocess, its URL read from its first line."""

    def __init__(self, run: Path, *args: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "prednas", "dashboard", str(run), "--port", "0", *args],
            env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(self.proc.stdout.readline()),
                                  daemon=True)
        reader.start()
        reader.join(timeout=180)
        if not lines or not lines[0]:
            self.stop()
            pytest.fail(f"the dashboard printed no URL: {self.proc.stderr.read()}")
        self.line = lines[0]
        m = re.search(r"(http://127\.0\.0\.1:\d+)/dashboard/", self.line)
        assert m, self.line
        self.base = m.group(1)

    def get(self, path: str):
        with urllib.request.urlopen(self.base + path, timeout=30) as r:
            body = r.read()
            return json.loads(body) if path.startswith("/api/") else body.decode()

    def trials(self) -> list[dict]:
        return self.get("/api/studies/0")["trials"]

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.stderr.read() if self.proc.stderr else ""


# ------------------------------------------------------------------------------------------------
# HTTP
# ------------------------------------------------------------------------------------------------
def test_http_serves_the_runs_trials(finished):
    served = Served(finished)
    try:
        assert "trials so far" in served.line
        studies = served.get("/api/studies")["study_summaries"]
        assert [s["study_name"] for s in studies] == ["prednas-search"]
        detail = served.get("/api/studies/0")
        recs = records(finished)
        assert len(detail["trials"]) == len(recs)
        for t, r in zip(detail["trials"], recs):
            assert t["number"] == next(int(a["value"]) for a in t["user_attrs"]
                                       if a["key"] == "record")
            assert t["state"] == ("Complete" if r["status"] == "ok" else "Fail")
            if r["status"] == "ok":
                assert t["values"] == [r["objective"]]
            arch = next(a["value"] for a in t["user_attrs"] if a["key"] == "arch")
            assert arch == r["arch"]
            assert {p["name"] for p in t["params"]} == {f"edge_{j}_{i}" for i, j in (
                (1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))}
        assert "prednas search" in detail["note"]["body"]  # the prednas views
        ids = {g["id"] for g in detail["plotly_graph_objects"]}
        assert {"best-so-far", "predicted-vs-measured", "filter-signals"} <= ids
        assert "<html" in served.get("/dashboard/").lower()
    finally:
        served.stop()


WRITER = Path(__file__).resolve().parents[1] / "search" / "_writing_search.py"


def start_writer(path: Path, budget: int, delay: float, hold_at: int) -> subprocess.Popen:
    """A search in another process, ``delay`` seconds per evaluation, that holds after
    ``hold_at`` evaluations until the file ``path.with_suffix(".go")`` exists; returns then."""
    gate = path.with_suffix(".go")
    proc = subprocess.Popen([sys.executable, str(WRITER), str(path), str(budget), str(delay),
                             str(hold_at), str(gate)], env=env(), stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 180
    while not (path / "evaluations.jsonl").exists() or len(records(path)) < hold_at:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "the search recorded nothing"
        time.sleep(0.1)
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_http_live_while_a_search_writes(tmp_path):
    path = tmp_path / "run"
    writer = start_writer(path, budget=14, delay=0.1, hold_at=4)
    served = None
    try:
        served = Served(path)
        counts = [len(served.trials())]
        assert counts == [4] and "journal" in served.line  # the owner's journal, read as is
        path.with_suffix(".go").touch()
        deadline = time.monotonic() + 120
        while writer.poll() is None and time.monotonic() < deadline:
            counts.append(len(served.trials()))
            time.sleep(0.5)
        assert writer.wait(timeout=120) == 0
        time.sleep(1.0)
        counts.append(len(served.trials()))
        assert counts[-1] == len(records(path)) == 14, counts
        assert len(set(counts)) >= 2, counts  # it grew while being served
    finally:
        stop(writer)
        if served is not None:
            served.stop()


def test_never_writes_into_a_run_another_process_owns(finished, tmp_path):
    """With the run's lock held elsewhere (as by a search) and no journal, the trials are served
    from the records read into memory, and not a byte of the run changes."""
    from filelock import FileLock

    path = tmp_path / "run"
    shutil.copytree(finished, path)
    (path / "study.log").unlink()
    lock = FileLock(str(path / ".lock"), timeout=0)
    lock.acquire()
    try:
        before = snapshot(path)
        served = Served(path)
        try:
            assert "in memory" in served.line
            assert len(served.trials()) == len(records(path))
            with pytest.raises(urllib.error.HTTPError):  # the UI cannot write either
                req = urllib.request.Request(served.base + "/api/studies/0/note", method="PUT",
                                             data=json.dumps({"version": 1, "body": "x"}).encode(),
                                             headers={"Content-Type": "application/json"})
                urllib.request.urlopen(req, timeout=30)
        finally:
            served.stop()
        assert snapshot(path) == before
    finally:
        lock.release()


# ------------------------------------------------------------------------------------------------
# bad input: one line, exit 2, the run untouched
# ------------------------------------------------------------------------------------------------
def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("prednas dashboard: error:") and "\n" not in err, err
    return err


def test_not_a_run_directory(tmp_path, capsys):
    (tmp_path / "x").mkdir()
    assert main(["dashboard", str(tmp_path / "x"), "--port", "0"]) == 2
    assert "not a prednas search run" in one_line_error(capsys)
    assert list((tmp_path / "x").iterdir()) == []
    assert main(["dashboard", str(tmp_path / "missing"), "--port", "0"]) == 2
    one_line_error(capsys)


def test_study_that_disagrees_with_the_records(finished, tmp_path, capsys):
    path = tmp_path / "run"
    shutil.copytree(finished, path)
    rec = records(path)[1]
    text = (path / "study.log").read_text()
    (path / "study.log").write_text(text.replace(json.dumps(rec["objective"]),
                                                 json.dumps(rec["objective"] - 3.0), 1))
    before = snapshot(path)
    assert main(["dashboard", str(path), "--port", "0"]) == 2
    assert "disagrees with evaluations.jsonl" in one_line_error(capsys)
    assert snapshot(path) == before


def test_port_in_use(finished, tmp_path, capsys):
    path = tmp_path / "run"
    shutil.copytree(finished, path)
    (path / "study.log").unlink()  # nothing may be rebuilt before the port is known to be free
    before = snapshot(path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["dashboard", str(path), "--port", str(port)]) == 2
    assert f"port {port} on 127.0.0.1 is in use" in one_line_error(capsys)
    assert snapshot(path) == before


def test_missing_extra(finished, tmp_path, capsys, monkeypatch):
    path = tmp_path / "run"
    shutil.copytree(finished, path)
    before = snapshot(path)
    monkeypatch.setitem(sys.modules, "optuna_dashboard", None)  # import fails as if absent
    assert main(["dashboard", str(path), "--port", "0"]) == 2
    assert 'pip install "prednas[dashboard]"' in one_line_error(capsys)
    assert snapshot(path) == before


@pytest.mark.parametrize("port", ["-1", "65536", "http"])
def test_bad_port(finished, port, capsys):
    with pytest.raises(SystemExit) as info:
        main(["dashboard", str(finished), "--port", port])
    assert info.value.code == 2
    assert "--port" in capsys.readouterr().err


def test_host_other_than_loopback_warns(finished, capsys, monkeypatch):
    """Served in this process (stopped at once): the URL, and the warning for a network host."""
    real = dashboard._listen

    def listen(host, port):
        server = real("127.0.0.1", 0)  # never really exposed in a test
        server.serve_forever = lambda poll_interval=0.5: None
        return server

    monkeypatch.setattr(dashboard, "_listen", listen)
    assert main(["dashboard", str(finished), "--host", "0.0.0.0"]) == 0
    out = capsys.readouterr()
    assert re.search(r"at http://127\.0\.0\.1:\d+/dashboard/", out.out)
    assert "warning: listening on 0.0.0.0" in out.err and "readable" not in out.out
    assert main(["dashboard", str(finished)]) == 0
    assert "warning" not in capsys.readouterr().err
    assert dashboard._is_loopback("127.0.0.1") and dashboard._is_loopback("::1")
    assert dashboard._is_loopback("localhost") and not dashboard._is_loopback("0.0.0.0")
    assert not dashboard._is_loopback("example.org")


# ------------------------------------------------------------------------------------------------
# a real browser (headless Chromium from the system's packages)
# ------------------------------------------------------------------------------------------------
def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return name
    pytest.skip("no Chromium: apt-get install -y chromium")


def browse(url: str, *, screenshot: Path | None = None) -> str:
    """The page's text after its scripts ran (and a screenshot of it, tall enough to show the
    prednas figures below the dashboard's own)."""
    args = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--hide-scrollbars", "--window-size=1400,1700", "--virtual-time-budget=10000"]
    if screenshot is not None:
        subprocess.run(args + ["--window-size=1400,3300", f"--screenshot={screenshot}", url],
                       capture_output=True, timeout=180, check=True)
    dom = subprocess.run(args + ["--dump-dom", url], capture_output=True, text=True,
                         timeout=180, check=True).stdout
    dom = re.sub(r"<style[^>]*>.*?</style>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))


def trial_count(text: str) -> int:
    m = re.search(r"(\d+) Trials", text)
    assert m, text[:2000]
    return int(m.group(1))


@pytest.mark.slow
def test_browser_sees_a_finished_and_a_running_search(tmp_path):
    done = tmp_path / "done"
    small_search(done, budget=60, objectives=OBJ).run()
    served = Served(done)
    try:
        page = browse(f"{served.base}/dashboard/studies/0",
                      screenshot=REPO / "benchmarks" / "dashboard.png")
        assert "prednas-search" in page and "Best so far against time" in page
        assert "Pareto front" in page
        assert trial_count(browse(f"{served.base}/dashboard/studies/0/trials")) == 60
    finally:
        served.stop()
    running = tmp_path / "running"
    writer = start_writer(running, budget=60, delay=0.5, hold_at=6)
    served = None
    try:
        served = Served(running)
        assert trial_count(browse(f"{served.base}/dashboard/studies/0/trials")) == 6
        running.with_suffix(".go").touch()
        time.sleep(4)
        second = trial_count(browse(f"{served.base}/dashboard/studies/0/trials"))
        assert writer.poll() is None, "the search ended before the browser looked again"
        assert 6 < second < 60, second
    finally:
        stop(writer)
        if served is not None:
            served.stop()
    assert (REPO / "benchmarks" / "dashboard.png").stat().st_size > 10_000
