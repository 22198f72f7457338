#!/usr/bin/env python
"""ST-NAS on NB201 over several seeds: the derived cell's 200-epoch accuracy, looked up.

For each seed, ``prednas.stnas.train`` warms up the NB201 supernet on the task (single-path,
``--sampling``), learns the architecture logits with straight-through gradients for
``--search-steps`` steps, and the argmax of the learned distribution (the derived cell) is looked
up in the NB201 table, with the mean accuracy of the distribution's 5 most probable cells beside
it. Each seed's state is kept under ``--runs`` (``stnas.train`` resumes a killed run) and its
result appended to ``--records`` (JSON lines, one per finished (label, seed)); a seed already
recorded is read back, not run again. ``--out`` gets every label's table and the target line
(mean CIFAR-10 accuracy of the derived cell over the seeds >= 93.0).

    nice -n 10 python scripts/stnas_nb201.py --task-path /work/shared/data/cifar10-subset.npz \\
        --seeds 0 1 2 --warmup-steps 1500 --search-steps 1000 --label uniform
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from supernet_scores import SETTINGS  # noqa: E402

from prednas._choices import SAMPLINGS  # noqa: E402

METRICS = SETTINGS["nb201"]["metrics"]
TITLES = SETTINGS["nb201"]["titles"]
TARGET = 93.0


#: the heading of the hand-written part of --out, kept when the tables are rewritten
READING = "## Reading (hand-written)"


def read_records(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip().endswith("}")]


def run_seed(seed: int, args, task, bench) -> dict:
    from prednas import stnas

    run_dir = Path(args.runs) / args.label / f"s{seed}"
    res = stnas.train("nb201", task, warmup_steps=args.warmup_steps,
                      search_steps=args.search_steps, fraction=1.0, batch_size=args.batch_size,
                      seed=seed, device=args.device, lr=args.lr, alpha_lr=args.alpha_lr,
                      st_terms=args.st_terms, sampling=args.sampling,
                      paths_per_step=args.paths_per_step, run_dir=run_dir,
                      progress=False, C=args.C, N=args.N)
    dist = res.distribution
    arg = str(dist.argmax())
    top = [str(a) for a in dist.top(5)]
    acc = {m: float(bench.values(m, archs=[arg])[0]) for m in METRICS}
    return {"label": args.label, "seed": seed, "argmax": arg, **acc,
            "top5_mean": float(np.mean(bench.values(METRICS[0], archs=top))),
            "entropy": dist.entropy(), "warmup_s": res.warmup_seconds,
            "search_s": res.search_seconds,
            "settings": {k: getattr(args, k) for k in ("warmup_steps", "search_steps", "sampling",
                                                      "alpha_lr", "st_terms", "lr", "batch_size",
                                                      "C", "N", "resolution",
                                                      "paths_per_step")},
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}


def report(records: list[dict], bench, args) -> str:
    accs = np.asarray(bench.values(METRICS[0]), float)
    lines = ["# ST-NAS on NB201: the derived cell over seeds", "",
             f"Produced by `python scripts/stnas_nb201.py` (one invocation per label, records in "
             f"`{Path(args.records).name}`); machine {platform.processor() or platform.machine()}, "
             f"{os.cpu_count()} CPU cores, torch {torch.__version__}, device `{args.device}`.", "",
             "Each seed warms up the NB201 supernet (C and N below, images average-pooled to the "
             "resolution below, the task's whole training split) with the sampling below, then "
             "alternates an architecture step (straight-through gradients, on a validation "
             "batch) with a weight step (a path sampled from the distribution, on a training "
             "batch). The derived cell is the argmax; its accuracies are NB201's 200-epoch test "
             f"accuracies (mean over NB201's seeds). For scale: a cell at {TARGET:.1f} on "
             f"CIFAR-10 is in NB201's top {100 * np.mean(accs >= TARGET):.1f}%; the best is "
             f"{np.nanmax(accs):.2f}.", ""]
    labels = list(dict.fromkeys(r["label"] for r in records))
    for label in labels:
        rs = sorted((r for r in records if r["label"] == label), key=lambda r: r["seed"])
        st = rs[0]["settings"]
        lines += [f"## {label}", "",
                  f"Warm-up {st['warmup_steps']} steps ({st['sampling']} sampling, "
                  f"{st.get('paths_per_step', 1)} path(s) a step), search "
                  f"{st['search_steps']} steps, alpha lr {st['alpha_lr']}, terms "
                  f"`{st['st_terms']}`, weights lr {st['lr']}, batch {st['batch_size']}, "
                  f"supernet C={st['C']} N={st['N']} at {st['resolution']}x{st['resolution']}.", "",
                  "| seed | derived cell (argmax) | " + " | ".join(TITLES)
                  + " | 5 most probable, CIFAR-10 mean | entropy (nats) | warm-up s | search s |",
                  "|---:|---|" + "---:|" * (len(TITLES) + 4)]
        for r in rs:
            cell = r["argmax"].replace("|", "\\|")  # a table cell
            lines.append(f"| {r['seed']} | `{cell}` | "
                         + " | ".join(f"{r[m]:.2f}" for m in METRICS)
                         + f" | {r['top5_mean']:.2f} | {r['entropy']:.2f} | {r['warmup_s']:.0f} | "
                           f"{r['search_s']:.0f} |")
        c10 = np.array([r[METRICS[0]] for r in rs])
        lines += ["", f"Mean CIFAR-10 accuracy of the derived cell over {len(rs)} seed(s): "
                      f"{c10.mean():.2f} ± {c10.std():.2f}; target >= {TARGET:.1f} over 3 seeds: "
                      + ("**met**" if len(rs) >= 3 and c10.mean() >= TARGET else
                         "**missed**" if len(rs) >= 3 else "(fewer than 3 seeds)") + ".", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="cifar10")
    ap.add_argument("--task-path", default=None)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--label", default="default", help="names this configuration's table")
    ap.add_argument("--warmup-steps", type=int, default=1500)
    ap.add_argument("--search-steps", type=int, default=1000)
    ap.add_argument("--sampling", default="uniform", choices=list(SAMPLINGS))
    ap.add_argument("--paths-per-step", type=int, default=1, help="warm-up paths per step")
    ap.add_argument("--alpha-lr", type=float, default=0.05)
    ap.add_argument("--st-terms", default="all", choices=["all", "sampled"])
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--C", type=int, default=8)
    ap.add_argument("--N", type=int, default=2)
    ap.add_argument("--resolution", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--runs", default=str(ROOT / "runs" / "stnas-nb201"))
    ap.add_argument("--records", default=str(ROOT / "benchmarks" / "stnas-nb201.jsonl"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "stnas-nb201.md"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    import prednas

    bench = prednas.benchmarks.load("nb201")
    kw = {"path": args.task_path} if args.task_path else {}
    task = prednas.tasks.get(args.task, **kw)
    task = task.downsample(args.resolution) if args.resolution else task
    records_path = Path(args.records)
    for seed in args.seeds:
        done = {(r["label"], r["seed"]) for r in read_records(records_path)}
        if (args.label, seed) in done:
            continue
        rec = run_seed(seed, args, task, bench)
        with open(records_path, "a") as f:  # append-only: one line per finished seed
            f.write(json.dumps(rec) + "\n")
        print(f"{args.label} seed {seed}: {rec['argmax']} CIFAR-10 {rec[METRICS[0]]:.2f}",
              flush=True)
    out = Path(args.out)
    text = report(read_records(records_path), bench, args)
    old = out.read_text() if out.is_file() else ""
    if READING in old:  # the hand-written reading stays
        text = text.rstrip("\n") + "\n\n" + old[old.index(READING):]
    out.write_text(text)
    print(Path(args.out).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
