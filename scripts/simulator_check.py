"""The simulator checked against reality: ``benchmarks/simulator-check.md``.

For random search and the default prednas search on the ``blocks1d-mnist1d-v2`` sub-space, with
the table's recipe and task, 2 workers and a time budget (default 6 minutes), a few **real** runs
(training on a process pool) against **simulated** runs of the same settings
(``SimulatedEvaluator(workers=2)``: the table's recorded runs on a simulated clock). Compared:
the number of candidates evaluated within the budget, and the accuracy of each run's pick under
the final protocol (real runs: the pick retrained on fresh seeds with the table's recipe, mean test
accuracy; simulated runs: the table's mean over the pick's recorded seeds). Also the real time a
simulated run takes.

Every run is appended to ``benchmarks/simulator-check.jsonl`` as it finishes; run the command
again after an interruption and it continues (a run already recorded is not redone). Real
training needs an otherwise idle machine: do not run it beside the table's builder.

    python scripts/simulator_check.py                        # 3 real + 20 simulated seeds each
    python scripts/simulator_check.py --real-seeds 0 --sim-seeds 5   # a quick look
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "simulator-check.md"
LOG = ROOT / "benchmarks" / "simulator-check.jsonl"
STRATEGIES = ("random", "prednas")
FRESH_SEEDS = (1000, 1001, 1002)
#: the machine of the runs from before each run recorded its own (their report named it)
EARLIER = "AMD EPYC (runs before 2026-12-04, which did not record it)"
#: never reached in the time budget: the clock ends the runs
BUDGET = 500


def make_search(strategy: str, seed: int, minutes: float, simulated: bool, run_dir: str,
                workers: int = 2):
    """The same search for a real and a simulated run: only the evaluator and executor differ."""
    from prednas import benchmarks
    from prednas import search as S

    bench = benchmarks.load("blocks1d-mnist1d-v2")
    space = bench.space
    baseline = space.default_arch()
    max_params = int(0.6 * _params(space, baseline))
    common = dict(baseline=baseline, max_params=max_params, max_seconds=60.0 * minutes,
                  budget=BUDGET, per_round=max(2, workers), seed=seed, run_dir=run_dir)
    if simulated:
        common.update(oracle=bench, simulate=True,
                      evaluator=S.SimulatedEvaluator(workers=workers, max_params=max_params))
    else:
        recipe = bench.recipe
        common.update(task=recipe["task"], task_options=recipe["task_options"],
                      executor=S.PoolExecutor(workers=workers), ensembler=False,
                      evaluator=S.TrainingEvaluator(steps=recipe["train"]["steps"],
                                                    max_params=max_params, device="cpu"))
    if strategy == "random":
        return S.random_search(space, **common)
    return S.Search(space, **common)  # the library's defaults, as `prednas search` runs them


def _params(space, arch) -> int:
    from prednas.search.evaluators import model_cost

    return int(model_cost(space, arch, "params"))


def final_protocol_real(arch: str) -> dict:
    """The pick retrained on fresh seeds with the table's recipe: mean test accuracy."""
    from prednas import benchmarks, tasks
    from prednas.training import train

    bench = benchmarks.load("blocks1d-mnist1d-v2")
    recipe = bench.recipe
    task = tasks.get(recipe["task"], **recipe["task_options"])
    train_kw = {k: v for k, v in recipe["train"].items() if not k.startswith("curve")}
    accs = [train(bench.space, arch, task, seed=s, keep_model=False, **train_kw).test_acc
            for s in FRESH_SEEDS]
    return {"final_acc": float(np.mean(accs)), "final_accs": accs}


def final_protocol_sim(arch: str) -> dict:
    from prednas import benchmarks

    bench = benchmarks.load("blocks1d-mnist1d-v2")
    accs = [r["test_acc"] for r in bench.seeds(arch) if r.get("status") == "ok"]
    return {"final_acc": float(np.mean(accs)), "final_accs": accs}


