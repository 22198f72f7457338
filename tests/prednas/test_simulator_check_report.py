"""The simulator check's report: its standard errors and its tables."""

import math

import pytest

from tests.conftest import load_script


@pytest.fixture(scope="module")
def check():
    return load_script("simulator_check")


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
    assert "Runs by machine: AMD EPYC (not recorded" in text  # these rows name no machine


def test_verdict_judges_the_difference_by_the_standard_error_that_counts_scoring_noise(check):
    # every run picks one architecture: the runs' spread is 0, their scores' noise is not
    real = [_row(False, "a|b", [96.0, 97.0, 96.5])] * 3
    close = [_row(True, "c|d", [96.1, 96.3])] * 4   # 0.3 below: within sqrt(.25/3 + .02/2)
    far = [_row(True, "c|d", [95.0, 95.2])] * 4     # 1.4 below: outside it
    assert "; met; the runs' spread alone: 0.00, outside" in check.report(real + close, 6.0)
    assert "; MISSED; the runs' spread alone" in check.report(real + far, 6.0)


def test_real_runs_meet_the_simulated_runs_of_their_own_machine(check):
    def run(sim, machine, evaluations, acc):
        return {**_row(sim, "a|b", [acc, acc]), "cpu": machine, "evaluations": evaluations}

    real = [run(False, "A", 80, 96.0)] * 2 + [run(False, "B", 120, 96.6)]
    real += [run(False, "C", 10, 90.0)]  # no simulated run of C: left out
    sims = [run(True, "A", 80, 96.0)] * 4 + [run(True, "B", 120, 96.6)] * 4
    c = check.compare(real, sims)
    assert c["machines"] == {"A": 2, "B": 1}
    assert c["ev_real"] == pytest.approx(c["ev_sim"]) and c["dev"] == pytest.approx(0.0)
    assert c["diff"] == pytest.approx(0.0)  # 2/3 of A's 96.0 and 1/3 of B's 96.6 on both sides
    assert c["per_machine"] == pytest.approx({"A": 0.0, "B": 0.0})
    assert check.compare([run(False, "C", 10, 90.0)], sims) is None


def test_the_evaluations_target_holds_on_every_machine_not_just_on_average(check):
    def run(sim, machine, evaluations):
        return {**_row(sim, "a|b", [96.0, 96.1]), "cpu": machine, "evaluations": evaluations}

    rows = [run(False, "A", 80), run(False, "A", 80), run(False, "B", 100)]
    rows += [run(True, "A", 84)] * 4 + [run(True, "B", 75)] * 4  # B is 25% short: the mean is not
    text = check.report(rows, 6.0)
    assert "(target within ±15% on every machine: MISSED on B)" in text
