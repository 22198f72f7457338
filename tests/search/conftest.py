"""Fixtures of the search tests: a tiny table with seeds and learning curves, built once."""

from __future__ import annotations

import pytest

#: a 20-architecture blocks1d sub-space and a recipe of 20 steps with a curve point every 5
SIM_SUB = {"ops": ["conv3", "mlp"], "widths": [16, 32], "max_blocks": 2, "min_blocks": 1,
           "skips": False}
SIM_RECIPE = {"task": "synthetic", "task_options": {"n": 160, "seed": 0},
              "train": {"steps": 20, "batch_size": 32, "lr": 3e-3, "device": "cpu",
                        "curve_every": 5, "curve_size": 32}}


@pytest.fixture(scope="session")
def sim_table(tmp_path_factory):
    """Every architecture with seeds 0-1, the first three also with seed 2 (built in seconds)."""
    import spaces
    from prednas.benchmarks import blocks1d_mnist1d as b1d
    from prednas.benchmarks.build import BuildSpec, build

    out = tmp_path_factory.mktemp("simtable")
    space = spaces.get("blocks1d", **SIM_SUB)
    archs = [str(a) for a in space.enumerate()]
    jobs = [(a, s, "sub") for a in archs for s in (0, 1)] + [(a, 2, "sub") for a in archs[:3]]
    build(BuildSpec(space=space, recipe=SIM_RECIPE, jobs=jobs, latency_repeats=1,
                    name="simtiny", version=2), out, workers=0, progress=False)
    return b1d.load_blocks1d_mnist1d(out)


class Killed(BaseException):
    """What a test's "kill" raises: not an Exception, so nothing in the search catches it."""


@pytest.fixture
def kill_when(monkeypatch):
    """``kill_when(pred, start)`` runs ``start()`` until ``pred(record, n)`` holds for the n-th
    record about to be appended (1-based), and stops it there, as a ``kill -9`` would: that
    record is not written. The run directory is left as it was at that moment."""
    from prednas.search import rundir

    def run(pred, start) -> None:
        real, calls = rundir.RunDir.append, {"n": 0}

        def append(self, record):
            calls["n"] += 1
            if pred(record, calls["n"]):
                raise Killed()
            return real(self, record)

        monkeypatch.setattr(rundir.RunDir, "append", append)
        try:
            with pytest.raises(Killed):
                start()
        finally:
            monkeypatch.setattr(rundir.RunDir, "append", real)

    return run
