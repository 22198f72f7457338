"""Bring your own network: the default search over a user's 1-D CNN's generated space, 3 seeds.

Runs, as a user would, ``prednas search --model examples/models.py:SmallCNN1d --task mnist1d
--seed S`` with every other option at its default (the network is the baseline, trained with the
same recipe; candidates have at most 60% of its parameters; the default evaluation budget with its
wall-time guard; the winner is ensembled). Each run is a normal run directory under ``--runs``;
the script resumes: a finished run is read back, an unfinished one continues with ``--resume``.

**Final protocol:** the network and the search's winner are each retrained on 5 fresh seeds
(1000 to 1004, never seen by the search) with the run's recipe (its evaluator's steps, batch size,
learning rate and weight decay, on its task and splits); a model's score is their mean test
accuracy. The target is met when the winner's score reaches the network's at <= 60% of its
parameters. The retrainings are appended to ``benchmarks/byo-mnist1d.jsonl`` as they finish (a
run of the script resumes from them).

Writes ``benchmarks/byo-mnist1d.md``: per seed the user's network and the winner on the final
protocol, their parameters, whether the target is met, and, as the search saw them, the winner's
validation and test accuracy from its one training, the first candidate whose one training
reaches the network's, and the ensemble of the winner.

    python scripts/benchmark_byo.py                  # 3 seeds (~6 min each on 2 idle cores)
    python scripts/benchmark_byo.py --seeds 1 --out /tmp/byo.md -- --budget 4 --task-opt num_samples=2000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from prednas.search import defaults
from prednas.search.protocol import FRESH_SEEDS
from prednas.utils import append_log, read_log, split_passthrough

ROOT = Path(__file__).resolve().parents[1]
MODEL = "examples/models.py:SmallCNN1d"
CAP = 0.6
LOG = ROOT / "benchmarks" / "byo-mnist1d.jsonl"


def _logged() -> list[dict]:
    return read_log(LOG)


def final_protocol(run: Path, archs: list[str]) -> dict[str, float]:
    """Score of each of ``archs`` on the final protocol (:func:`prednas.search.protocol.retrain`:
    the fresh seeds, the run's recipe); retrainings already in :data:`LOG` (same run) are read
    back, new ones appended."""
    from prednas.search.protocol import retrain, score

    key = str(run.resolve().relative_to(ROOT) if run.resolve().is_relative_to(ROOT) else run)

    def log(row: dict) -> None:
        append_log(LOG, {"run": key, **row})

    rows = retrain(run, archs, FRESH_SEEDS, done=[r for r in _logged() if r["run"] == key],
                   on_result=log)
    return {a: score(v) for a, v in rows.items()}


def read_run(run: Path) -> tuple[list[dict], dict]:
    """The evaluation records and the state of a run directory (empty when there is none yet)."""
    from prednas.search.rundir import RunDir

    if not RunDir(run).state_path.is_file():
        return [], {}
    _, state, recs = RunDir.open(run, lock=False)
    return recs, state


def run_one(seed: int, args, extra: list[str]) -> Path:
    run = Path(args.runs) / f"s{seed}"
    _, state = read_run(run)
    if state.get("done"):
        return run
    cmd = [sys.executable, "-m", "prednas", "search"]
    if state:
        cmd += ["--resume", str(run)]
    else:
        cmd += ["--model", args.model, "--task", "mnist1d", "--seed", str(seed), "--out", str(run),
                *extra]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)
    return run


def summarise(run: Path) -> dict:
    recs, state = read_run(run)
    ok = [r for r in recs if r["status"] == "ok"]
    base = next(r for r in ok if r["kind"] == "baseline")
    cands = sorted((r for r in ok if r["kind"] == "candidate"), key=lambda r: r["query"])
    best = json.loads((run / "best.json").read_text())
    first = next((i + 1 for i, r in enumerate(cands) if r["test_acc"] >= base["test_acc"]
                  and r["params"] <= CAP * base["params"]), None)
    ens = state.get("ensemble") or {}
    final = final_protocol(run, list(dict.fromkeys([base["arch"], best["arch"]])))
    return {"run": run, "base_test": base["test_acc"], "base_params": base["params"],
            "base_final": final[base["arch"]], "final": final[best["arch"]],
            "met_final": (final[best["arch"]] >= final[base["arch"]]
                          and best["params"] <= CAP * base["params"]),
            "arch": best["arch"], "val": best["val_acc"], "test": best["test_acc"],
            "params": best["params"], "ratio": best["params"] / base["params"],
            "first": first, "n": len(cands), "ens_test": ens.get("test_acc"),
            "seconds": state.get("elapsed")}


def main(argv=None) -> int:
    global LOG
    argv, extra = split_passthrough(list(sys.argv[1:] if argv is None else argv))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--model", default=MODEL, help="FILE.py:FUNCTION, the user's network")
    ap.add_argument("--runs", default=None,
                    help="where the run directories go (default runs/bench-byo/<defaults tag>)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "byo-mnist1d.md"))
    ap.add_argument("--log", default=str(LOG), help="the final protocol's retrainings (JSONL)")
    args = ap.parse_args(argv)
    LOG = Path(args.log)
    if args.runs is None:
        args.runs = str(ROOT / "runs" / "bench-byo" / defaults.defaults_tag())
    t0 = time.time()
    rows = [summarise(run_one(s, args, extra)) for s in range(args.seeds)]

    from prednas.benchmarks.build import machine_name
    from prednas.utils import fmt_number

    runs = Path(args.runs)
    runs = runs.relative_to(ROOT) if runs.is_relative_to(ROOT) else runs
    cmd = " ".join(["python scripts/benchmark_byo.py", f"--seeds {args.seeds}",
                    *([f"--model {args.model}"] if args.model != MODEL else []),
                    *(["--", *extra] if extra else [])])
    lines = [
        "# Bring your own network: searching variants of a user's 1-D CNN on MNIST-1D", "",
        f"The network is `{args.model}` (a sequential CNN written as a user would, not tuned by "
        "us). Each seed runs `prednas search --model ... --task mnist1d --seed S` with the "
        "defaults"
        + (f" and `{' '.join(extra)}` (not the default search)" if extra else "")
        + ": the network is trained as the baseline with the search's recipe, the space is "
        "generated from it (`spaces.from_model`), candidates are capped at 60% of its "
        "parameters, and the search names the winner. Final protocol: the network and the "
        f"winner retrained on the fresh seeds {', '.join(map(str, FRESH_SEEDS))} with the run's "
        "recipe, scored by their mean test accuracy.", "",
        f"- Command: `{cmd}`",
        f"- Machine: {machine_name()}; this invocation took {(time.time() - t0) / 60:.1f} min "
        "(finished runs are read back)",
        f"- Run directories: `{runs}/s<seed>`",
        "",
        "| seed | network (final protocol) | network params | winner | winner (final "
        "protocol) | winner params (ratio) | target: winner >= network at <= 60% params | "
        "winner val / test acc (one training) | first candidate whose one training does "
        "(of n) | ensemble test acc | search seconds |",
        "|---|---:|---:|---|---:|---:|---|---:|---:|---:|---:|"]
    for s, r in enumerate(rows):
        arch = r["arch"].replace("|", "\\|")  # a table cell
        lines.append(
            f"| {s} | {r['base_final']:.2f} | {r['base_params']:,} | `{arch}` | "
            f"{r['final']:.2f} | {r['params']:,} ({r['ratio']:.0%}) | "
            f"{'yes' if r['met_final'] else 'no'} | {r['val']:.2f} / {r['test']:.2f} | "
            f"{r['first'] or 'none'} (of {r['n']}) | "
            f"{fmt_number(r['ens_test'])} | {fmt_number(r['seconds'], 0)} |")
    met = sum(r["met_final"] for r in rows)
    gap = np.array([r["final"] - r["base_final"] for r in rows])
    lines += ["", "## Target", "",
              f"- On the final protocol the winner reaches the network's accuracy at <= 60% of "
              f"its parameters in {met} of {len(rows)} seeds (mean difference "
              f"{gap.mean():+.2f} points, min {gap.min():+.2f}): "
              f"**{'met' if met == len(rows) else 'missed'}**", ""]
    out = Path(args.out)
    out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
