from __future__ import annotations

import numpy as np

import spaces
from prednas import benchmarks
from proxies import ProxyTable
from proxies._evaluate import COMBINATION, PUBLISHED, build_report, correlations, rank_average, sample_archs


def test_sample_archs_distinct_and_seeded():
    space = spaces.get("nb201")
    a = sample_archs(space, 50, seed=3)
    assert len({str(x) for x in a}) == 50
    assert [str(x) for x in a] == [str(x) for x in sample_archs(space, 50, seed=3)]
    assert [str(x) for x in a] != [str(x) for x in sample_archs(space, 50, seed=4)]


def test_correlations_and_rank_average():
    rng = np.random.default_rng(0)
    target = rng.normal(size=200)
    good = target + 0.3 * rng.normal(size=200)
    noise = rng.normal(size=200)
    rho, tau, n = correlations(good, target)
    assert rho > 0.8 and tau > 0.6 and n == 200
    assert abs(correlations(noise, target)[0]) < 0.3
    with_nan = good.copy()
    with_nan[:10] = np.nan
    assert correlations(with_nan, target)[2] == 190
    combo = rank_average(np.stack([good, good + 0.1 * rng.normal(size=200)], 1))
    assert correlations(combo, target)[0] > 0.8


def test_report_lists_every_proxy_with_published_values():
    bench = benchmarks.load("nb201")
    archs = sample_archs(spaces.get("nb201"), 40, seed=0)
    acc = bench.values("cifar10_test_200ep", archs)
    rng = np.random.default_rng(0)
    names = sorted(PUBLISHED)
    records = [(str(a), n, float(acc[i] + rng.normal()), 0.01)
               for i, a in enumerate(archs) for n in names]
    table = ProxyTable.from_records(records)
    text = build_report(table, bench, archs, "cmd", [], {"seed": 0, "notes": ["a note"]})
    for n in names:
        assert f"| {n} |" in text
    assert "Label-free combination" in text and all(f"`{n}`" in text for n in COMBINATION)
    assert "a note" in text


def test_compute_cache_resumes(tmp_path, synthetic_image_task):
    from proxies._evaluate import compute_cache
    from proxies._table import read_records

    space = spaces.get("nb201")
    archs = sample_archs(space, 3, seed=0)
    x, y = synthetic_image_task.x_train[:8], synthetic_image_task.y_train[:8]
    cache = tmp_path / "c.csv"
    kw = dict(names=["params", "snip"], num_classes=4, device="cpu",
              build_kwargs={"C": 4, "N": 1}, progress=False)
    assert compute_cache("nb201", archs[:2], x, y, cache, **kw) == 2
    with open(cache, "a") as fh:
        fh.write("|torn")  # a killed run
    assert compute_cache("nb201", archs, x, y, cache, **kw) == 1
    rows = read_records(cache)
    assert {r[0] for r in rows} == {str(a) for a in archs}
    assert compute_cache("nb201", archs, x, y, cache, **kw) == 0
