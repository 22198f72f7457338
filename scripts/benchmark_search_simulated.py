"""prednas against its peers on the simulated clock: ``benchmarks/search-blocks1d-simulated.md``.

Every method searches the ``blocks1d-mnist1d-v2`` sub-space with the training-mode settings
(60% parameter cap of the baseline, 2 simulated workers) for 2, 5, 10 and 20 simulated minutes,
over many seeds: prednas, Model Search's loop and REA through the engine
(``Search(simulate=True)``), and random search, random search with ASHA, Optuna TPE and TPE with
HyperbandPruner through :mod:`prednas.search.peers`. Final protocol: each pick is scored by the
table's mean test accuracy over its recorded seeds (2 to 5 trainings, the ones the search saw
among them: a seed's validation and test accuracy correlate at 0.99 within an architecture, so
some of the selection's luck stays in the score, for a one-seed pick as for a raced one;
``scripts/simulator_check.py`` compares such scores with picks retrained on fresh seeds);
reported: the mean, the paired difference to prednas over seeds with a 90% bootstrap interval,
and the share of seeds whose pick lies in the table's top 1% by mean test accuracy.

Runs are appended to ``benchmarks/search-blocks1d-simulated.jsonl`` (resumable); the strategies'
own time is measured (so timings of a loaded machine cost the strategies more simulated time:
run it alone, and the report says what the load was). ``--shard K/N`` runs the seeds ``s`` with
``s % N == K``: N shards, one per core and nothing else running, share the log.

    python scripts/benchmark_search_simulated.py --seeds 50
    python scripts/benchmark_search_simulated.py --seeds 50 --shard 0/2 &   # two cores
    python scripts/benchmark_search_simulated.py --seeds 50 --shard 1/2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from prednas.search.protocol import paired_interval

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "search-blocks1d-simulated.md"
LOG = ROOT / "benchmarks" / "search-blocks1d-simulated.jsonl"
ENGINE = ("prednas", "prednas-loss", "prednas-norace", "prednas-asha", "prednas-asha-estimate",
          "prednas-cost", "prednas-prior", "prednas-explore", "prednas-prior-explore",
          "modelsearch", "rea")
PEERS = ("random", "asha", "tpe", "tpe-hyperband")
#: the configuration a simulated ``prednas search`` runs by default (explore and the table's
#: prior in a blocks1d space), to which differences are reported; ``prednas`` is the default
#: before them
DEFAULT = "prednas-prior-explore"
MINUTES = (2, 5, 10, 20)
#: the share of each round's pool that ``prednas-explore`` draws uniformly (``--explore``)
EXPLORE = 0.3
#: the machine of the runs from before each run recorded its own (their reports named it)
EARLIER = "AMD EPYC (not recorded per run)"



def _cap(bench) -> int:
    from prednas.search.evaluators import model_cost

    return int(0.6 * model_cost(bench.space, bench.space.default_arch(), "params"))


def run_engine(method: str, bench, seed: int, minutes: float, workers: int = 2) -> dict:
    """One engine search on the simulated clock, with the library's defaults (the same search
    as ``prednas search --bench ... --simulate``): ``prednas``, ``prednas-loss`` (its estimate
    also reads the recorded validation losses: ``NoiseAwareEstimate(loss_reading=True)``),
    ``prednas-asha`` (partial
    trainings under ASHA, rungs 50/100/300; ``prednas-asha-estimate`` ranks each rung by the
    partial accuracy combined with the filter's prediction), ``prednas-norace`` (no share of the
    budget races the leaders: the default before it was measured), ``prednas-cost``
    (cost-aware proposals, ``time_weight=1``: expected improvement per predicted second),
    ``prednas-prior`` (``prior="table"``, learned from version 1 of the table: the same task,
    so its gain here is partly circular), ``prednas-explore`` and ``prednas-prior-explore``
    (:data:`EXPLORE` of each round's pool uniform samples for the filter to choose among, without
    and with that prior), ``modelsearch``, ``rea``.

    Besides the pick: the run's incumbents (``(simulated seconds, arch)`` each time the best
    full training so far changed), for the time until the pick matches the baseline."""
    from prednas import search as S

    space = bench.space
    cap = _cap(bench)
    common = dict(oracle=bench, simulate=True, max_params=cap, max_seconds=60.0 * minutes,
                  budget=min(len(bench), 1000), seed=seed, baseline=space.default_arch(),
                  evaluator=S.SimulatedEvaluator(workers=workers, max_params=cap))
    with tempfile.TemporaryDirectory() as tmp:
        common["run_dir"] = f"{tmp}/run"
        if method.startswith("prednas"):
            search = _prednas(method, space, cap, common)
        elif method == "modelsearch":
            search = S.model_search(space, per_round=workers, **common)
        else:
            search = S.regularized_evolution(space, per_round=workers, **common)
        result = search.run()
    from prednas.search.peers import incumbents

    best = result.best
    done = [(float(r.get("sim_end")), r.objective, str(r.arch)) for r in result.records
            if r.ok and r.get("sim_end") is not None]
    return {"pick": None if best is None else best.arch,
            "pick_val": None if best is None else best.get("val_acc"),
            "evaluations": len(result.records), "seconds": search._clock.now,
            "incumbents": incumbents(done)}


def _prednas(method: str, space, cap: int, common: dict):
    """The prednas variant ``method`` as ``prednas search --simulate`` runs it with the variant's
    flags: its mutator, filter and race pinned, so that a name means one configuration whatever
    the defaults. Except ``prednas-prior`` and ``prednas-cost``: their recorded rows ran without
    the race (this script gave them their own filter, and a library search given its own filter
    does not race unless told), so they still do, to stay one configuration each; the command
    line's ``--prior table`` and ``--time-weight 1`` race."""
    from prednas import search as S
    from prednas.search.defaults import RACE, default_filter, default_mutator

    explore = EXPLORE if method in ("prednas-explore", "prednas-prior-explore") else 0.0
    prior = "table" if method in ("prednas-prior", "prednas-prior-explore") else None
    kw: dict = {"race": RACE}
    if method in ("prednas-asha", "prednas-asha-estimate"):
        rank = "estimate" if method.endswith("estimate") else "partial"
        kw = {"race": 0.0, "scheduler": S.ASHAScheduler(rungs=(50, 100, 300), rank_by=rank)}
    elif method in ("prednas-norace", "prednas-prior", "prednas-cost"):
        kw["race"] = 0.0
    search = S.Search(space, mutator=default_mutator(space, space.default_arch(), cap,
                                                     explore=explore),
                      filter=default_filter(space, simulated=True, prior=prior,
                                            time_weight=1.0 if method == "prednas-cost" else 0.0),
                      **kw, **common)
    if method == "prednas-loss":
        from prednas.search.estimates import NoiseAwareEstimate

        search.estimator = NoiseAwareEstimate(loss_reading=True)
    return search


