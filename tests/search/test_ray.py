"""RayExecutor on a real local Ray (2 CPUs, started once for the module): same records as in this
process, a killed worker retried without a duplicate or a lost evaluation, an evaluator's bug
propagating with its type, a killed head resumed, and one line when Ray is not installed."""

from __future__ import annotations

import json
import operator
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import prednas
from prednas.cli import main
from prednas.search import MutationMutator, NoFilter, OracleEvaluator, RayExecutor, Search, TrainingEvaluator

REPO = Path(__file__).resolve().parents[2]
BUDGET = 10


def small() -> dict:
    """The oracle search of this module (the child process in the head-kill test runs it too)."""
    return dict(budget=BUDGET, per_round=3, seed=11, filter=NoFilter(),
                mutator=MutationMutator(parents=3, mutations=60))


@pytest.fixture(scope="module")
def bench():
    return prednas.benchmarks.load("nb201")


@pytest.fixture(scope="module")
def ray_address():
    """A local Ray started by a RayExecutor (so its shutdown is tested); the other executors of the
    module join it and leave it running."""
    ray = pytest.importorskip("ray")
    assert not ray.is_initialized()
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the evaluators below
    starter = RayExecutor(workers=2, object_store_memory=100 * 2**20)
    try:
        assert sorted(starter.map_unordered(abs, [("a", (-1,), {}), ("b", (-2,), {})])) == [
            ("a", 1), ("b", 2)]
        yield ray.get_runtime_context().gcs_address
        starter.shutdown()
        assert not ray.is_initialized(), "the executor that started Ray shuts it down"
    finally:
        ray.shutdown()
        ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def summary(records):
    return [(r["round"], r["slot"], r["arch"], r["objective"])
            for r in sorted(records, key=lambda r: (r["round"], r["slot"]))]


def lines(run_dir: Path) -> list[dict]:
    path = run_dir / "evaluations.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module")
def reference(bench, tmp_path_factory):
    """The uninterrupted in-process oracle search the Ray runs are compared with."""
    run = tmp_path_factory.mktemp("ref") / "run"
    Search("nb201", oracle=bench, run_dir=run, **small()).run()
    return summary(lines(run))


def test_oracle_search_through_ray_equals_in_process(ray_address, bench, reference, tmp_path):
    import ray

    ex = RayExecutor(workers=2)
    Search("nb201", oracle=bench, run_dir=tmp_path / "run", executor=ex, **small()).run()
    assert summary(lines(tmp_path / "run")) == reference
    assert ray.is_initialized(), "an executor that joined Ray leaves it running"
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["config"]["strategies"]["executor"]["name"] == "ray"
    assert state["config"]["strategies"]["executor"]["params"]["workers"] == 2


def test_training_search_through_ray(ray_address, synthetic_task, tmp_path):
    res = Search("blocks1d", task=synthetic_task, evaluator=TrainingEvaluator(steps=3, device="cpu"),
                 budget=4, per_round=2, seed=2, ensembler=False, max_params=20000,
                 filter=NoFilter(), mutator=MutationMutator(parents=3, mutations=60),
                 run_dir=tmp_path / "run", executor=RayExecutor(workers=2)).run()
    assert len(res.records) == 4 and all(r.ok for r in res.records)
    assert len({(r.round, r.slot) for r in res.records}) == 4
    assert all(Path(r.get("weights")).is_file() for r in res.records)  # saved by the workers


def test_a_scheduler_runs_through_ray_taking_jobs_as_workers_free(ray_address, synthetic_task,
                                                                     tmp_path):
    """ASHA through Ray: the loop hands Ray a job only when a worker is free (a lazy job
    source), promotions continue from the checkpoint the worker saved, the pick trains fully."""
    from prednas.search import ASHAScheduler

    pulled, running = [], []

    class Watch(RayExecutor):
        name = "ray"

        def map_unordered(self, fn, jobs):
            def source():
                for job in jobs:
                    pulled.append(len(running))
                    running.append(job[0])
                    yield job
            for key, result in super().map_unordered(fn, source()):
                running.remove(key)
                yield key, result

    res = Search("blocks1d", task=synthetic_task, evaluator=TrainingEvaluator(steps=6, device="cpu"),
                 scheduler=ASHAScheduler(rungs=(2, 4, 6), reduction_factor=2), budget=2,
                 per_round=3, seed=2, ensembler=False, filter=NoFilter(),
                 mutator=MutationMutator(parents=3, mutations=30), run_dir=tmp_path / "run",
                 executor=Watch(workers=2)).run()
    recs = lines(tmp_path / "run")
    assert max(pulled) <= 1  # a job was taken only when fewer than two were running
    assert any(r["continued"] for r in recs) and all(r["continued"] for r in recs
                                                     if r["from_steps"])
    assert res.best is not None and res.best.get("fidelity") == 6


