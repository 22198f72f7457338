"""End to end: ``prednas pipeline`` with its defaults on MNIST-1D, timed from the command line.

Runs ``prednas pipeline`` (search, retrain the best 3, tune the winner's recipe with 12 Optuna
trials, ensemble 3 trainings, export TorchScript) as a user would, in a subprocess, and writes
``benchmarks/pipeline-mnist1d.md``: wall time end to end (target: at most 15 minutes on a 2-core
CPU), seconds per stage, the tuned recipe's validation accuracy against the default recipe's, and
the final model's test accuracy and parameters.

    python scripts/benchmark_pipeline.py                      # the defaults (~15 min on 2 cores)
    python scripts/benchmark_pipeline.py --run runs/bench-p   # resumes that run if it exists
    python scripts/benchmark_pipeline.py --out /tmp/p.md -- --task-opt num_samples=400 \\
        --budget 2 --steps 3 --trials 2 --replicas 1        # a check of seconds, not a result

Arguments after ``--`` go to ``prednas pipeline`` (they are written into the report: a run with
them is not the default pipeline). An existing run directory is resumed (only the time of this
invocation is measured then, and the report says so).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_MINUTES = 15.0
STAGES = ("search", "retrain", "tune", "ensemble", "export")


def _done(run: Path) -> dict[str, dict]:
    path = run / "stages.jsonl"
    if not path.exists():
        return {}
    out = {}
    for line in path.read_text().splitlines():
        if line.endswith("}"):
            rec = json.loads(line)
            if rec.get("event") == "done":
                out[rec["stage"]] = rec["summary"]
    return out


def _cpu() -> str:
    from prednas.benchmarks.build import machine_name

    return machine_name()


def _num(x, nd: int = 2) -> str:
    return "n/a" if x is None else f"{float(x):.{nd}f}"


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[:argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=None,
                    help="run directory (default runs/bench-pipeline-<time>)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "pipeline-mnist1d.md"),
                    help="the report to write")
    args = ap.parse_args(own)
    run = Path(args.run or ROOT / "runs" / f"bench-pipeline-{time.strftime('%Y%m%d-%H%M%S')}")
    resumed = (run / "pipeline.json").exists()
    cmd = [sys.executable, "-m", "prednas", "pipeline"]
    cmd += ["--resume", str(run)] if resumed else ["--out", str(run), *extra]
    print("+", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    done = _done(run)
    missing = [s for s in STAGES if s not in done]
    if missing:
        print(f"stages not finished: {', '.join(missing)}", file=sys.stderr)
        return 1

    import torch

    tune, ens, retrain, search = done["tune"], done["ensemble"], done["retrain"], done["search"]
    final = ens["final"]
    options = " -- " + " ".join(extra) if extra else ""
    default_val = (tune.get("default") or {}).get("val_acc")
    rest = wall - sum(done[s].get("seconds", 0) for s in STAGES)
    ok = wall <= 60 * TARGET_MINUTES
    lines = [
        "# prednas pipeline on MNIST-1D, end to end",
        "",
        f"Measured by `python scripts/benchmark_pipeline.py{options}`"
        f" on {platform.machine()} ({os.cpu_count()} CPU cores, {_cpu()}), torch "
        f"{torch.__version__}, Python {platform.python_version()}.",
        "",
        ("The default pipeline" if not extra else "**Not the default pipeline** (options "
         f"`{' '.join(extra)}`)") + ": `prednas pipeline` (blocks1d on MNIST-1D: a search of "
        f"{search['evaluated']} candidates at {search['steps']} steps, the best "
        f"{len(retrain['results'])} retrained for {retrain['steps']} steps, {tune['trials']} "
        f"Optuna trials of the winner's recipe, an ensemble of {final['members']}, a "
        f"{done['export']['format']} export).",
        "",
        f"- wall time end to end: **{wall / 60:.1f} min** ({wall:.0f} s, including start-up)"
        + (" for this invocation, which resumed an existing run" if resumed else "")
        + f"; target <= {TARGET_MINUTES:.0f} min on a 2-core CPU: "
        + ("met" if ok else "**not met**"),
        f"- winner: `{retrain['winner']['arch']}`",
        f"- validation accuracy, default recipe: {_num(default_val)}%"
        f"; tuned recipe: {_num(tune['best']['val_acc'])}% (gain "
        f"{_num(tune.get('gain'))} points; same seed, best of {tune['trials']} trials)",
        f"- the winner on a fresh seed: default recipe (retrain) "
        f"{_num(retrain['winner']['val_acc'])}% val / {_num(retrain['winner']['test_acc'])}% "
        f"test; tuned recipe {_num(ens['single']['val_acc'])}% val / "
        f"{_num(ens['single']['test_acc'])}% test",
        f"- final model ({final['kind']} of {final['members']}): "
        f"{_num(final['test_acc'])}% test accuracy, {final['params']:,} parameters",
        f"- tuned recipe: `{json.dumps(tune['recipe'], sort_keys=True)}`",
        "",
        "| stage | seconds |",
        "|---|---:|",
    ]
    lines += [f"| {s} | {done[s].get('seconds', 0):.0f} |" for s in STAGES]
    lines += [f"| start-up and the rest | {rest:.0f} |",
              f"| **total** | **{wall:.0f}** |", "",
              f"Run directory: `{run}` (its `report.md` has the details).", ""]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
