"""Building a tabular benchmark by training: a tiny table built on the fly.

The shipped ``blocks1d-mnist1d`` table takes hours; these tests build a six-architecture table of
the same kind in seconds and check resume, failure records, the loader, the recipe and the search.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import prednas
import spaces
from prednas.benchmarks import blocks1d_mnist1d as b1d
from prednas.benchmarks.build import RECORDS, BuildSpec, build
from prednas.errors import InvalidArchitectureError, InvalidParameterError, RunDirectoryError

SUB = {"ops": ["conv3", "mlp"], "widths": [16], "max_blocks": 2, "min_blocks": 1, "skips": False}
RECIPE = {"task": "synthetic", "task_options": {"n": 128, "seed": 0},
          "train": {"steps": 4, "batch_size": 32, "lr": 3e-3, "device": "cpu"}}


def tiny_spec(recipe=RECIPE) -> BuildSpec:
    space = spaces.get("blocks1d", **SUB)
    archs = [str(a) for a in space.enumerate()]
    jobs = [(a, s, "sub") for a in archs[:2] for s in (0, 1)] + [(a, 0, "sub") for a in archs[2:]]
    return BuildSpec(space=space, recipe=recipe, jobs=jobs, latency_repeats=3, name="tiny")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    build(tiny_spec(), out, workers=0, progress=False)
    return out


def test_build_records_every_job_once(built):
    recs = [json.loads(x) for x in (built / RECORDS).read_text().splitlines()]
    assert len(recs) == 8 and len({(r["arch"], r["seed"]) for r in recs}) == 8
    for r in recs:
        assert r["status"] == "ok" and 0 <= r["test_acc"] <= 100
        assert r["params"] > 0 and r["flops"] > 0 and r["latency_ms"] > 0
        assert r["steps"] == 4 and r["train_seconds"] > 0
    meta = json.loads((built / "meta.json").read_text())
    assert meta["recipe"] == RECIPE and meta["space_config"] == SUB and meta["machines"]


def test_resume_runs_only_what_is_missing(tmp_path):
    spec = tiny_spec()
    build(spec, tmp_path, workers=0, progress=False, limit=3)
    assert len((tmp_path / RECORDS).read_text().splitlines()) == 3
    with open(tmp_path / RECORDS, "ab") as f:  # killed mid-write: a torn last line
        f.write(b'{"arch": "conv3:16", "se')
    recs = build(spec, tmp_path, workers=0, progress=False)
    lines = [json.loads(x) for x in (tmp_path / RECORDS).read_text().splitlines()]
    assert len(lines) == len(recs) == 8
    assert len({(r["arch"], r["seed"]) for r in lines}) == 8


def test_a_build_with_another_recipe_is_refused(built):
    other = {**RECIPE, "train": {**RECIPE["train"], "steps": 5}}
    with pytest.raises(RunDirectoryError, match="recipe"):
        build(tiny_spec(other), built, workers=0, progress=False)


def test_diverged_training_is_recorded_with_its_reason(tmp_path):
    bad = {**RECIPE, "train": {**RECIPE["train"], "lr": 1e30}}
    recs = build(tiny_spec(bad), tmp_path, workers=0, progress=False, limit=2)
    assert len(recs) == 2
    assert any(r["status"] == "diverged" and "non-finite" in r["reason"] for r in recs)


def test_kill_9_mid_build_then_resume(tmp_path):
    """A real worker process killed with SIGKILL: nothing finished is lost or repeated."""
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_bench_build import tiny_spec
        from prednas.benchmarks.build import build
        build(tiny_spec(), {str(tmp_path / 'b')!r}, workers=0, progress=False)
    """))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), *sys.path])}
    child = subprocess.Popen([sys.executable, str(script)], env=env)
    rec = tmp_path / "b" / RECORDS
    deadline = time.time() + 120
    while time.time() < deadline and (not rec.exists() or len(rec.read_bytes().splitlines()) < 2):
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    before = [json.loads(x) for x in rec.read_text().splitlines() if x.endswith("}")]
    assert 2 <= len(before) < 8
    build(tiny_spec(), tmp_path / "b", workers=0, progress=False)
    after = [json.loads(x) for x in rec.read_text().splitlines()]
    assert len(after) == 8 and len({(r["arch"], r["seed"]) for r in after}) == 8
    assert after[:len(before)] == before  # appended, never rewritten


