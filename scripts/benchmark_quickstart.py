"""The README's main job, measured as a new user meets it: ``benchmarks/quickstart-mnist1d.md``.

Runs ``prednas search`` exactly as the Quick start does (every option at its default; only
``--seed`` and ``--out`` added, seed 0 being the README's own run), times the whole command (the
baseline's training, the search, the ensemble), then scores its pick and the baseline on the final
protocol (:mod:`prednas.search.protocol`: 5 fresh seeds, the run's recipe, mean test accuracy).

Target (issue 20): the pick at or above the baseline on the final protocol, at <= 60% of its
parameters, within 8 minutes on a 2-core machine.

Each finished run, and each retraining, is appended to ``benchmarks/quickstart-mnist1d.jsonl``;
run the script again after an interruption and it continues (an unfinished search is resumed, and
its time is then marked as not measured in one piece). Needs an otherwise idle machine.

    python scripts/benchmark_quickstart.py --seeds 3
    python scripts/benchmark_quickstart.py --seeds 1 --runs /tmp/qs --log /tmp/qs.jsonl \
        --out /tmp/qs.md -- --budget 2      # a quick look (not the main job)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from prednas.search import defaults
from prednas.utils import append_log, read_log, split_passthrough

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "quickstart-mnist1d.md"
LOG = ROOT / "benchmarks" / "quickstart-mnist1d.jsonl"
MINUTES = 8.0
CAP = 0.6


def _rows() -> list[dict]:
    return read_log(LOG)


def _log(row: dict) -> None:
    append_log(LOG, row)


def run_one(seed: int, runs: Path, extra: list[str]) -> dict:
    """The main job for ``seed`` (read back when already logged)."""
    from prednas.search.rundir import RunDir

    got = next((r for r in _rows() if r["type"] == "run" and r["seed"] == seed
                and r.get("run") == str(runs / f"s{seed}")), None)
    if got is not None:
        return got
    run = runs / f"s{seed}"
    resumed = RunDir(run).state_path.is_file()
    cmd = [sys.executable, "-m", "prednas", "search"]
    cmd += ["--resume", str(run)] if resumed else ["--seed", str(seed), "--out", str(run),
                                                   *extra]
    print("+", " ".join(cmd), flush=True)
    t = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    _, _, recs = RunDir.open(run, lock=False)
    best = json.loads((run / "best.json").read_text())
    base = next(r for r in recs if r["kind"] == "baseline")
    row = {"type": "run", "seed": seed, "run": str(run), "wall_seconds": wall,
           "resumed": resumed, "pick": best["arch"], "pick_params": best["params"],
           "baseline": base["arch"], "baseline_params": base.get("params"),
           "candidates": sum(1 for r in recs if r["kind"] == "candidate"),
           "load": os.getloadavg()[0]}
    _log(row)
    return row


def final_protocol(run: dict) -> dict[str, float]:
    from prednas.search.protocol import FRESH_SEEDS, retrain, score

    done = [r for r in _rows() if r["type"] == "final" and r["run"] == run["run"]]
    rows = retrain(run["run"], [run["baseline"], run["pick"]], FRESH_SEEDS, done=done,
                   on_result=lambda r: _log({"type": "final", "run": run["run"], **r}))
    return {a: score(v) for a, v in rows.items()}


def report(results: list[tuple[dict, dict]], extra: list[str]) -> str:
    from prednas.benchmarks.build import machine_summary
    from prednas.search.protocol import FRESH_SEEDS

    lines = ["# The README's main job, as a new user runs it", "",
             f"Command: `python scripts/benchmark_quickstart.py --seeds {len(results)}` (each "
             "seed runs `prednas search --seed S`, every other option at its default"
             + (f"; NOT the main job: `{' '.join(extra)}` added" if extra else "")
             + "). Machine: "
             f"{machine_summary()}.", "",
             "Final protocol: the pick and the baseline retrained on the fresh seeds "
             f"{', '.join(map(str, FRESH_SEEDS))} with the run's recipe, scored by their mean "
             "test accuracy. Target: the pick at or "
             f"above the baseline at <= {CAP:.0%} of its parameters, within {MINUTES:g} minutes.",
             "", "| seed | wall minutes (whole job) | candidates | baseline (final protocol) | "
             "pick | pick (final protocol) | params ratio | target met | load |",
             "|---:|---:|---:|---:|---|---:|---:|---|---:|"]
    met = []
    for run, sc in results:
        ratio = run["pick_params"] / run["baseline_params"]
        ok = (sc[run["pick"]] >= sc[run["baseline"]] and ratio <= CAP
              and run["wall_seconds"] <= 60 * MINUTES and not run["resumed"])
        met.append(ok)
        pick = run["pick"].replace("|", "\\|")
        lines.append(f"| {run['seed']} | {run['wall_seconds'] / 60:.1f}"
                     f"{' (resumed)' if run['resumed'] else ''} | {run['candidates']} | "
                     f"{sc[run['baseline']]:.2f} | `{pick}` | {sc[run['pick']]:.2f} | "
                     f"{ratio:.0%} | {'yes' if ok else 'no'} | {run['load']:.1f} |")
    gap = np.array([sc[r["pick"]] - sc[r["baseline"]] for r, sc in results])
    lines += ["", f"Target met in {sum(met)} of {len(met)} seeds (pick − baseline on the final "
              f"protocol: mean {gap.mean():+.2f}, min {gap.min():+.2f} points).", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    global LOG
    argv, extra = split_passthrough(list(sys.argv[1:] if argv is None else argv))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--runs", default=None,
                    help="where the run directories go (default runs/bench-quickstart/<defaults "
                         "tag>)")
    ap.add_argument("--log", default=str(LOG))
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    LOG = Path(args.log)
    if args.runs is None:
        args.runs = str(ROOT / "runs" / "bench-quickstart" / defaults.defaults_tag())
    results = []
    for seed in range(args.seeds):
        run = run_one(seed, Path(args.runs), extra)
        results.append((run, final_protocol(run)))
    text = report(results, extra)
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
