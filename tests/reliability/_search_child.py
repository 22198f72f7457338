"""Child process of ``test_search_faults.py``: tiny searches that die by SIGKILL at a chosen point.

Two uses, both started with ``sys.executable`` and ``PYTHONPATH`` = the repository root:

``python _search_child.py kill SPEC.json``
    ``SPEC`` is ``{"runs": [{"id", "mode", "run_dir", "target", "n", "when"}], "out": PATH}``.
    The process imports torch and prednas once, then forks one fresh process per run (paying the
    imports once, not once per kill point); that process patches ``RunDir.append`` /
    ``RunDir.write_state`` / ``os.replace`` so that it sends itself SIGKILL right before or after
    their ``n``-th call (``when``: ``"before"``, ``"after"``, or ``"torn"``: half of the record's
    line is written, then the kill), and runs :func:`build` ``(mode, run_dir)``. ``out`` receives
    ``{id: {"signal": N or null, "exit": N or null}}`` and the ``prednas`` module file used.

``python _search_child.py hold RUN_DIR READY GO``
    Runs :func:`build` ``("oracle", RUN_DIR, filter=NoFilter())`` whose second evaluation blocks
    (holding the run directory's lock) after touching ``READY``, until ``GO`` exists.

No test hook lives in the library: everything is patched here, in the child only.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

TRAIN_TASK = {"n": 128, "seed": 0}
TRAIN_BASELINE = "conv3:16|conv3:16"


def build(mode: str, run_dir, **overrides):
    """The tiny search of ``mode`` (``"oracle"``: NB201 lookups; ``"train"``: the synthetic task)
    that the kill tests interrupt and compare with an uninterrupted reference."""
    import predictors
    from prednas.search import (
        MutationMutator,
        PredictorFilter,
        ReplicaEnsembler,
        Search,
        TrainingEvaluator,
    )

    xgb = predictors.get("xgb", n_estimators=20)
    if mode == "oracle":
        kw = dict(oracle="nb201", budget=9, per_round=3, seed=5,
                  mutator=MutationMutator(parents=3, mutations=60),
                  filter=PredictorFilter(predictor=xgb, proxy_table=None, min_fit=3))
        kw.update(overrides)
        return Search("nb201", run_dir=run_dir, **kw)
    kw = dict(task="synthetic", task_options=dict(TRAIN_TASK), budget=4, per_round=2, seed=0,
              evaluator=TrainingEvaluator(steps=3, batch_size=32, device="cpu"),
              mutator=MutationMutator(parents=2, mutations=20),
              filter=PredictorFilter(predictor=xgb, proxy_table=None, min_fit=2, survivors=4),
              ensembler=ReplicaEnsembler(replicas=1), baseline=TRAIN_BASELINE, device="cpu")
    kw.update(overrides)
    return Search("blocks1d", run_dir=run_dir, **kw)


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)  # pragma: no cover - never reached


def _arm(target: str, n: int, when: str) -> None:
    """Patch the library (in this process only) to SIGKILL it at the ``n``-th call of ``target``."""
    from prednas.search import rundir

    calls = {"n": 0}
    if target == "replace_state":  # inside the atomic snapshot: temp file written, not renamed
        real_replace = os.replace

        def replace(src, dst, *a, **kw):
            if Path(dst).name == rundir.STATE:
                calls["n"] += 1
                if calls["n"] == n:
                    _die()
            return real_replace(src, dst, *a, **kw)

        os.replace = replace
        return
    real = getattr(rundir.RunDir, target)

    def patched(self, obj):
        calls["n"] += 1
        if calls["n"] == n:
            if when == "before":
                _die()
            if when == "torn":  # a kill in the middle of the record's write
                line = json.dumps(obj, sort_keys=True, default=str).encode()
                with open(self.evaluations_path, "ab") as f:
                    f.write(line[:len(line) // 2])
                    f.flush()
                    os.fsync(f.fileno())
                _die()
            real(self, obj)
            _die()
        return real(self, obj)

    setattr(rundir.RunDir, target, patched)


def _warm_up() -> None:
    """Import and initialise once what every forked run needs (one thread, no OpenMP pool yet:
    xgboost is imported, never fitted, here)."""
    import matplotlib.backends.backend_agg  # noqa: F401 - the report's plots
    import xgboost  # noqa: F401

    import prednas
    import prednas.search.report  # noqa: F401

    prednas.benchmarks.load("nb201")
    for mode in ("oracle", "train"):
        s = build(mode, None)
    prednas.train(s.space, s.baseline, s.task, steps=1, batch_size=8, seed=0, device="cpu")


def _kill(spec_path: str) -> None:
    import torch

    torch.set_num_threads(1)
    import prednas

    _warm_up()
    spec = json.loads(Path(spec_path).read_text())
    out = {"__prednas__": prednas.__file__}
    for run in spec["runs"]:
        pid = os.fork()
        if pid == 0:  # the process that dies
            code = 0
            try:
                _arm(run["target"], run["n"], run["when"])
                build(run["mode"], run["run_dir"]).run()
            except BaseException as exc:  # noqa: BLE001 - reported through the exit code
                print(f"{run['id']}: {type(exc).__name__}: {exc}", file=sys.stderr)
                code = 3
            finally:
                os._exit(code)  # not killed: the point was never reached
        _, status = os.waitpid(pid, 0)
        out[run["id"]] = {"signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
                          "exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None}
    Path(spec["out"]).write_text(json.dumps(out))


def _hold(run_dir: str, ready: str, go: str) -> None:
    from prednas.search import NoFilter, OracleEvaluator

    real = OracleEvaluator.evaluate
    calls = {"n": 0}

    def slow(self, space, arch, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            Path(ready).touch()
            deadline = time.monotonic() + 120
            while not os.path.exists(go) and time.monotonic() < deadline:
                time.sleep(0.05)
        return real(self, space, arch, **kw)

    OracleEvaluator.evaluate = slow
    build("oracle", run_dir, filter=NoFilter(), budget=6).run()


if __name__ == "__main__":
    if sys.argv[1] == "kill":
        _kill(sys.argv[2])
    elif sys.argv[1] == "hold":
        _hold(*sys.argv[2:5])
    else:
        sys.exit(f"unknown use {sys.argv[1]!r}")
