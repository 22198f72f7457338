"""The simulator check's report: its standard errors and its tables."""

import importlib.util
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "simulator_check.py"


@pytest.fixture(scope="module")
def check():
    spec = importlib.util.spec_from_file_location("simulator_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _row(sim, pick, accs, strategy="prednas"):
    return {"strategy": strategy, "seed": 0, "minutes": 6.0, "simulated": sim, "evaluations": 80,
            "wall_seconds": 1.0, "pick": pick, "final_accs": accs,
            "final_acc": sum(accs) / len(accs)}


def test_runs_that_pick_the_same_architecture_still_carry_its_scoring_noise(check):
    real = [_row(False, "a|b", [96.0, 97.0, 96.5])] * 3  # no spread between runs
    sim = [_row(True, "c|d", [96.2, 96.4])] * 4
    se = check._scored_se(real, sim)
    expected = math.sqrt(0.25 / 3 + 0.02 / 2)  # the scoring variances over their seeds
    assert se == pytest.approx(expected)


def test_report_escapes_the_pipes_of_architectures_in_its_tables(check):
    rows = [_row(False, "conv3:32|gru:16", [96.0, 96.2]),
            _row(True, "conv3:32|gru:16", [96.1, 96.3])]
    text = check.report(rows, 6.0)
    assert "`conv3:32\\|gru:16` (1)" in text
    assert "counting the final protocol's own scoring noise" in text
