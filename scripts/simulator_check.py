"""The simulator checked against reality: ``benchmarks/simulator-check.md``.

For random search and the default prednas search on the ``blocks1d-mnist1d-v2`` sub-space, with
the table's recipe and task, 2 workers and a time budget (default 6 minutes), a few **real** runs
(training on a process pool) against **simulated** runs of the same settings
(``SimulatedEvaluator(workers=2)``: the table's recorded runs on a simulated clock). Compared:
the number of candidates evaluated within the budget, and the accuracy of each run's pick under
the final protocol (real runs: the pick retrained on fresh seeds with the table's recipe, mean test
accuracy; simulated runs: the table's mean over the pick's recorded seeds). Also the real time a
simulated run takes.

The simulator models the machine its real runs ran on: the table's seconds were measured on the
machine that built it, so before its first run on another machine the check measures that
machine's speed relative to the table's (``measure_time_scale``: a short real random search
within the cap, of a seed no checked run uses, its candidates' summed seconds over the table's; in
``benchmarks/simulator-check-machines.jsonl``) and simulates runs for it with that
``time_scale``. Real runs are compared with the simulated runs of their own machine (weighted by
the real runs' machines where they ran on several).

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
MACHINES = ROOT / "benchmarks" / "simulator-check-machines.jsonl"
STRATEGIES = ("random", "prednas")
FRESH_SEEDS = (1000, 1001, 1002)
#: the machine of the runs from before each run recorded its own (their report named it)
EARLIER = "AMD EPYC (not recorded per run)"
#: how this check measures a machine's time_scale (a measurement by another is superseded)
ESTIMATOR = ("summed seconds of the 48 candidates of a real random search within the cap "
             "(seed 99), over the table's")
#: the calibration search's seed: none of the checked runs' seeds
CALIBRATION_SEED = 99
#: never reached in the time budget: the clock ends the runs
BUDGET = 500


def make_search(strategy: str, seed: int, minutes: float, simulated: bool, run_dir: str,
                workers: int = 2, time_scale: float = 1.0):
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
                      evaluator=S.SimulatedEvaluator(workers=workers, max_params=max_params,
                                                     time_scale=time_scale))
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


def one_run(strategy: str, seed: int, minutes: float, simulated: bool,
            time_scale: float = 1.0) -> dict:
    """One run on this machine (a simulated one: of this machine, at its ``time_scale``)."""
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        result = make_search(strategy, seed, minutes, simulated, f"{tmp}/run",
                             time_scale=time_scale).run()
        wall = time.perf_counter() - t
    best = result.best
    from prednas.benchmarks.build import machine_name

    out = {"strategy": strategy, "seed": seed, "minutes": minutes, "simulated": simulated,
           "cpu": machine_name(), **({"time_scale": time_scale} if simulated else {}),
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


def _machine(row: dict) -> str:
    """The machine a run ran on (a simulated run: the machine it simulates)."""
    return row.get("cpu") or EARLIER


def _acc_parts(rs: list[dict]) -> tuple[float, float, float]:
    """Runs' mean pick accuracy, the variance of that mean over runs, and the mean scoring
    variance (the spread of a run's scoring seeds over their number)."""
    accs = [r["final_acc"] for r in rs if r.get("final_acc") is not None]
    if not accs:
        return math.nan, 0.0, 0.0
    runs = float(np.var(accs, ddof=1)) / len(accs) if len(accs) > 1 else 0.0
    scoring = [float(np.var(r["final_accs"], ddof=1)) / len(r["final_accs"])
               for r in rs if len(r.get("final_accs") or ()) > 1]
    return float(np.mean(accs)), runs, float(np.mean(scoring)) if scoring else 0.0


def compare(real: list[dict], simulated: list[dict]) -> dict | None:
    """Real runs against the simulated runs of their machines: each machine's simulated runs
    weighted by the share of the real runs that ran on it (real runs on a machine without
    simulated runs are left out). The pick accuracy's standard error comes twice: from the runs'
    spread alone, and with each score's own error counted (``se_scored``: runs that pick the same
    architecture share its score's error, which their spread misses)."""
    sims: dict[str, list[dict]] = {}
    for r in simulated:
        sims.setdefault(_machine(r), []).append(r)
    counts = Counter(_machine(r) for r in real if _machine(r) in sims)
    if not counts:
        return None
    n = sum(counts.values())
    weight = {m: c / n for m, c in counts.items()}
    real = [r for r in real if _machine(r) in counts]
    ev_real = float(np.mean([r["evaluations"] for r in real]))
    ev_sim = sum(w * float(np.mean([r["evaluations"] for r in sims[m]]))
                 for m, w in weight.items())
    acc_r, runs_r, score_r = _acc_parts(real)
    parts = {m: _acc_parts(sims[m]) for m in weight}
    acc_s = sum(w * parts[m][0] for m, w in weight.items())
    runs_s = sum(w * w * parts[m][1] for m, w in weight.items())
    score_s = sum(w * w * parts[m][2] for m, w in weight.items())
    per_machine = {m: float(np.mean([r["evaluations"] for r in sims[m]]))
                   / float(np.mean([r["evaluations"] for r in real if _machine(r) == m])) - 1
                   for m in weight}
    return {"ev_real": ev_real, "ev_sim": ev_sim, "dev": ev_sim / ev_real - 1,
            "acc_real": acc_r, "acc_sim": acc_s, "diff": acc_s - acc_r,
            "se_runs": math.sqrt(runs_r + runs_s),
            "se_scored": math.sqrt(runs_r + score_r + runs_s + score_s),
            "machines": dict(counts), "per_machine": per_machine}


def _scored_se(real: list[dict], simulated: list[dict]) -> float:
    """The standard error of the difference in pick accuracy between two sets of runs of one
    machine, each score's own error counted (see :func:`compare`)."""
    same = [{**r, "cpu": "m"} for r in simulated]
    out = compare([{**r, "cpu": "m"} for r in real], same)
    return math.nan if out is None else out["se_scored"]


def report(rows: list[dict], minutes: float, scales: dict[str, float] | None = None) -> str:
    from prednas.benchmarks.build import machine_summary, runs_by_machine

    scales = {EARLIER: 1.0, **(scales or {})}
    rows = _at_scale(rows, scales)
    lines = ["# The simulator checked against real training", "",
             f"Command: `python scripts/simulator_check.py`. Report written on: "
             f"{machine_summary()}. Runs by machine: {runs_by_machine(rows, EARLIER)}.", "",
             f"Settings: the `blocks1d-mnist1d-v2` sub-space and recipe, 2 workers, {minutes:g} "
             "minutes, the training-mode search's baseline, 60% parameter cap and start; real runs "
             "train on a process pool, simulated runs replay the table on a simulated clock. Final "
             f"protocol: real picks retrained on seeds {', '.join(map(str, FRESH_SEEDS))} (mean "
             "test accuracy); simulated picks scored by the table's mean over their recorded "
             "seeds.", "",
             "The table's seconds were measured on the machine that built it (AMD EPYC). A "
             "simulated run models one machine: the table's seconds times that machine's "
             "`time_scale` (its training time over the table's, measured by a short real random "
             "search whose candidates' seconds are compared with the table's: "
             "`prednas.search.simulate.measure_time_scale`), and real "
             "runs are compared with the simulated runs of their own machine at its current "
             "scale.", "",
             "| machine | time_scale | how it was measured | used |", "|---|---:|---|---|",
             f"| {EARLIER} | 1.000 | the table's own machine | yes |",
             *(f"| {m['cpu']} | {m['time_scale']:.3f} | "
               f"{m.get('estimator', 'geometric mean of the ratios of 6 runs over the whole range')}"
               f" | {'yes' if m.get('estimator') == ESTIMATOR else 'no: superseded'} |"
               for m in read_scales(all_rows=True)), "",
             "| strategy | mode | machine | runs | evaluations (mean ± SE) "
             "| pick's final accuracy (mean ± SE) | real seconds per run |",
             "|---|---|---|---:|---:|---:|---:|"]
    verdict = []

    def of(strategy, sim):
        return [r for r in rows if r["strategy"] == strategy and r["simulated"] == sim
                and r["minutes"] == minutes]

    for strategy in STRATEGIES:
        for sim in (False, True):
            for machine in sorted({_machine(r) for r in of(strategy, sim)}):
                rs = [r for r in of(strategy, sim) if _machine(r) == machine]
                ev = _mean_se([r["evaluations"] for r in rs])
                acc = _mean_se([r.get("final_acc") for r in rs])
                wall = float(np.median([r["wall_seconds"] for r in rs]))
                lines.append(f"| {strategy} | {'simulated' if sim else 'real'} | {machine} | "
                             f"{len(rs)} | {ev[0]:.1f} ± {ev[1]:.1f} | {acc[0]:.2f} ± "
                             f"{acc[1]:.2f} | {wall:.1f} |")
        c = compare(of(strategy, False), of(strategy, True))
        if c is None:
            continue
        where = ", ".join(f"{m}: {n}" for m, n in c["machines"].items())
        per = ("; per machine " + ", ".join(f"{100 * d:+.1f}%" for d in c["per_machine"].values())
               if len(c["per_machine"]) > 1 else "")
        off = [m for m, d in c["per_machine"].items() if abs(d) > 0.15]
        verdict.append(
            f"- {strategy} (real runs by machine: {where}): evaluations {c['ev_sim']:.1f} "
            f"simulated vs {c['ev_real']:.1f} real, {100 * c['dev']:+.1f}%{per} (target within "
            f"±15% on every machine: "
            f"{'met' if not off and abs(c['dev']) <= 0.15 else 'MISSED on ' + ', '.join(off)}"
            f"); pick accuracy "
            f"{c['acc_sim']:.2f} vs {c['acc_real']:.2f}, {c['diff']:+.2f} points (one standard "
            f"error of the difference, counting the final protocol's own scoring noise: "
            f"{c['se_scored']:.2f}; {'met' if abs(c['diff']) <= c['se_scored'] else 'MISSED'}; "
            f"the runs' spread alone: {c['se_runs']:.2f}, "
            f"{'within' if abs(c['diff']) <= c['se_runs'] else 'outside'})")
    sims = [r["wall_seconds"] for r in rows if r["simulated"] and r["strategy"] == "prednas"
            and r["minutes"] == minutes]
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
            picks = Counter(r["pick"] for r in of(strategy, sim))
            if picks:
                lines.append(f"| {strategy} | {'simulated' if sim else 'real'} | "
                             + ", ".join(f"`{_cell(a)}` ({n})" for a, n in picks.most_common())
                             + " |")
    return "\n".join(lines) + "\n"


def read_scales(all_rows: bool = False):
    """Each machine's ``time_scale``: its latest measurement by today's estimator
    (:data:`ESTIMATOR`); with ``all_rows``, every measurement in the log (a superseded one
    stays there, with what it measured)."""
    rows = ([json.loads(x) for x in MACHINES.read_text().splitlines()]
            if MACHINES.exists() else [])
    if all_rows:
        return rows
    return {r["cpu"]: float(r["time_scale"]) for r in rows if r.get("estimator") == ESTIMATOR}


def _at_scale(rows: list[dict], scales: dict[str, float]) -> list[dict]:
    """The runs to compare: real runs, and the simulated runs made with their machine's
    current ``time_scale`` (those of a superseded measurement stay in the log)."""
    return [r for r in rows if not r["simulated"]
            or math.isclose(r.get("time_scale", 1.0), scales.get(_machine(r), 1.0))]


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
    from prednas.benchmarks.build import machine_name
    from prednas.errors import DataNotFoundError
    from prednas.search.simulate import measure_time_scale

    bench = benchmarks.load("blocks1d-mnist1d-v2")
    try:
        if args.only != "real":  # real runs take only the space and the recipe from the table
            bench.require_complete()
    except DataNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 2
    rows = [json.loads(x) for x in LOG.read_text().splitlines()] if LOG.exists() else []
    here = machine_name()
    done_real = {(r["strategy"], r["seed"], r["minutes"]) for r in rows if not r["simulated"]}
    scales = read_scales()
    done_sim = {(r["strategy"], r["seed"], r["minutes"]) for r in _at_scale(rows, scales)
                if r["simulated"] and _machine(r) == here and here in scales}
    # real and simulated runs interleaved seed by seed, strategies alternating; the simulated
    # runs model this machine
    todo = [(st, s, sim) for s in range(max(args.real_seeds, args.sim_seeds))
            for st in STRATEGIES for sim in (False, True)
            if (s < (args.sim_seeds if sim else args.real_seeds))
            and args.only in (None, "simulated" if sim else "real")
            and (st, s, args.minutes) not in (done_sim if sim else done_real)]
    if todo and here not in scales:
        print(f"measuring this machine's speed against the table's ({here})", flush=True)
        cap = int(0.6 * _params(bench.space, bench.space.default_arch()))
        m = measure_time_scale(bench, n=48, workers=2, seed=CALIBRATION_SEED, max_params=cap)
        with open(MACHINES, "a") as f:
            f.write(json.dumps({"cpu": here, "estimator": ESTIMATOR, **m}) + "\n")
        scales[here] = float(m["time_scale"])
        print(f"time_scale {scales[here]:.3f}", flush=True)
    for st, s, sim in todo:
        row = one_run(st, s, args.minutes, sim, time_scale=scales.get(here, 1.0))
        row["load"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        with open(LOG, "a") as f:
            f.write(json.dumps(row) + "\n")
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.only == "real" and not bench.complete:  # the report waits for the simulated runs
        return 0
    OUT.write_text(report(rows, args.minutes, scales))
    print(OUT.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