def time_to_match(row: dict, means: dict, target: float, params: dict, cap: int) -> float:
    """Simulated minutes until the run's incumbent (the best full training so far) is within
    the parameter cap ``cap`` and has a table mean at or above ``target`` (the baseline's);
    inf if never."""
    for end, arch in row.get("incumbents") or ():
        if params.get(arch, math.inf) <= cap and means.get(arch, -math.inf) >= target:
            return end / 60.0
    return math.inf


def run_peer(method: str, bench, seed: int, minutes: float, workers: int = 2) -> dict:
    from prednas.search.peers import PEERS as P
    from prednas.search.peers import ASHAMethod, TPEMethod, simulate_method, trial_incumbents

    m = {"asha": lambda: ASHAMethod(rungs=(50, 100, 300)),
         "tpe-hyperband": lambda: TPEMethod(hyperband=True, min_resource=25)}.get(
        method, P[method])()
    out = simulate_method(m, bench, seed=seed, workers=workers, max_seconds=60.0 * minutes,
                          max_params=_cap(bench))
    out["incumbents"] = trial_incumbents(out.pop("trials"))
    return out


def summary(rows: list[dict], bench) -> str:
    from prednas.benchmarks.build import machine_summary, runs_by_machine

    means = {a: bench.query(a, "test_acc") for a in bench.arch_strings()}
    params = {a: bench.query(a, "params") for a in means}
    cap = _cap(bench)
    vals = np.array(list(means.values()))
    top1 = np.quantile(vals[np.isfinite(vals)], 0.99)
    feasible = np.array([v for a, v in means.items() if params[a] <= cap and np.isfinite(v)])
    top1_cap = np.quantile(feasible, 0.99)
    methods = [m for m in (DEFAULT, *(m for m in (*ENGINE, *PEERS) if m != DEFAULT))
               if any(r["method"] == m for r in rows)]
    lines = ["# Search under simulated training: blocks1d-mnist1d-v2", "",
             f"Command: `python {Path(__file__).relative_to(ROOT)}`. Report written on: "
             f"{machine_summary()}; load while running: "
             f"{np.median([r.get('load') or 0 for r in rows]):.2f} (median of the 1-minute "
             "load average at each run's end). Runs by machine: "
             f"{runs_by_machine(rows, EARLIER)}.", "",
             "2 simulated workers; the final protocol scores a pick by its mean test accuracy "
             "over the table's recorded seeds. Top 1%: the pick's mean is in the top 1% of the "
             f"architectures a search may pick, those within the parameter cap ({cap:,} "
             f"parameters, 60% of the baseline's): {len(feasible)} of the table's {len(vals)}, "
             f"top 1% at ≥ {top1_cap:.2f}. The table's top 1% over all architectures (≥ "
             f"{top1:.2f}) holds {sum(1 for a, v in means.items() if v >= top1 and params[a] <= cap)}"
             " within the cap; the share of picks in it is the last column.", "",
             f"The default of `prednas search --simulate` is `{DEFAULT}`; `prednas` is the "
             "default before it (no explore, no prior). Differences are to the default. "
             "`prednas-prior` and `prednas-cost` ran without the race (the command line's "
             "`--prior table` and `--time-weight 1` race), every other prednas variant but "
             "`prednas-norace` and the ASHA ones with it.", ""]
    for minutes in MINUTES:
        at = [r for r in rows if r["minutes"] == minutes and r.get("pick")]
        if not at:
            continue
        lines += [f"## {minutes} simulated minutes", "",
                  f"| method | seeds | final protocol (mean) | {DEFAULT} − method (paired, 90% CI) | "
                  "top 1% share (within the cap) | evaluations (mean) | top 1% share (whole "
                  "table) |", "|---|---:|---:|---:|---:|---:|---:|"]
        ref = {r["seed"]: means[r["pick"]] for r in at if r["method"] == DEFAULT}
        for m in methods:
            rs = {r["seed"]: r for r in at if r["method"] == m}
            if not rs:
                continue
            acc = np.array([means[r["pick"]] for r in rs.values()])
            share = float(np.mean(acc >= top1_cap))
            diff = "" if m == DEFAULT else _paired(ref, {s: means[r["pick"]]
                                                           for s, r in rs.items()})
            lines.append(f"| {m} | {len(rs)} | {acc.mean():.2f} | {diff} | {100 * share:.0f}% | "
                         f"{np.mean([r['evaluations'] for r in rs.values()]):.1f} | "
                         f"{100 * float(np.mean(acc >= top1)):.0f}% |")
        lines.append("")
    lines += _match_table(rows, means, methods, bench)
    return "\n".join(lines)


