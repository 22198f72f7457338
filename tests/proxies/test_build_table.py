"""scripts/build_proxies_blocks1d.py: a resumable proxy-table build, on 3 architectures."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import proxies
from prednas.utils import JsonlLog
from proxies._table import ProxyTable
from tests.conftest import load_script


@pytest.fixture(scope="module")
def script():
    return load_script("build_proxies_blocks1d")


@pytest.fixture(scope="module")
def first_run(script, tmp_path_factory):
    """``--limit 3`` into a fresh records file: the first three architectures of the build."""
    records = tmp_path_factory.mktemp("build") / "records.jsonl"
    rc = script.main(["--records", str(records), "--limit", "3", "--device", "cpu", "--quiet"])
    assert rc == 0
    return records


def _args(records: Path, *extra: str) -> list[str]:
    return ["--records", str(records), "--device", "cpu", "--quiet", *extra]


def test_limit_3_scores_every_proxy_on_the_first_three_archs(script, first_run):
    from prednas.benchmarks.blocks1d_mnist1d import build_spec

    recs = JsonlLog(first_run).read()
    jobs = script.jobs_of(build_spec())
    assert len(jobs) == 1884 + 200
    assert [r["arch"] for r in recs] == [a for a, _ in jobs[:3]]
    for r in recs:
        assert set(r["scores"]) == set(proxies.list_proxies())
        assert r["batch_size"] == 64 and r["batch_seed"] == 0 and r["init_seed"] == 0
        assert r["part"] == "sub" and r["wall_seconds"] > 0
        assert sum(math.isfinite(v) for v in r["scores"].values()) >= 12


def test_resume_adds_nothing_and_redoes_a_torn_record(script, first_run, tmp_path, monkeypatch):
    records = tmp_path / "records.jsonl"
    records.write_bytes(first_run.read_bytes())
    full = script.jobs_of
    monkeypatch.setattr(script, "jobs_of", lambda spec: full(spec)[:3])  # a 3-arch build
    before = records.read_bytes()
    assert script.main(_args(records, "--limit", "3")) == 0
    assert records.read_bytes() == before  # every arch recorded: nothing scored, nothing written
    # kill -9 while writing the third record: half a line, no newline
    lines = before.split(b"\n")
    records.write_bytes(b"\n".join(lines[:2]) + b"\n" + lines[2][: len(lines[2]) // 2])
    assert script.main(_args(records, "--limit", "3")) == 0
    recs = JsonlLog(records).read()
    assert [r["arch"] for r in recs] == [r["arch"] for r in JsonlLog(first_run).read()]
    assert recs[2]["scores"] == pytest.approx(JsonlLog(first_run).read()[2]["scores"],
                                              nan_ok=True)  # same batch, same init seed


def test_finalize_writes_the_table_load_table_reads(script, first_run, tmp_path):
    import spaces
    from prednas.benchmarks.blocks1d_mnist1d import RECIPE, SUBSPACE

    # proxies.load_table(space.name, task name) finds the default table name
    space = spaces.get("blocks1d", **SUBSPACE)
    assert script.DEFAULT_TABLE.name == f"{space.name}-{RECIPE['task']}.csv.gz"
    table_path = tmp_path / "blocks1d-mnist1d.csv.gz"
    # 3 of 2,084 archs: refused unless a partial table is asked for
    assert script.main(_args(first_run, "--finalize", "--table", str(table_path))) == 2
    assert not table_path.exists()
    assert script.main(_args(first_run, "--finalize", "--allow-partial",
                             "--table", str(table_path))) == 0
    table = ProxyTable.from_csv(table_path)
    recs = JsonlLog(first_run).read()
    assert len(table) == 3 and set(table.names) == set(proxies.list_proxies())
    got = table.lookup([r["arch"] for r in recs], table.names)
    want = [[r["scores"][n] for n in table.names] for r in recs]
    np.testing.assert_allclose(got, np.array(want), rtol=1e-12, equal_nan=True)


def test_records_of_another_batch_are_refused(script, first_run, tmp_path):
    import json

    records = tmp_path / "records.jsonl"
    rec = JsonlLog(first_run).read()[0]
    rec["batch_seed"] = 1
    records.write_text(json.dumps(rec) + "\n")
    assert script.main(_args(records, "--limit", "1")) == 2
    assert len(JsonlLog(records).read()) == 1
