"""The peers on the simulated clock: one evaluation function, a discrete-event simulation."""

from __future__ import annotations

import pytest

from prednas.errors import InvalidParameterError
from prednas.search.peers import PEERS, ASHAMethod, TPEMethod, simulate_method


@pytest.fixture
def table(sim_table):
    return sim_table


def _mean_seconds(table):
    runs = [r for rs in table._records.values() for r in rs]
    return sum(float(r["cpu_seconds"]) for r in runs) / len(runs)


def methods():
    return {"random": PEERS["random"](), "asha": ASHAMethod(rungs=(5, 10, 20)),
            "tpe": TPEMethod(), "tpe-hyperband": TPEMethod(hyperband=True, min_resource=5)}


def _busy(out, t):
    return sum(1 for tr in out["trials"] for a, b in tr["jobs"] if a <= t < b)


@pytest.mark.parametrize("name", ["random", "asha", "tpe", "tpe-hyperband"])
def test_each_peer_runs_on_two_workers_and_picks_a_full_training(table, name):
    # ASHA needs 9 + 3 + 1 rung trainings before its first full one; on a tiny table a rung can
    # cost nearly a whole training (fixed overheads), so the budget covers 13 of them per worker
    total = _mean_seconds(table)
    out = simulate_method(methods()[name], table, seed=1, workers=2, max_seconds=13 * total,
                          decision_seconds=0.01)
    assert out["pick"] is not None and out["evaluations"] >= 1
    starts = sorted(a for tr in out["trials"] for a, _ in tr["jobs"])
    assert max(_busy(out, t) for t in starts) <= 2  # never more than two trainings at once
    assert all(b is not None and b >= a for tr in out["trials"] for a, b in tr["jobs"])
    done = [tr for tr in out["trials"] if tr["status"] == "done"]
    assert out["pick"] in {tr["arch"] for tr in done}


def test_asha_pauses_most_and_promotes_the_best(table):
    total = _mean_seconds(table)
    out = simulate_method(ASHAMethod(rungs=(5, 10, 20), reduction_factor=3), table, seed=0,
                          workers=2, max_seconds=13 * total, decision_seconds=0.0)
    status = [tr["status"] for tr in out["trials"]]
    assert status.count("paused") > status.count("done") >= 1
    assert any(len(tr["jobs"]) > 1 for tr in out["trials"])  # continued from its checkpoint


def test_a_fixed_decision_cost_makes_a_simulation_reproducible(table):
    a = simulate_method(TPEMethod(hyperband=True, min_resource=5), table, seed=3,
                        max_seconds=30, decision_seconds=0.05)
    b = simulate_method(TPEMethod(hyperband=True, min_resource=5), table, seed=3,
                        max_seconds=30, decision_seconds=0.05)
    assert a == b


def test_time_scale_makes_a_simulated_machine_faster(table):
    # no decision cost: the same draws on a machine twice as fast take half the time
    slow = simulate_method(PEERS["random"](), table, seed=2, max_seconds=6 * _mean_seconds(table),
                           decision_seconds=0.0)
    fast = simulate_method(PEERS["random"](), table, seed=2, max_seconds=3 * _mean_seconds(table),
                           decision_seconds=0.0, time_scale=0.5)
    assert fast["evaluations"] == slow["evaluations"]
    assert fast["seconds"] == pytest.approx(0.5 * slow["seconds"])
    for bad in (0, -2.0, float("nan"), True):
        with pytest.raises(InvalidParameterError, match="time_scale"):
            simulate_method(PEERS["random"](), table, max_seconds=10, time_scale=bad)


def test_tpe_learns_the_cap_and_searches_to_the_end_of_its_budget(table):
    # a cap that about half of the tiny table's architectures exceed: TPE is told those at once
    # (constrained TPE), trains none of them, and keeps proposing feasible ones to the end
    params = sorted(table.query(a, "params") for a in table.arch_strings())
    cap = int(params[len(params) // 2])
    total = _mean_seconds(table)
    out = simulate_method(TPEMethod(), table, seed=0, workers=2, max_seconds=40 * total,
                          max_params=cap, decision_seconds=0.0)
    trained = {tr["arch"] for tr in out["trials"]}
    assert trained and all(table.query(a, "params") <= cap for a in trained)
    assert out["evaluations"] >= 30  # not stopped early by a run of infeasible proposals
    assert max(b for tr in out["trials"] for _, b in tr["jobs"]) > 35 * total


def test_asha_rungs_must_be_curve_points(table):
    with pytest.raises(InvalidParameterError, match="not curve points"):
        simulate_method(ASHAMethod(rungs=(7, 20)), table, max_seconds=10)


@pytest.mark.parametrize("name,points,workers", [("tpe-hyperband", (2, 4), 2),
                                                 ("asha", (2, 4), 1)])
def test_peers_train_for_real_through_the_engines_evaluator(synthetic_task, tmp_path, name,
                                                            points, workers):
    """The same methods with real training: chunks between points, continued from checkpoints,
    in this process or on a pool of two workers; the pick is a full training."""
    import spaces
    from prednas.search.peers import train_method

    method = (TPEMethod(hyperband=True, min_resource=2, reduction_factor=2) if name != "asha"
              else ASHAMethod(rungs=(*points, 6), reduction_factor=2))
    # fast ops only: a recurrent block can take seconds a step on a busy machine, and the test
    # needs a few trainings to reach the last rung within its time
    space = spaces.get("blocks1d", max_blocks=2, ops=("conv3", "mlp"))
    out = train_method(method, space, synthetic_task, run_dir=tmp_path, seed=0, workers=workers,
                       max_seconds=8.0, steps=6, points=points)
    assert out["pick"] is not None and out["evaluations"] >= 1
    done = [t for t in out["trials"] if t["status"] == "done"]
    assert all(t["steps"] == 6 for t in done)
    assert any(len(t["jobs"]) > 1 for t in out["trials"])  # continued after a point
    assert {t["status"] for t in out["trials"]} <= {"done", "paused", "stopped", "failed"}