def _match_table(rows: list[dict], means: dict, methods: list[str], bench) -> list[str]:
    """Time until the pick matches the baseline at <= 60% of its parameters, on the longest
    budget run (its incumbents cover the shorter ones)."""
    base = means.get(str(bench.space.default_arch()))
    params = {a: bench.query(a, "params") for a in bench.arch_strings()}
    longest = max((r["minutes"] for r in rows if "incumbents" in r), default=None)
    if base is None or longest is None:
        return []
    out = [f"## Time until the pick matches the baseline ({longest:g}-minute runs)", "",
           f"The baseline (`{bench.space.default_arch()}`, table mean {base:.2f}); every pick is "
           "within the parameter cap (60% of the baseline's). Minutes of simulated time until "
           "the best full training so far has a table mean at or above the baseline's; median "
           "over seeds (inf: more than half never matched).", "",
           "| method | seeds | median minutes | matched |", "|---|---:|---:|---:|"]
    for m in methods:
        rs = [r for r in rows if r["method"] == m and r["minutes"] == longest
              and "incumbents" in r]
        if rs:
            ts = np.array([time_to_match(r, means, base, params, _cap(bench)) for r in rs])
            out.append(f"| {m} | {len(rs)} | {np.median(ts):.2f} | "
                       f"{int(np.isfinite(ts).sum())}/{len(ts)} |")
    return [*out, ""]


def _paired(ref: dict, other: dict) -> str:
    seeds = sorted(set(ref) & set(other))
    if len(seeds) < 2:
        return "n/a"
    d = np.array([ref[s] - other[s] for s in seeds])
    lo, hi = paired_interval(d, resamples=2000)
    return f"{d.mean():+.2f} [{lo:+.2f}, {hi:+.2f}]"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=50)
    ap.add_argument("--methods", default=",".join((*ENGINE, *PEERS)))
    ap.add_argument("--minutes", default=",".join(map(str, MINUTES)))
    ap.add_argument("--shard", default="0/1", help="K/N: run the seeds s with s %% N == K")
    args = ap.parse_args(argv)
    try:
        k, n = (int(x) for x in args.shard.split("/"))
        if not 0 <= k < n:
            raise ValueError
    except ValueError:
        ap.error(f"--shard must be K/N with 0 <= K < N; got {args.shard!r}")
    import torch

    torch.set_num_threads(1)
    from prednas import benchmarks
    from prednas.benchmarks.build import machine_name
    from prednas.errors import DataNotFoundError
    from prednas.utils import append_log, read_log

    bench = benchmarks.load("blocks1d-mnist1d-v2")
    try:
        bench.require_complete()
    except DataNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 2
    rows = read_log(LOG)
    have = {(r["method"], r["seed"], r["minutes"]) for r in rows}
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for seed in range(k, args.seeds, n):  # methods interleaved seed by seed
        for minutes in (float(m) for m in args.minutes.split(",")):
            for m in methods:
                if (m, seed, minutes) in have:
                    continue
                t = time.perf_counter()
                out = (run_engine if m in ENGINE else run_peer)(m, bench, seed, minutes)
                row = {"method": m, "seed": seed, "minutes": minutes, **out,
                       "wall_seconds": time.perf_counter() - t, "cpu": machine_name(),
                       "load": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
                append_log(LOG, row)
                rows.append(row)
                print(json.dumps(row), flush=True)
        OUT.write_text(summary(read_log(LOG), bench))  # every shard's rows
    print(OUT.read_text())
    return 0 if not any(math.isnan(r.get("seconds", 0)) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
