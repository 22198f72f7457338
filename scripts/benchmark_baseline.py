#!/usr/bin/env python
"""Train the hand-written blocks1d CNN baseline on MNIST-1D and record accuracy and wall time.

Target (foundation issue): >= 90% test accuracy in under 60 s on the 2-core CPU.
Writes ``benchmarks/baseline-mnist1d.md``.

    python scripts/benchmark_baseline.py --seeds 0 1 2 --device cpu
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch

import prednas
import spaces


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default=None, help="default: blocks1d's baseline CNN")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "benchmarks"
                                         / "baseline-mnist1d.md"))
    args = ap.parse_args()
    space = spaces.get("blocks1d")
    arch = space.parse(args.arch) if args.arch else space.default_arch()
    t0 = time.perf_counter()
    task = prednas.tasks.get("mnist1d")
    gen_s = time.perf_counter() - t0
    rows = []
    for seed in args.seeds:
        rec = prednas.train(space, arch, task, epochs=args.epochs, seed=seed, device=args.device)
        rows.append(rec)
        print(f"seed {seed}: test {rec.test_acc:.2f}%  {rec.wall_time:.1f}s", flush=True)
    accs = [r.test_acc for r in rows]
    secs = [r.wall_time for r in rows]
    ok = min(accs) >= 90 and max(secs) < 60
    dev = rows[0].device
    cpu = f"{os.cpu_count()} CPU cores, torch {torch.__version__}, threads {torch.get_num_threads()}"
    lines = [
        "# Baseline CNN on MNIST-1D",
        "",
        f"Measured by `python scripts/benchmark_baseline.py --seeds {' '.join(map(str, args.seeds))} "
        f"--device {args.device}` on {platform.machine()} ({cpu}), device `{dev}`.",
        "",
        f"- Architecture (blocks1d): `{arch}` ({rows[0].params:,} parameters, "
        f"{rows[0].flops:,} FLOPs per example)",
        f"- Task: MNIST-1D generated offline ({len(task.y_train)} train / {len(task.y_val)} val / "
        f"{len(task.y_test)} test), generation took {gen_s:.1f} s",
        f"- Recipe: {args.epochs} epochs, AdamW lr 3e-3, one-cycle, batch 128",
        "",
        "| seed | test acc (%) | val acc (%) | training wall time (s) |",
        "|---:|---:|---:|---:|",
        *[f"| {r.seed} | {r.test_acc:.2f} | {r.val_acc:.2f} | {r.wall_time:.1f} |" for r in rows],
        f"| mean | {statistics.mean(accs):.2f} | {statistics.mean(r.val_acc for r in rows):.2f} | "
        f"{statistics.mean(secs):.1f} |",
        "",
        f"Target: >= 90% test accuracy in under 60 s. Result: {'met' if ok else 'MISSED'} "
        f"(worst seed {min(accs):.2f}% , slowest {max(secs):.1f} s).",
        "",
    ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