class SleepOnce(OracleEvaluator):
    """The first evaluation (in whichever worker gets it) writes its process id to ``pid_file``
    and sleeps until it is killed; every other one is a plain lookup."""

    name = "oracle"

    def __init__(self, benchmark=None, metric=None, pid_file: str = ""):
        super().__init__(benchmark, metric)
        self.pid_file = pid_file

    def evaluate(self, space, arch, **kw):
        try:
            fd = os.open(self.pid_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return super().evaluate(space, arch, **kw)
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        time.sleep(300)
        raise AssertionError("this worker should have been killed")

    def describe(self):
        return OracleEvaluator(self.benchmark, self.metric).describe()


def _kill_when_written(pid_file: Path, killed: list) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            pid = int(pid_file.read_text())
        except (FileNotFoundError, ValueError):  # not yet created, or created but not written
            time.sleep(0.05)
            continue
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)
        return


def test_worker_killed_mid_evaluation_is_retried_and_recorded_once(ray_address, bench, reference,
                                                                    tmp_path):
    pid_file = tmp_path / "worker.pid"
    killed: list[int] = []
    killer = threading.Thread(target=_kill_when_written, args=(pid_file, killed), daemon=True)
    killer.start()
    Search("nb201", oracle=bench, run_dir=tmp_path / "run",
           evaluator=SleepOnce(pid_file=str(pid_file)), executor=RayExecutor(workers=2),
           **small()).run()
    killer.join(5)
    assert killed and killed[0] != os.getpid()
    recs = lines(tmp_path / "run")
    assert len(recs) == BUDGET
    assert len({(r["round"], r["slot"]) for r in recs}) == len(recs)  # nothing twice
    assert summary(recs) == reference  # nothing lost: the killed evaluation was run again


class BuggyOracle(OracleEvaluator):
    """A bug: a KeyError on architectures with average pooling."""

    name = "oracle"

    def evaluate(self, space, arch, **kw):
        if "avg_pool_3x3" in str(arch):
            raise KeyError("a typo in the evaluator")
        return super().evaluate(space, arch, **kw)


def test_evaluator_bug_propagates_with_its_own_type(ray_address, bench, tmp_path):
    with pytest.raises(KeyError, match="typo") as info:
        Search("nb201", oracle=bench, run_dir=tmp_path / "run", evaluator=BuggyOracle(),
               executor=RayExecutor(workers=2), **small()).run()
    assert info.type is KeyError  # not a RayTaskError
    if sys.version_info >= (3, 11):
        assert "Ray worker" in "\n".join(info.value.__notes__)
    assert all(r["status"] == "ok" and "avg_pool" not in r["arch"]
               for r in lines(tmp_path / "run"))


def test_lost_result_is_submitted_again_within_the_bound(ray_address, monkeypatch):
    """Failures Ray does not retry itself (a result lost with its node) are resubmitted by the
    executor, at most ``max_retries`` times per job; each key is still yielded once."""
    import ray
    from ray.exceptions import ObjectLostError

    real_get, calls = ray.get, []

    def lose_first(ref, *a, **kw):
        calls.append(ref)
        if len(calls) == 1:
            raise ObjectLostError(ref.hex(), None, "")
        return real_get(ref, *a, **kw)

    monkeypatch.setattr(ray, "get", lose_first)
    jobs = [(i, (i,), {}) for i in range(5)]
    out = list(RayExecutor(max_retries=1).map_unordered(operator.neg, jobs))
    assert sorted(out) == [(i, -i) for i in range(5)] and len(calls) == 6

    def lose_all(ref, *a, **kw):
        calls.append(ref)
        raise ObjectLostError(ref.hex(), None, "")

    calls.clear()
    monkeypatch.setattr(ray, "get", lose_all)
    with pytest.raises(ObjectLostError):
        list(RayExecutor(workers=1, max_retries=2).map_unordered(operator.neg, jobs[:1]))
    assert len(calls) == 3  # the first try and two resubmissions