def one_run(strategy: str, seed: int, minutes: float, simulated: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        result = make_search(strategy, seed, minutes, simulated, f"{tmp}/run").run()
        wall = time.perf_counter() - t
    best = result.best
    from prednas.benchmarks.build import machine_name

    out = {"strategy": strategy, "seed": seed, "minutes": minutes, "simulated": simulated,
           "cpu": machine_name(),
           "evaluations": len(result.records), "wall_seconds": wall,
           "pick": None if best is None else best.arch,
           "pick_val": None if best is None else best.get("val_acc")}
    if best is not None:
        out.update(final_protocol_sim(best.arch) if simulated else final_protocol_real(best.arch))
    return out


def _mean_se(xs) -> tuple[float, float]:
    xs = np.asarray([x for x in xs if x is not None and math.isfinite(x)], float)
    if len(xs) == 0:
        return math.nan, math.nan
    return float(xs.mean()), float(xs.std(ddof=1) / math.sqrt(len(xs))) if len(xs) > 1 else math.nan


def _cell(text: str) -> str:
    """``text`` inside a Markdown table cell (its pipes escaped)."""
    return text.replace("|", "\\|")


def _scored_se(real: list[dict], simulated: list[dict]) -> float:
    """The standard error of the difference in pick accuracy between two sets of runs, with
    each score's own error counted: per set, the runs' variance of the mean plus the mean
    scoring variance (the spread of a run's scoring seeds over their number), which runs
    that pick the same architecture share and which their spread therefore misses."""
    total = 0.0
    for rs in (real, simulated):
        accs = [r["final_acc"] for r in rs if r.get("final_acc") is not None]
        if not accs:
            continue
        runs = float(np.var(accs, ddof=1)) / len(accs) if len(accs) > 1 else 0.0
        scoring = [float(np.var(r["final_accs"], ddof=1)) / len(r["final_accs"])
                   for r in rs if len(r.get("final_accs") or ()) > 1]
        total += runs + (float(np.mean(scoring)) if scoring else 0.0)
    return math.sqrt(total)


def report(rows: list[dict], minutes: float) -> str:
    from prednas.benchmarks.build import machine_summary, runs_by_machine

    lines = ["# The simulator checked against real training", "",
             f"Command: `python scripts/simulator_check.py`. Report written on: {machine_summary()}. Runs "
             f"by machine: {runs_by_machine(rows, EARLIER)}.", "",
             f"Settings: the `blocks1d-mnist1d-v2` sub-space and recipe, 2 workers, {minutes:g} "
             "minutes, the training-mode search's baseline, 60% parameter cap and start; real runs "
             "train on a process pool, simulated runs replay the table on a simulated clock. Final "
             f"protocol: real picks retrained on seeds {', '.join(map(str, FRESH_SEEDS))} (mean "
             "test accuracy); simulated picks scored by the table's mean over their recorded "
             "seeds.", "",
             "| strategy | mode | runs | evaluations (mean ± SE) | pick's final accuracy (mean ± SE) "
             "| real seconds per run |", "|---|---|---:|---:|---:|---:|"]
    verdict = []
    for strategy in STRATEGIES:
        stats = {}
        for sim in (False, True):
            rs = [r for r in rows if r["strategy"] == strategy and r["simulated"] == sim
                  and r["minutes"] == minutes]
            if not rs:
                continue
            ev, acc = _mean_se([r["evaluations"] for r in rs]), _mean_se(
                [r.get("final_acc") for r in rs])
            wall = float(np.median([r["wall_seconds"] for r in rs]))
            stats[sim] = (ev, acc, len(rs))
            lines.append(f"| {strategy} | {'simulated' if sim else 'real'} | {len(rs)} | "
                         f"{ev[0]:.1f} ± {ev[1]:.1f} | {acc[0]:.2f} ± {acc[1]:.2f} | {wall:.1f} |")
        def rs_of(sim, strategy=strategy):
            return [r for r in rows if r["strategy"] == strategy and r["simulated"] == sim
                    and r["minutes"] == minutes]

        if len(stats) == 2:
            scored = _scored_se(rs_of(False), rs_of(True))
            (ev_r, acc_r, _), (ev_s, acc_s, _) = stats[False], stats[True]
            dev = (ev_s[0] - ev_r[0]) / ev_r[0]
            se = math.sqrt(np.nansum([acc_r[1] ** 2, acc_s[1] ** 2]))
            diff = acc_s[0] - acc_r[0]
            verdict.append(f"- {strategy}: evaluations {100 * dev:+.1f}% simulated vs real (target "
                           f"within ±15%: {'met' if abs(dev) <= 0.15 else 'MISSED'}); pick "
                           f"accuracy {diff:+.2f} points (one standard error of the difference, "
                           f"counting the final protocol's own scoring noise: {scored:.2f}; "
                           f"{'met' if abs(diff) <= scored else 'MISSED'}; the runs' spread "
                           f"alone: {se:.2f}, {'within' if abs(diff) <= se else 'outside'})")
    sims = [r["wall_seconds"] for r in rows if r["simulated"] and r["strategy"] == "prednas"]
    lines += ["", "## Verdict", "", *verdict]
    if sims:
        lines += [f"- a {minutes:g}-simulated-minute prednas search on 2 simulated workers took "
                  f"{np.median(sims):.1f} s of real time (median of {len(sims)}; max "
                  f"{np.max(sims):.1f} s; target ≤ 30 s)"]
    lines += ["", "The verdict's standard error counts each pick's scoring noise: the runs' "
              "spread alone misses that runs picking the same architecture share its score's "
              "error (the same retraining seeds, or the same recorded seeds), so it adds each "
              "run's scoring variance (the spread of its scoring seeds over their number) to "
              "the runs' variance of the mean. What each mode picked:", "",
              "| strategy | mode | picks (runs) |", "|---|---|---|"]
    for strategy in STRATEGIES:
        for sim in (False, True):
            picks = Counter(r["pick"] for r in rows if r["strategy"] == strategy
                            and r["simulated"] == sim and r["minutes"] == minutes)
            if picks:
                lines.append(f"| {strategy} | {'simulated' if sim else 'real'} | "
                             + ", ".join(f"`{_cell(a)}` ({n})" for a, n in picks.most_common())
                             + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=6.0)
    ap.add_argument("--real-seeds", type=int, default=3)
    ap.add_argument("--sim-seeds", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", choices=("real", "simulated"), default=None,
                    help="run only these runs (real runs need no complete table)")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    from prednas import benchmarks
    from prednas.errors import DataNotFoundError

    bench = benchmarks.load("blocks1d-mnist1d-v2")
    try:
        if args.only != "real":  # real runs take only the space and the recipe from the table
            bench.require_complete()
    except DataNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 2
    rows = [json.loads(x) for x in LOG.read_text().splitlines()] if LOG.exists() else []
    have = {(r["strategy"], r["seed"], r["minutes"], r["simulated"]) for r in rows}
    # real and simulated runs interleaved seed by seed, strategies alternating
    todo = [(st, s, sim) for s in range(max(args.real_seeds, args.sim_seeds))
            for st in STRATEGIES for sim in (False, True)
            if (s < (args.sim_seeds if sim else args.real_seeds))
            and args.only in (None, "simulated" if sim else "real")]
    for st, s, sim in todo:
        if (st, s, args.minutes, sim) in have:
            continue
        row = one_run(st, s, args.minutes, sim)
        row["load"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        with open(LOG, "a") as f:
            f.write(json.dumps(row) + "\n")
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.only == "real" and not bench.complete:  # the report waits for the simulated runs
        return 0
    OUT.write_text(report(rows, args.minutes))
    print(OUT.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
