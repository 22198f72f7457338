"""scripts/truth_blocks1d.py: the table checked against its specification."""

import pytest

from tests.conftest import load_script


@pytest.fixture(scope="module")
def truth():
    return load_script("truth_blocks1d")


def _run(arch, seed, acc, part="sub", status="ok", reason=""):
    return {"arch": arch, "seed": seed, "test_acc": acc, "part": part, "status": status,
            "reason": reason}


def test_completeness_counts_seeds_best_architectures_and_statuses(truth):
    records = [_run(f"a{i}", s, 90.0 + i) for i in range(60) for s in range(2)]
    records += [_run(f"a{i}", s, 90.0 + i) for i in range(12, 60) for s in range(2, 5)]
    records += [_run("f0", 0, 80.0, "full"), _run("f0", 1, 81.0, "full"),
                _run("f1", 0, 80.0, "full"), _run("f1", 1, 0.0, "full", "diverged", "nan loss")]
    rows = dict(truth.completeness(records, n_sub=61, n_full=2))
    assert rows["sub-space architectures with ≥ 2 successful seeds"] == "60 of 61"
    assert rows["architectures with ≥ 5 successful seeds (at least 100)"] == "48"
    # the best 50 are a10-a59: a10 and a11 have 2 seeds
    assert rows["the best 50 by mean test accuracy with ≥ 5 seeds"] == "48 of 50"
    assert rows["full-space samples with ≥ 2 successful seeds"] == "1 of 2"
    assert rows["runs by status"] == "ok: 267, diverged: 1"
    records.append(_run("f1", 2, 0.0, "full", "failed"))
    assert dict(truth.completeness(records, 61, 2))["runs by status"].endswith(
        "(1 without a reason)")
