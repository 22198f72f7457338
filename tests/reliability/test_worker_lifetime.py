"""Pool workers die with their driver: after a ``kill -9`` of the process that owns a
:class:`~prednas.search.PoolExecutor` (a search, a pipeline stage), no worker of it — and not the
multiprocessing resource tracker either — is alive 5 s later.

Every process here is started by this test (the drivers) or by those drivers (their workers);
only those, by pid, are ever signalled.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from prednas._parent_watch import die_with_parent

REPO = Path(__file__).resolve().parents[2]
LINUX = sys.platform.startswith("linux")
DEADLINE = 5.0

pytestmark = pytest.mark.skipif(not LINUX, reason="reads the process table from /proc")


def _env() -> dict:
    old = os.environ.get("PYTHONPATH")
    return dict(os.environ, PYTHONPATH=str(REPO) + (os.pathsep + old if old else ""),
                OMP_NUM_THREADS="1")


def _stat(pid: int) -> tuple[int, str, str] | None:
    """``(parent pid, state, start time)`` of a live process; ``None`` when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "
    return int(fields[1]), fields[0], fields[19]


def _descendants(pid: int) -> dict[int, str]:
    """Every live descendant of ``pid``: pid -> start time (to tell a reused pid apart)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (st := _stat(int(entry.name))) is not None:
            table[int(entry.name)] = st
    out: dict[int, str] = {}
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, (ppid, _, start) in table.items():
            if ppid == parent and child not in out:
                out[child] = start
                frontier.append(child)
    return out


def _alive(procs: dict[int, str]) -> list[int]:
    """Those of ``procs`` still running (a zombie has ended: it only waits to be reaped)."""
    return [p for p, start in procs.items()
            if (st := _stat(p)) is not None and st[2] == start and st[1] != "Z"]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _workers(driver: int, kids: dict[int, str]) -> list[int]:
    """The pool workers among ``kids``: spawned or forked by the driver, or by its fork server
    (the resource tracker and the fork server are not workers)."""
    def helper(pid: int) -> bool:
        return any(w in _cmdline(pid) for w in ("resource_tracker", "forkserver import main"))

    servers = {p for p in kids if _stat(p) and _stat(p)[0] == driver and "forkserver" in _cmdline(p)}
    return [p for p in kids if (st := _stat(p)) is not None
            and (st[0] in servers or (st[0] == driver and not helper(p)))]


def _cpu_seconds(pid: int) -> float:
    """CPU time the process has used (user + system)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _kill_and_time(driver: subprocess.Popen, workers_wanted: int, timeout: float) -> float:
    """Wait until ``driver`` runs ``workers_wanted`` pool workers, ``kill -9`` it, and return the
    seconds until none of its descendants is alive (those left are killed, by pid, after the
    test has seen them outlive the deadline)."""
    t0 = time.monotonic()
    kids: dict[int, str] = {}
    while time.monotonic() - t0 < timeout:
        assert driver.poll() is None, f"the driver ended early: {driver.communicate()}"
        kids = _descendants(driver.pid)
        workers = _workers(driver.pid, kids)
        if len(workers) >= workers_wanted and all(_cpu_seconds(p) > 2 for p in workers):
            break  # each has started (imported torch) and works
        time.sleep(0.2)
    else:
        driver.kill()
        pytest.fail(f"the driver did not start {workers_wanted} workers in {timeout:.0f} s")
    kids = _descendants(driver.pid)  # the resource tracker too, when there is one
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    t_kill = time.monotonic()
    while _alive(kids) and time.monotonic() - t_kill < 3 * DEADLINE:
        time.sleep(0.1)
    took = time.monotonic() - t_kill
    left = _alive(kids)
    for p in left:  # only the descendants of our own driver, by pid
        os.kill(p, signal.SIGKILL)
    assert not left, (f"{len(left)} of the driver's processes outlived it by {took:.1f} s: "
                      f"{[_cmdline(p)[:80] for p in left]}")
    return took


_DRIVER = textwrap.dedent("""
    import sys, time

    def spin(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            sum(i * i for i in range(10_000))
        return seconds

    if __name__ == "__main__":  # as the prednas command: spawned workers re-import none of it
        from prednas.search import PoolExecutor

        ex = PoolExecutor(workers=2, start_method=sys.argv[1])
        jobs = [(i, (600,), {}) for i in range(4)]
        for key, result in ex.map_unordered(spin, jobs):
            print(key, result, flush=True)
""")


@pytest.mark.slow  # ~15-30 s each; the search below is the default run's real reproduction
@pytest.mark.parametrize("start_method", ["spawn", "fork", "forkserver"])
def test_pool_workers_die_within_5s_of_their_owners_kill_9(start_method, tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(_DRIVER)
    driver = subprocess.Popen([sys.executable, str(script), start_method], env=_env(),
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert _kill_and_time(driver, 2, timeout=60) < DEADLINE


def test_search_pool_workers_die_within_5s_of_a_kill_9(tmp_path):
    """The reproduction of issue 21: ``prednas search --executor pool --workers 2``, killed
    while it trains (its baseline first: one worker, started on demand)."""
    cmd = [sys.executable, "-m", "prednas", "search", "--executor", "pool", "--workers", "2",
           "--task", "synthetic", "--task-opt", "n=64", "--steps", "100000", "--budget", "4",
           "--replicas", "0", "--param-cap", "0", "--out", str(tmp_path / "run")]
    driver = subprocess.Popen(cmd, env=_env(), cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    took = _kill_and_time(driver, 1, timeout=90)
    assert took < DEADLINE


def test_watchdog_ends_a_process_whose_parent_dies(tmp_path):
    """Without the kernel's signal (a pool started from another thread; not Linux), the watchdog
    thread alone ends the orphan."""
    code = textwrap.dedent("""
        import os, subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", (
            "import time; from prednas._parent_watch import die_with_parent; "
            "die_with_parent(kernel_signal=False); print('ready', flush=True); time.sleep(600)")],
            stdout=subprocess.PIPE)
        child.stdout.readline()
        print(child.pid, flush=True)
        time.sleep(600)
    """)
    middle = subprocess.Popen([sys.executable, "-c", code], env=_env(), stdout=subprocess.PIPE)
    pid = int(middle.stdout.readline())
    kids = {pid: _stat(pid)[2]}
    os.kill(middle.pid, signal.SIGKILL)
    middle.wait()
    t0 = time.monotonic()
    while _alive(kids) and time.monotonic() - t0 < 3 * DEADLINE:
        time.sleep(0.1)
    left = _alive(kids)
    for p in left:
        os.kill(p, signal.SIGKILL)
    assert not left and time.monotonic() - t0 < DEADLINE


def test_die_with_parent_refuses_a_worker_whose_owner_is_already_gone():
    """A worker that starts after its owner died ends at once (its parent is not the owner)."""
    code = ("import os; from prednas._parent_watch import die_with_parent; "
            "die_with_parent(os.getppid() + 10**6); print('still alive')")
    out = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == -signal.SIGKILL and "still alive" not in out.stdout
    assert callable(die_with_parent)
