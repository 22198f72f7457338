#!/usr/bin/env python
"""Score NB201 architectures with a warmed-up supernet and measure how well the scores rank them.

For each warm-up length in ``--steps`` a fresh supernet is warmed up (``prednas.warmup``) and the
same ``--n`` architectures are scored; Spearman and Kendall tau against the NB201 200-epoch test
accuracies (CIFAR-10, CIFAR-100, ImageNet16-120), the warm-up cost and the per-architecture scoring
cost go to ``--report`` (markdown). ``--out`` gets the scores of the longest warm-up as
``arch,supernet_acc,supernet_neg_loss``. The architectures are a seeded sample of engineer P's
shipped proxy table when it exists (so the scores join with the proxy features), else of the whole
NB201 table.

    python scripts/supernet_scores.py --space nb201 --task cifar10 \\
        --task-path /work/shared/data/cifar10-subset.npz --n 300 --seed 0 --steps 150 600 \\
        --out benchmarks/supernet-nb201-scores.csv --report benchmarks/supernet-nb201.md
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import platform
import shlex
import sys
import time

import numpy as np
import torch

import prednas
import spaces
from prednas.errors import PredNASError
from prednas.metrics import rank_correlations
from prednas.supernet import SupernetScores
from prednas.utils import atomic_write_text, make_rng

log = logging.getLogger("supernet_scores")
METRICS = ("cifar10_test_200ep", "cifar100_test_200ep", "imagenet16_test_200ep")


def choose_archs(n: int, seed: int, bench) -> tuple[list[str], str]:
    """``n`` arch strings from the shipped proxy table if there is one, else the NB201 table."""
    pool, source = None, "NB201 table (no shipped proxy table found)"
    try:
        import proxies

        table = proxies.load_table("nb201", "cifar10")
        known = set(bench.arch_strings())
        pool = [a for a in table.arch_strings if a in known] or None
        if pool:
            source = f"engineer P's shipped proxy table ({len(table.arch_strings)} archs)"
    except (ImportError, AttributeError, PredNASError, OSError) as exc:
        log.info("no shipped proxy table (%s); sampling from the NB201 table", exc)
    if pool is None:
        pool = list(bench.arch_strings())
    rng = make_rng(seed)
    idx = rng.choice(len(pool), size=min(n, len(pool)), replace=False)
    return [pool[i] for i in sorted(idx)], source


def downsample(task, resolution: int):
    side = task.input_shape[-1]
    if not resolution or resolution >= side:
        return task
    k = side // resolution
    pool = lambda x: torch.nn.functional.avg_pool2d(x, k)  # noqa: E731
    return dataclasses.replace(task, x_train=pool(task.x_train), x_val=pool(task.x_val),
                               x_test=pool(task.x_test),
                               input_shape=(task.input_shape[0], side // k, side // k))


def correlations(scores: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    rho, tau, _ = rank_correlations(scores, truth, min_pairs=2)
    return rho, tau


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="nb201", choices=["nb201"])
    ap.add_argument("--task", default="cifar10")
    ap.add_argument("--task-path", default=None)
    ap.add_argument("--n", type=int, default=300, help="architectures to score")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, nargs="+", default=[200],
                    help="warm-up lengths (a fresh supernet each); --out gets the longest")
    ap.add_argument("--fraction", type=float, default=1.0, help="share of the training split")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--C", type=int, default=8, help="supernet channels (benchmark nets: 16)")
    ap.add_argument("--N", type=int, default=2, help="cells per stage (benchmark nets: 5)")
    ap.add_argument("--resolution", type=int, default=16,
                    help="average-pool the images down to this side for the supernet (0: keep)")
    ap.add_argument("--calib-size", type=int, default=128)
    ap.add_argument("--val-size", type=int, default=256)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", required=True, help="CSV of the longest warm-up's scores")
    ap.add_argument("--report", default=None,
                    help="markdown report (e.g. benchmarks/supernet-nb201.md)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    t_all = time.perf_counter()
    space = spaces.get(args.space)
    bench = prednas.benchmarks.load("nb201")
    kw = {"path": args.task_path} if args.task_path else {}
    task = downsample(prednas.tasks.get(args.task, **kw), args.resolution)
    archs, source = choose_archs(args.n, args.seed, bench)
    truth = {m: np.asarray(bench.values(m, archs=archs), dtype=float) for m in METRICS}
    log.info("scoring %d archs from %s on %s", len(archs), source, task)
    rows = []
    for steps in args.steps:
        scorer = prednas.warmup(space, task, fraction=args.fraction, steps=steps,
                                batch_size=args.batch_size, seed=args.seed, device=args.device,
                                lr=args.lr, calib_size=args.calib_size, val_size=args.val_size,
                                C=args.C, N=args.N)
        feats = scorer.features(archs, progress=True)
        row = {"steps": steps, "warmup_s": scorer.seconds, "per_arch_s": scorer.seconds_per_arch,
               "final_loss": scorer.loss_curve[-1] if scorer.loss_curve else float("nan")}
        for m in METRICS:
            row[m] = {"acc": correlations(feats[:, 0], truth[m]),
                      "neg_loss": correlations(feats[:, 1], truth[m])}
        rows.append(row)
        log.info("steps=%d warm-up %.1f s, %.3f s/arch, spearman(acc, c10)=%.3f", steps,
                 scorer.seconds, scorer.seconds_per_arch, row[METRICS[0]]["acc"][0])
        # written after every warm-up length, so a cut-short run still leaves its results;
        # the CSV holds the longest warm-up's scores
        if steps >= max(r["steps"] for r in rows):
            SupernetScores(space, archs, feats).to_csv(args.out)
        total = time.perf_counter() - t_all
        if args.report:
            atomic_write_text(args.report, report(args, rows, source, len(archs), task, total))
    for r in rows:
        print(f"steps={r['steps']}: warm-up {r['warmup_s']:.1f} s, {r['per_arch_s']:.3f} s/arch, "
              + ", ".join(f"{m.split('_')[0]} rho={r[m]['acc'][0]:.3f}/{r[m]['neg_loss'][0]:.3f}"
                          for m in METRICS))
    print(f"total {total:.0f} s; scores -> {args.out}")
    return 0


def report(args, rows, source, n, task, total) -> str:
    cmd = "python scripts/supernet_scores.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    lines = [
        "# Warm-up supernet on NB201: how well do its scores rank architectures?",
        "",
        f"Produced by `{cmd}`",
        f"(whole run {total:.0f} s, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}).",
        "",
        "## Setting",
        f"- Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores "
        "shared "
        f"with other jobs (load average at the end {', '.join(f'{x:.1f}' for x in load)}), torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads, device `{args.device}`.",
        f"- Supernet: NB201 skeleton with **C={args.C}, N={args.N}** (the benchmark networks use "
        "C=16, N=5), every edge holding all 4 live ops; single-path uniform sampling (SPOS), "
        f"AdamW lr {args.lr} with a cosine schedule, batch {args.batch_size}.",
        f"- Data: `{args.task}` ({task.info.get('source', args.task_path or '')}), "
        f"training fraction {args.fraction:g} of its {len(task.y_train)} training images, images "
        f"average-pooled to "
        f"{task.input_shape[1]}x{task.input_shape[2]}"
        + (" (to fit this CPU)" if args.resolution else "") + ".",
        f"- Scoring: BN statistics recalibrated per architecture on {args.calib_size} training "
        f"images, then accuracy (`supernet_acc`) and negative cross-entropy (`supernet_neg_loss`) "
        f"on {args.val_size} held-out validation images.",
        f"- Architectures: {n}, a seeded (seed {args.seed}) sample from {source}. Ground truth: "
        "NB201 200-epoch test accuracy (mean over seeds).",
        "",
        "## Rank correlation with the 200-epoch test accuracy (Spearman rho / Kendall tau)",
        "",
        "| warm-up steps | warm-up s | scoring s/arch | final train loss | score | CIFAR-10 | "
        "CIFAR-100 | ImageNet16-120 |",
        "|---:|---:|---:|---:|---|---|---|---|",
    ]
    for r in rows:
        for key in ("acc", "neg_loss"):
            cells = " | ".join(f"{r[m][key][0]:.3f} / {r[m][key][1]:.3f}" for m in METRICS)
            head = (f"| {r['steps']} | {r['warmup_s']:.1f} | {r['per_arch_s']:.3f} | "
                    f"{r['final_loss']:.3f}" if key == "acc" else "| | | |")
            lines.append(f"{head} | supernet_{key} | {cells} |")
    lines += [
        "",
        "Scores and correlations come from this run only (one seed); with a few hundred "
        "validation images `supernet_acc` has ties, which `supernet_neg_loss` breaks. The per-"
        "architecture cost is BN recalibration plus one validation pass, on this shared CPU.",
        f"The scores of the longest warm-up are shipped as `{args.out}` for the predictor "
        "benchmark.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except PredNASError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