CHILD = """
import sys, time
from prednas.search import MutationMutator, NoFilter, OracleEvaluator, RayExecutor, Search

class SlowOracle(OracleEvaluator):
    def evaluate(self, space, arch, **kw):
        time.sleep(0.5)
        return super().evaluate(space, arch, **kw)

    def describe(self):  # the run records the plain oracle it stands for
        return OracleEvaluator(self.benchmark, self.metric).describe()

Search("nb201", oracle="nb201", run_dir=sys.argv[1], evaluator=SlowOracle(),
       executor=RayExecutor(address=sys.argv[2], workers=2), budget=10, per_round=3, seed=11,
       filter=NoFilter(), mutator=MutationMutator(parents=3, mutations=60)).run()
"""


def test_killed_head_resumes_in_process_with_the_same_records(ray_address, reference, tmp_path):
    run = tmp_path / "run"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(run), ray_address], cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 150
        while len(lines(run)) < 3 and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        child.kill()  # SIGKILL: no clean-up in the head
    finally:
        child.kill()
        _, err = child.communicate(timeout=60)
    n_killed = len(lines(run))
    assert 3 <= n_killed < BUDGET, err.decode()[-2000:]
    assert main(["search", "--resume", str(run), "--executor", "inprocess"]) == 0
    recs = lines(run)
    assert len(recs) == BUDGET
    assert summary(recs) == reference


def test_cli_builds_a_ray_executor(ray_address, tmp_path):
    from prednas.cli import build_parser
    from prednas.commands.search import _build
    from prednas.errors import InvalidParameterError

    parser = build_parser()
    argv = ["search", "--bench", "nb201", "--out", str(tmp_path / "r")]
    search = _build(parser.parse_args([*argv, "--ray-address", "auto", "--workers", "3"]))
    assert isinstance(search.executor, RayExecutor)
    assert (search.executor.address, search.executor.workers) == ("auto", 3)
    assert _build(parser.parse_args([*argv, "--executor", "ray"])).executor.address is None
    with pytest.raises(InvalidParameterError, match="--ray-address"):
        _build(parser.parse_args([*argv, "--executor", "pool", "--ray-address", "auto"]))


def test_cli_gpu_shares(ray_address, tmp_path, monkeypatch):
    import torch

    from prednas.cli import build_parser
    from prednas.commands.search import _build
    from prednas.errors import InvalidParameterError

    parser = build_parser()
    argv = ["search", "--task", "synthetic", "--executor", "ray", "--out", str(tmp_path / "r")]
    ex = _build(parser.parse_args([*argv, "--workers", "2", "--gpus-per-candidate", "0.25",
                                   "--ray-address", "auto"]))
    assert ex.executor.num_gpus == 0.25
    if not torch.cuda.is_available():  # no GPU here: no share asked by default
        assert _build(parser.parse_args(argv)).executor.num_gpus == 0
    # on a machine with CUDA the candidates evaluated at once share its GPU(s) by default
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert _build(parser.parse_args([*argv, "--gpus-per-candidate", "0.5"])
                  ).executor.num_gpus == 0.5
    assert _build(parser.parse_args([*argv, "--workers", "4"])).executor.num_gpus == 0.25
    assert _build(parser.parse_args([*argv, "--workers", "4", "--device", "cpu"])
                  ).executor.num_gpus == 0
    assert _build(parser.parse_args([*argv, "--workers", "4", "--ray-address", "auto"])
                  ).executor.num_gpus == 0  # a cluster's GPUs are not this machine's
    with pytest.raises(InvalidParameterError, match="--gpus-per-candidate goes with --executor ray"):
        _build(parser.parse_args(["search", "--task", "synthetic", "--executor", "pool",
                                  "--gpus-per-candidate", "0.5", "--out", str(tmp_path / "p")]))


def test_gpu_share_on_a_ray_without_gpus_is_refused_not_hung(ray_address, tmp_path, capsys):
    ray = pytest.importorskip("ray")
    if ray.cluster_resources().get("GPU", 0):
        pytest.skip("this Ray has a GPU: the request would be served")
    with pytest.raises(prednas.InvalidParameterError, match="has no GPU"):
        list(RayExecutor(num_gpus=0.5).map_unordered(abs, [("a", (-1,), {})]))
    out = tmp_path / "r"
    assert main(["search", "--task", "synthetic", "--executor", "ray", "--gpus-per-candidate",
                 "1", "--budget", "2", "--steps", "2", "--replicas", "0", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--gpus-per-candidate 0" in err, err


def test_without_ray_one_line_and_exit_2(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(prednas.InvalidParameterError, match=r'pip install "prednas\[ray\]"'):
        RayExecutor()
    out = tmp_path / "r"
    assert main(["search", "--bench", "nb201", "--executor", "ray", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and 'pip install "prednas[ray]"' in err, err
    assert not out.exists()
