"""The append-only logs behind the benchmark scripts, and their pass-through arguments."""

from __future__ import annotations

import numpy as np

from prednas.utils import append_log, read_log, split_passthrough


def test_a_log_survives_a_torn_last_line(tmp_path):
    log = tmp_path / "runs.jsonl"
    assert read_log(log) == []
    append_log(log, {"b": 1, "a": np.int64(2)})
    append_log(log, {"seed": 1000, "test_acc": 97.5})
    with open(log, "a") as f:
        f.write('{"seed": 1001, "test_a')  # killed mid-write
    assert read_log(log) == [{"a": 2, "b": 1}, {"seed": 1000, "test_acc": 97.5}]
    assert log.read_text().splitlines()[0] == '{"a": 2, "b": 1}'  # keys sorted
    append_log(log, {"seed": 1001, "test_acc": 97.1})  # the resumed run writes it again
    assert read_log(log)[-1] == {"seed": 1001, "test_acc": 97.1} and len(read_log(log)) == 3


def test_split_passthrough():
    assert split_passthrough(["--seeds", "3"]) == (["--seeds", "3"], [])
    assert split_passthrough(["--seeds", "1", "--", "--budget", "2"]) == (
        ["--seeds", "1"], ["--budget", "2"])
    assert split_passthrough(["--"]) == ([], [])


def _append_many(path: str, who: int, n: int) -> None:
    for i in range(n):
        append_log(path, {"who": who, "i": i, "pad": "x" * 5000})


def test_shards_append_to_one_log_at_once(tmp_path):
    # two processes (a benchmark's shards) append long rows at once: every row stands whole
    import multiprocessing as mp

    log = str(tmp_path / "runs.jsonl")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(log, w, 100)) for w in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    rows = read_log(log)
    assert sorted((r["who"], r["i"]) for r in rows) == [(w, i) for w in (0, 1) for i in range(100)]
