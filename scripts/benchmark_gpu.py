"""What a GPU buys on the default task: ``benchmarks/gpu-mnist1d.md``.

Run on a machine with a CUDA device; every comparison is made on that one machine, side by side:

1. **Training.** Architectures of the ``blocks1d-mnist1d-v2`` table within the default search's
   parameter cap (drawn with a fixed seed), trained with the table's recipe (300 steps) on the GPU
   and on one CPU thread, interleaved architecture by architecture after one untimed training on
   each device. Wall seconds per training, and the accuracy each reached.
2. **Proxies.** The 15-proxy suite on NB-201 networks (CIFAR-10's input shape, batch 64) on the
   GPU and on the CPU (all its threads): ``proxies.measure_speed``.
3. **A search.** ``prednas search`` on the default task for the same wall-clock budget: one worker
   on the GPU against two CPU workers of one thread each (the 2-core default), interleaved. The
   number of candidates each trained, and its pick's validation accuracy.

    python scripts/benchmark_gpu.py                 # about 6 minutes on one GPU
    python scripts/benchmark_gpu.py --archs 4 --search-minutes 0   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "gpu-mnist1d.md"
LOG = ROOT / "benchmarks" / "gpu-mnist1d.jsonl"
#: the accelerator compared with the CPU
GPU = "cuda"


def training_speed(n_archs: int, seed: int = 0) -> list[dict]:
    import torch

    from prednas import benchmarks, tasks
    from prednas.search.evaluators import model_cost
    from prednas.training import train

    bench = benchmarks.load("blocks1d-mnist1d-v2")
    space, recipe = bench.space, bench.recipe
    cap = int(0.6 * model_cost(space, space.default_arch(), "params"))
    within = [a for a in bench.arch_strings()
              if any(float(r.get("params") or 0) <= cap for r in bench.seeds(a))]
    rng = np.random.default_rng(seed)
    archs = [within[int(i)] for i in rng.choice(len(within), size=n_archs, replace=False)]
    task = tasks.get(recipe["task"], **recipe["task_options"])
    kw = {k: v for k, v in recipe["train"].items() if not k.startswith("curve") and k != "device"}
    threads = torch.get_num_threads()
    rows = []

    def one(arch, device):
        if device == "cpu":
            torch.set_num_threads(1)
        try:
            t = time.perf_counter()
            rec = train(space, arch, task, seed=seed, device=device, keep_model=False, **kw)
            return time.perf_counter() - t, rec.val_acc
        finally:
            torch.set_num_threads(threads)

    for device in (GPU, "cpu"):  # untimed: each device's one-time costs
        one(archs[0], device)
    for arch in archs:
        row = {"part": "training", "arch": arch}
        for device, key in ((GPU, "cuda"), ("cpu", "cpu")):
            sec, acc = one(arch, device)
            row[f"{key}_s"], row[f"{key}_val"] = sec, acc
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def proxy_speed(n_archs: int) -> list[dict]:
    import torch

    import spaces
    from proxies._evaluate import measure_speed

    space = spaces.get("nb201")
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(n_archs)]
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 3, 32, 32, generator=g), torch.randint(0, 10, (64,), generator=g)
    rows = []
    for device in (GPU, "cpu"):
        m = measure_speed(space, archs, x, y, device=device, repeats=3)
        row = {"part": "proxies", "device": m["device"], "threads": m["threads"],
               "archs": m["archs"], "suite_s": m["suite_s"],
               "forward_backward_s": m["forward_backward_s"]}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def search_speed(minutes: float, seeds: int) -> list[dict]:
    from prednas.cli import main

    rows = []
    for seed in range(seeds):
        for device, workers in ((GPU, 1), ("cpu", 2)):
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "run"
                t = time.perf_counter()
                code = main(["search", "--max-minutes", f"{minutes:g}", "--device", device,
                             "--workers", str(workers), "--seed", str(seed), "--out", str(out)])
                wall = time.perf_counter() - t
                recs = [json.loads(x) for x in
                        (out / "evaluations.jsonl").read_text().splitlines()]
                best = (json.loads((out / "best.json").read_text())
                        if (out / "best.json").exists() else {})
            row = {"part": "search", "device": device, "workers": workers, "seed": seed,
                   "code": code, "wall_s": wall, "minutes": minutes,
                   "candidates": sum(1 for r in recs if r.get("kind") == "candidate"),
                   "trainings": len(recs), "pick": best.get("arch"),
                   "pick_val": best.get("val_acc")}
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def _cell(text) -> str:
    return str(text).replace("|", "\\|")


def report(rows: list[dict], machine: str) -> str:
    lines = ["# What a GPU buys on the default task", "",
             f"Command: `python scripts/benchmark_gpu.py`. Machine: {machine}. Every comparison "
             "below ran on that one machine, side by side.", ""]
    tr = [r for r in rows if r["part"] == "training"]
    if tr:
        cu, cp = sum(r["cuda_s"] for r in tr), sum(r["cpu_s"] for r in tr)
        lines += ["## Training a candidate (the table's recipe, 300 steps)", "",
                  f"{len(tr)} architectures within the default search's parameter cap. Summed: "
                  f"**{cu:.1f} s on the GPU against {cp:.1f} s on one CPU thread** "
                  f"(GPU/CPU {cu / cp:.2f}).", "",
                  "| architecture | GPU s | CPU s (1 thread) | GPU/CPU | val acc GPU | val acc CPU |",
                  "|---|---:|---:|---:|---:|---:|"]
        lines += [f"| `{_cell(r['arch'])}` | {r['cuda_s']:.2f} | {r['cpu_s']:.2f} | "
                  f"{r['cuda_s'] / r['cpu_s']:.2f} | {r['cuda_val']:.2f} | {r['cpu_val']:.2f} |"
                  for r in tr]
        lines.append("")
    px = [r for r in rows if r["part"] == "proxies"]
    if px:
        lines += ["## The 15-proxy suite on NB-201 networks (batch 64, 3×32×32)", "",
                  "| device | threads | networks | suite s (median) | one forward+backward s |",
                  "|---|---:|---:|---:|---:|"]
        lines += [f"| {r['device']} | {r['threads']} | {r['archs']} | {r['suite_s']:.3f} | "
                  f"{r['forward_backward_s']:.4f} |" for r in px]
        lines.append("")
    se = [r for r in rows if r["part"] == "search"]
    if se:
        lines += ["## `prednas search` on the default task, same wall-clock budget", "",
                  "| device | workers | seed | exit | wall s | candidates | trainings | pick | "
                  "pick's val acc |", "|---|---:|---:|---:|---:|---:|---:|---|---:|"]
        lines += [f"| {r['device']} | {r['workers']} | {r['seed']} | {r['code']} | "
                  f"{r['wall_s']:.0f} | {r['candidates']} | {r['trainings']} | `{_cell(r['pick'])}` | "
                  f"{r['pick_val']} |" for r in se]
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", type=int, default=8)
    ap.add_argument("--proxy-archs", type=int, default=5)
    ap.add_argument("--search-minutes", type=float, default=1.0)
    ap.add_argument("--search-seeds", type=int, default=1)
    args = ap.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("benchmark_gpu: torch sees no CUDA device on this machine", file=sys.stderr)
        return 2
    machine = (f"{torch.cuda.get_device_name(0)}, {os.cpu_count()} logical CPUs "
               f"({platform.processor() or platform.machine()}); torch {torch.__version__}")
    rows = []
    if args.archs:
        rows += training_speed(args.archs)
    if args.proxy_archs:
        rows += proxy_speed(args.proxy_archs)
    if args.search_minutes:
        rows += search_speed(args.search_minutes, args.search_seeds)
    with open(LOG, "a") as f:
        for r in rows:
            f.write(json.dumps({"machine": machine, **r}) + "\n")
    OUT.write_text(report(rows, machine))
    print(OUT.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
