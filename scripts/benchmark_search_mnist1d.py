"""Real training on MNIST-1D: the default ``prednas search`` vs. Model Search's loop, REA and random.

Every method gets the same wall-clock budget (``--minutes``) and the same recipe (the default
``prednas search`` settings: 300 steps per candidate, the 60% parameter cap of the baseline, one
worker per core), for ``--seeds`` seeds; runs are interleaved (seed by seed, method by method) so a
busy machine slows every method alike. Each run is a normal run directory under ``--runs``; the
script resumes: a finished run is read back, an unfinished one continues with ``--resume``.

Writes ``benchmarks/search-mnist1d.md`` and ``.png``: per method the best model's test accuracy and
parameters (mean and spread over seeds), and the time until the first candidate matched the
baseline's test accuracy at <= 60% of its parameters.

    python scripts/benchmark_search_mnist1d.py --seeds 3 --minutes 6
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("prednas", "prednas-start", "modelsearch", "rea", "random")
#: ``prednas-start``: the default search started, as Model Search starts, from the baseline shrunk
#: to fit the 60% parameter cap (three 5-wide convolutions of 32 channels)
START = "conv5:32|conv5:32|conv5:32"


def _records(run: Path) -> list[dict]:
    path = run / "evaluations.jsonl"
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.endswith("}")]


def _done(run: Path) -> bool:
    try:
        return bool(json.loads((run / "state.json").read_text()).get("done"))
    except (OSError, ValueError):
        return False


def run_one(method: str, seed: int, args) -> Path:
    run = Path(args.runs) / f"{method}-s{seed}"
    if _done(run):
        return run
    cmd = [sys.executable, "-m", "prednas", "search", "--seed", str(seed), "--replicas", "0",
           "--budget", str(args.budget), "--max-minutes", str(args.minutes)]
    if (run / "state.json").exists():
        cmd += ["--resume", str(run)]
    elif method == "prednas-start":
        cmd += ["--strategy", "prednas", "--start", START, "--out", str(run)]
    else:
        cmd += ["--strategy", method, "--out", str(run)]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)
    return run


def summarise(run: Path, cap_ratio: float = 0.6) -> dict:
    recs = _records(run)
    base = next((r for r in recs if r["kind"] == "baseline" and r["status"] == "ok"), None)
    cands = sorted([r for r in recs if r["kind"] == "candidate" and r["status"] == "ok"],
                   key=lambda r: r["query"])
    best = max(cands, key=lambda r: (r["objective"], -r.get("params", 0)), default=None)
    t, hit = 0.0, None
    if base is not None:
        t = base.get("seconds", 0.0)
        for r in cands:
            t += r.get("seconds", 0.0)
            if (r.get("test_acc", -1) >= base["test_acc"]
                    and r.get("params", 1e18) <= cap_ratio * base["params"]):
                hit = t
                break
    return {"n": len(cands), "best_test": best.get("test_acc") if best else np.nan,
            "best_params": best.get("params") if best else np.nan,
            "base_test": base["test_acc"] if base else np.nan,
            "base_params": base["params"] if base else np.nan, "hit_seconds": hit,
            "curve": [(r.get("seconds", 0.0), r.get("test_acc")) for r in cands]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--minutes", type=float, default=6.0, help="wall-clock budget per run")
    ap.add_argument("--budget", type=int, default=1000,
                    help="evaluation budget (large: the wall clock is the budget here)")
    ap.add_argument("--methods", nargs="+", default=list(METHODS))
    ap.add_argument("--runs", default=str(ROOT / "runs" / "bench-mnist1d"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "search-mnist1d.md"))
    args = ap.parse_args(argv)
    t0 = time.time()
    results: dict[str, list[dict]] = {m: [] for m in args.methods}
    for seed in range(args.seeds):
        for m in args.methods:
            results[m].append(summarise(run_one(m, seed, args)))

    from prednas.benchmarks.build import machine_name
    from prednas.utils import new_figure

    out = Path(args.out)
    lines = ["# Search with real training on MNIST-1D: the default prednas search vs. baselines",
             "", f"Command: `python scripts/benchmark_search_mnist1d.py --seeds {args.seeds} "
             f"--minutes {args.minutes:g}` on {machine_name()}; {args.minutes:g} minutes of "
             f"wall clock per run, {args.seeds} seeds, the default `prednas search` recipe for "
             "every method (300 steps per candidate, parameter cap 60% of the baseline, one "
             "worker per core, no ensemble); this run took "
             f"{(time.time() - t0) / 60:.0f} min (runs already finished are read back).", "",
             "| method | candidates | best test acc (mean ± std) | best params (mean) | "
             "baseline test acc | first match of the baseline at <= 60% params (s) |",
             "|---|---:|---:|---:|---:|---:|"]
    for m in args.methods:
        rs = results[m]
        acc = np.array([r["best_test"] for r in rs], float)
        hits = [r["hit_seconds"] for r in rs]
        hit_txt = ", ".join("never" if h is None else f"{h:.0f}" for h in hits)
        lines.append(f"| {m} | {np.mean([r['n'] for r in rs]):.1f} | {np.nanmean(acc):.2f} ± "
                     f"{np.nanstd(acc):.2f} | {np.nanmean([r['best_params'] for r in rs]):,.0f} | "
                     f"{np.nanmean([r['base_test'] for r in rs]):.2f} | {hit_txt} |")
    if "prednas" in results:
        mine = np.nanmean([r["best_test"] for r in results["prednas"]])
        lines += ["", "## Target", ""]
        for m in args.methods:
            if m == "prednas":
                continue
            other = np.nanmean([r["best_test"] for r in results[m]])
            lines.append(f"- prednas mean best test accuracy {mine:.2f} at or above {m}'s "
                         f"{other:.2f}: **{'met' if mine >= other else 'missed'}**")
    fig, ax = new_figure((6, 4))
    for m in args.methods:
        for i, r in enumerate(results[m]):
            if not r["curve"]:
                continue
            secs = np.cumsum([c[0] for c in r["curve"]])
            acc = np.maximum.accumulate([c[1] for c in r["curve"]])
            ax.plot(secs, acc, drawstyle="steps-post", color=f"C{args.methods.index(m)}",
                    label=m if i == 0 else None, alpha=0.8)
    ax.set_xlabel("training seconds (sum over candidates)")
    ax.set_ylabel("best test accuracy so far (%)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=120)
    lines += ["", f"![best so far]({out.with_suffix('.png').name})", ""]
    out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
