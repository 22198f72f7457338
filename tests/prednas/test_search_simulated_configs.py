"""The simulated benchmark's configurations: each name is one search whatever the defaults, and
the default's name is what ``prednas.Search`` runs by default."""

import pytest

from prednas import benchmarks
from prednas import search as S
from prednas.search import defaults
from tests.conftest import load_script


@pytest.fixture(scope="module")
def sim():
    return load_script("benchmark_search_simulated")


@pytest.fixture(scope="module")
def bench():
    return benchmarks.load("blocks1d-mnist1d-v2")


def _common(bench, sim, tmp_path):
    cap = sim._cap(bench)
    return cap, dict(oracle=bench, simulate=True, max_params=cap, max_seconds=60.0, budget=10,
                     seed=0, baseline=bench.space.default_arch(), run_dir=tmp_path / "run",
                     evaluator=S.SimulatedEvaluator(workers=2, max_params=cap))


def _config(search):
    return search.mutator.get_params(), search.filter.get_params(), search.race


def test_the_default_is_what_a_simulated_search_runs_by_default(sim, bench, tmp_path):
    cap, common = _common(bench, sim, tmp_path)
    default = S.Search(bench.space, **common)
    assert _config(sim._prednas(sim.DEFAULT, bench.space, cap, common)) == _config(default)
    earlier = sim._prednas("prednas", bench.space, cap, common)
    assert earlier.mutator.explore == 0.0 and earlier.filter.prior is None
    assert earlier.race == defaults.RACE  # it races, as the command line does


@pytest.mark.parametrize("method, race", [("prednas-explore", defaults.RACE),
                                          ("prednas-norace", 0.0), ("prednas-prior", 0.0),
                                          ("prednas-cost", 0.0), ("prednas-asha", 0.0)])
def test_each_variant_is_pinned(sim, bench, tmp_path, method, race):
    cap, common = _common(bench, sim, tmp_path)
    search = sim._prednas(method, bench.space, cap, common)
    assert search.race == race
    assert search.mutator.explore == (sim.EXPLORE if method == "prednas-explore" else 0.0)
    assert search.filter.prior == ("table" if method == "prednas-prior" else None)


def test_the_summary_reports_differences_to_the_default(sim, bench):
    a, b = bench.arch_strings()[:2]
    rows = [{"method": m, "seed": s, "minutes": 2, "pick": p, "evaluations": 3}
            for s in (0, 1) for m, p in ((sim.DEFAULT, a), ("asha", b))]
    text = sim.summary(rows, bench)
    d = bench.query(a, "test_acc") - bench.query(b, "test_acc")
    assert f"| {sim.DEFAULT} − method (paired, 90% CI) |" in text
    assert f"| asha | 2 | {bench.query(b, 'test_acc'):.2f} | {d:+.2f} [" in text