def test_loader_serves_the_table(built):
    bench = prednas.benchmarks.load("blocks1d-mnist1d", path=built)
    assert len(bench) == 6 and bench.complete and bench.default_metric == "test_acc"
    assert bench.space == spaces.get("blocks1d", **SUB)
    for m in ("test_acc", "val_acc", "params", "flops", "latency_ms"):
        assert np.isfinite(bench.values(m)).all()
    two = [a for a in bench.arch_strings() if bench.query(a, "n_seeds") == 2]
    assert len(two) == 2 and all(np.isfinite(bench.query(a, "test_acc_std")) for a in two)
    a = two[0]
    assert bench.query(a, "test_acc") == pytest.approx(np.mean([r["test_acc"]
                                                                for r in bench.seeds(a)]))
    with pytest.raises(InvalidArchitectureError, match="ops conv3, mlp"):
        bench.query("gru:16", "test_acc")


def test_recipe_reproduces_an_entry(built):
    bench = prednas.benchmarks.load("blocks1d-mnist1d", path=built)
    r = bench.recipe
    task = prednas.tasks.get(r["task"], **r["task_options"])
    for arch in bench.arch_strings()[:2]:
        rec = prednas.train(bench.space, arch, task, seed=0, keep_model=False, **r["train"])
        seed0 = next(x for x in bench.seeds(arch) if x["seed"] == 0)
        assert rec.test_acc == pytest.approx(seed0["test_acc"], abs=1e-6)


def test_oracle_search_on_the_built_table(built, tmp_path):
    from prednas.search import Search, model_search

    bench = prednas.benchmarks.load("blocks1d-mnist1d", path=built)
    res = Search(bench.space, oracle=bench, budget=4, per_round=2, seed=0,
                 run_dir=tmp_path / "p").run()
    assert len(res.records) == 4 and res.best.objective == max(r.objective for r in res.records)
    res = model_search(bench.space, oracle=bench, budget=4, seed=0, run_dir=tmp_path / "m").run()
    assert len(res.records) == 4
    with pytest.raises(InvalidParameterError, match="ops conv3, mlp"):
        Search("blocks1d", oracle=bench, budget=4, run_dir=tmp_path / "x")


def test_model_search_goes_on_when_the_best_neighbourhoods_are_used_up(built, tmp_path):
    """On a finite table, Model Search's loop evaluates new architectures to its budget (uniform
    samples once the best ones' single edits are all seen), instead of stopping early."""
    from prednas.search import model_search

    bench = prednas.benchmarks.load("blocks1d-mnist1d", path=built)
    res = model_search(bench.space, oracle=bench, budget=len(bench), parents=1, per_round=1,
                       seed=0, run_dir=tmp_path / "m").run()
    assert sorted(r.arch for r in res.records) == sorted(bench.arch_strings())


def test_shipped_spec_covers_the_sub_space():
    spec = b1d.build_spec()
    sub = spaces.get("blocks1d", **b1d.SUBSPACE)
    assert len(sub) >= 1500
    archs = {a for a, _, p in spec.jobs if p == "sub"}
    assert len(archs) == len(sub) == len({str(sub.canonical(sub.parse(a))) for a in archs})
    noise = [a for a in archs if sum(1 for x, _, p in spec.jobs if x == a and p == "sub") == 3]
    assert len(noise) >= 100
    full = [a for a, _, p in spec.jobs if p == "full"]
    assert len(full) >= 200 and not set(full) & archs
    assert b1d.RECIPE["train"]["steps"] == prednas.search.TrainingEvaluator().steps
