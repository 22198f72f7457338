"""Executors side by side: the same candidates trained in this process, in a process pool and on
Ray, and Ray's overhead per evaluation measured with cheap benchmark lookups.

Writes ``benchmarks/executors.md``:

* throughput: ``--n`` blocks1d architectures (sampled with ``--seed``) trained with the MNIST-1D
  default recipe (``TrainingEvaluator`` defaults: 300 steps, on the CPU) by each executor, one after the
  other in one run; candidates per minute once the workers are up (start-up reported apart:
  spawning workers, starting Ray, importing torch in the workers), and each executor's ratio to
  the in-process rate;
* overhead: ``--lookups`` NB201 oracle evaluations through Ray, as one batch and in rounds of
  ``--per-round`` (as a search submits them: the evaluator, which holds the benchmark table, is
  put in the object store once per round), minus the same lookups in this process, per
  evaluation;
* on a machine with CUDA: the same candidates with 1, 2 and 4 of them sharing one GPU (Ray tasks
  asking for ``1/k`` of it, ``--gpu-shares``); without one, the report says it was not measured.

Usage::

    python scripts/benchmark_executors.py              # 8 candidates, 2 workers: ~10 min on 2 cores
    python scripts/benchmark_executors.py --n 4 --steps 30 --out /tmp/x.md   # a quick look
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
# Ray workers and spawned pool workers import this checkout's code, not an installed copy
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])


def _warm() -> int:
    """A job that only loads what an evaluation needs (torch, the engine) in a worker."""
    import prednas.search.engine  # noqa: F401

    return os.getpid()


def machine() -> str:
    from prednas.benchmarks.build import machine_summary

    return machine_summary(load=False)


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def candidates(n: int, seed: int) -> list[str]:
    """``n`` distinct blocks1d architectures sampled with ``seed``."""
    import numpy as np

    import spaces

    space, rng, out = spaces.get("blocks1d"), np.random.default_rng(seed), []
    while len(out) < n:
        arch = space.sample(rng)
        if str(space.canonical(arch)) not in {str(space.canonical(space.parse(a))) for a in out}:
            out.append(str(arch))
    return out


def timed(executor, fn, jobs, warm: int) -> tuple[float, float, dict]:
    """(start-up seconds, seconds for ``jobs``, results by key) on ``executor``."""
    t0 = time.perf_counter()
    if warm:
        list(executor.map_unordered(_warm, [(f"warm{i}", (), {}) for i in range(warm)]))
    t1 = time.perf_counter()
    results = dict(executor.map_unordered(fn, jobs))
    return t1 - t0, time.perf_counter() - t1, results


def training_jobs(args, device: str) -> list:
    """The executor jobs training the ``--n`` sampled candidates on MNIST-1D on ``device``."""
    import spaces
    from prednas import tasks
    from prednas.search import SearchContext, TrainingEvaluator

    space = spaces.get("blocks1d")
    evaluator = TrainingEvaluator(device=device, **({"steps": args.steps} if args.steps else {}))
    evaluator.setup(SearchContext(space=space, task=tasks.get("mnist1d")))
    return [(i, (evaluator, space, a, args.seed, None, None), {})
            for i, a in enumerate(candidates(args.n, args.seed))]


def throughput(args) -> list[dict]:
    import torch

    from prednas.search import InProcessExecutor, PoolExecutor, RayExecutor
    from prednas.search.engine import _evaluate_job

    torch.set_num_threads(args.threads)  # as `prednas search` (--threads 1)
    jobs = training_jobs(args, "cpu")
    rows = []
    for label, make, warm in (
            ("in-process", lambda: InProcessExecutor(), 0),
            (f"process pool ({args.workers} workers)",
             lambda: PoolExecutor(workers=args.workers, threads_per_worker=args.threads),
             args.workers),
            (f"Ray ({args.workers} workers, local)",
             lambda: RayExecutor(workers=args.workers, num_cpus=float(args.threads),
                                 object_store_memory=args.object_store_mb * 2**20),
             args.workers)):
        print(f"{label}: {len(jobs)} candidates ...", flush=True)
        ex, cpu0 = make(), time.process_time()
        try:
            start, wall, res = timed(ex, _evaluate_job, jobs, warm)
        finally:
            ex.shutdown()
        cpu = time.process_time() - cpu0  # this process's own CPU: the in-process row's work
        ok = sum(r.get("status") == "ok" for r in res.values())
        rows.append({"executor": label, "start": start, "wall": wall, "ok": ok,
                     "per_min": 60.0 * len(jobs) / wall,
                     "per_min_total": 60.0 * len(jobs) / (start + wall), "cpu_share": cpu / wall,
                     "train_s": sum(float(r.get("seconds") or 0.0) for r in res.values())})
        print(f"  start {start:.1f} s, {wall:.1f} s, {rows[-1]['per_min']:.2f} candidates/min",
              flush=True)
    return rows


def gpu_sharing(args) -> list[dict]:
    """Candidates per minute with 1, 2, 4 candidates sharing one GPU (Ray, ``num_gpus=1/k``)."""
    import torch

    from prednas.search import RayExecutor
    from prednas.search.engine import _evaluate_job

    if not torch.cuda.is_available():
        return []
    jobs = training_jobs(args, "auto")
    rows = []
    for k in args.gpu_shares:
        print(f"GPU shared by {k}: {len(jobs)} candidates ...", flush=True)
        ex = RayExecutor(workers=k, num_cpus=1.0, num_gpus=1.0 / k,
                         object_store_memory=args.object_store_mb * 2**20)
        try:
            start, wall, res = timed(ex, _evaluate_job, jobs, k)
        finally:
            ex.shutdown()
        rows.append({"k": k, "start": start, "wall": wall, "per_min": 60.0 * len(jobs) / wall,
                     "ok": sum(r.get("status") == "ok" for r in res.values()),
                     "devices": sorted({str(r.get("device")) for r in res.values()})})
    rows.append({"gpu": torch.cuda.get_device_name(0)})
    return rows


def overhead(args) -> dict:
    import numpy as np

    from prednas import benchmarks
    from prednas.search import InProcessExecutor, OracleEvaluator, RayExecutor, SearchContext
    from prednas.search.engine import _evaluate_job

    bench = benchmarks.load("nb201")
    space = bench.space
    evaluator = OracleEvaluator()
    evaluator.setup(SearchContext(space=space, oracle=bench))
    rng = np.random.default_rng(args.seed)
    archs = [str(space.sample(rng)) for _ in range(args.lookups)]
    jobs = [(i, (evaluator, space, a, 0, None, None), {}) for i, a in enumerate(archs)]
    rounds = [jobs[i:i + args.per_round] for i in range(0, len(jobs), args.per_round)]

    def run(ex, batches) -> float:
        t = time.perf_counter()
        for b in batches:
            for _ in ex.map_unordered(_evaluate_job, b):
                pass
        return time.perf_counter() - t

    local = min(run(InProcessExecutor(), [jobs]) for _ in range(3))
    ex = RayExecutor(workers=args.workers, object_store_memory=args.object_store_mb * 2**20)
    try:
        run(ex, rounds[:2])  # workers up, the engine imported
        one = min(run(ex, [jobs]) for _ in range(2))
        by_round = min(run(ex, rounds) for _ in range(2))
        t = time.perf_counter()
        for _ in range(20):
            run(ex, [jobs[:1]])
        latency = (time.perf_counter() - t) / 20
    finally:
        ex.shutdown()
    n = len(jobs)
    return {"n": n, "per_round": args.per_round, "local_ms": 1e3 * local / n,
            "one_ms": 1e3 * one / n, "round_ms": 1e3 * by_round / n,
            "one_over_ms": 1e3 * (one - local) / n, "round_over_ms": 1e3 * (by_round - local) / n,
            "latency_ms": 1e3 * latency}


def write(rows: list[dict], ov: dict, gpu: list[dict], args, load_before: str,
          load_after: str) -> str:
    base = rows[0]["per_min"]
    cmd = "python scripts/benchmark_executors.py" + (
        " " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "")
    recipe = f"{args.steps} steps" if args.steps else "the default recipe (300 steps)"
    lines = [
        "# Executors: in-process vs process pool vs Ray", "",
        f"The same {args.n} blocks1d architectures (sampled with seed {args.seed}) trained on "
        f"MNIST-1D with `TrainingEvaluator()` and {recipe}, by each executor in turn in one run; "
        f"torch uses {args.threads} thread(s) per evaluation. Rates count from the moment the "
        "workers are up (start-up: spawning the pool or starting Ray, and importing torch in each "
        "worker, is reported apart).", "",
        f"- Command: `{cmd}`",
        f"- Machine: {machine()}",
        f"- Load average: {load_before} at start, {load_after} at the end",
        f"- Date: {time.strftime('%Y-%m-%d')}", "",
        "| executor | start-up | wall for the candidates | candidates/min | ratio to in-process "
        "| candidates/min incl. start-up | ok |",
        "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['executor']} | {r['start']:.1f} s | {r['wall']:.1f} s | "
                     f"{r['per_min']:.2f} | {r['per_min'] / base:.2f}x | "
                     f"{r['per_min_total']:.2f} | {r['ok']}/{args.n} |")
    ray = next((r for r in rows if r["executor"].startswith("Ray")), None)
    if ray is not None and rows[0]["executor"] == "in-process":
        ratio = ray["per_min"] / base
        lines += ["", f"Target (Ray with {args.workers} workers vs in-process, candidates per "
                  f"minute, >= 1.7x): {ratio:.2f}x, **{'met' if ratio >= 1.7 else 'missed'}**."]
    lines += [
        "", "## Ray's overhead per evaluation", "",
        f"{ov['n']} NB201 oracle lookups (each well under a millisecond of work) through a warm "
        f"local Ray with {args.workers} workers, minus the same lookups in this process "
        f"({ov['local_ms']:.3f} ms each):", "",
        "| submitted | ms per evaluation | overhead ms per evaluation |", "|---|---|---|",
        f"| all {ov['n']} in one call | {ov['one_ms']:.2f} | {ov['one_over_ms']:.2f} |",
        f"| in rounds of {ov['per_round']} (as a search does: the evaluator, with the benchmark "
        f"table, put once per round) | {ov['round_ms']:.2f} | {ov['round_over_ms']:.2f} |",
        f"| one at a time (round trip of a single task) | {ov['latency_ms']:.2f} | "
        f"{ov['latency_ms'] - ov['local_ms']:.2f} |", ""]
    lines += ["## Candidates sharing one GPU", ""]
    if not gpu:
        lines.append("No GPU on this machine: not measured (run this script on a machine with "
                     "CUDA: it trains the same candidates with 1, 2 and 4 Ray tasks sharing the "
                     "GPU, `num_gpus=1/k` each).")
    else:
        lines += [f"GPU: {gpu[-1]['gpu']}; each candidate is a Ray task asking for 1 CPU and "
                  "1/k of the GPU, the evaluator on `device=\"auto\"`.", "",
                  "| candidates sharing the GPU | start-up | wall | candidates/min | ratio to 1 "
                  "| ok | devices |", "|---|---|---|---|---|---|---|"]
        for r in gpu[:-1]:
            lines.append(f"| {r['k']} | {r['start']:.1f} s | {r['wall']:.1f} s | "
                         f"{r['per_min']:.2f} | {r['per_min'] / gpu[0]['per_min']:.2f}x | "
                         f"{r['ok']}/{args.n} | {', '.join(r['devices'])} |")
    lines.append("")
    # one training thread in this process: it gets a whole core unless other jobs compete
    share = rows[0]["cpu_share"] if rows[0]["executor"] == "in-process" else float("nan")
    busy = not share >= 0.9
    lines += [
        "## Notes", "",
        f"- The in-process row's training thread got {share:.0%} of a core over its wall time "
        "(100%: no other job competed for the CPU).",
        (f"- Other jobs shared this machine's {os.cpu_count()} cores during the measurement "
         "(see the load average); absolute rates move with that load, so compare the rows of "
         "one table." if busy else "- Nothing else ran on the machine during the measurement "
         "(see the load average)."),
        f"- With {os.cpu_count()} cores, {args.workers} workers can at best multiply the "
        f"in-process rate by {min(args.workers, os.cpu_count() or 1)}, and only when nothing "
        "else runs.",
        *([f"- Neither parallel executor ran much faster than one process here (best "
           f"{max(r['per_min'] for r in rows[1:]) / base:.2f}x): the other jobs on the cores "
           "left no idle core for a second worker. The rows still compare the executors' own "
           "costs: Ray against the process pool."] if max(r["per_min"] for r in rows[1:])
          < 1.3 * base else []),
        "- A training evaluation takes seconds to minutes, so Ray's per-evaluation overhead (the "
        "table above) is negligible next to it; what costs is Ray's start-up (a local Ray: "
        "raylet, GCS and a worker per CPU, each importing torch on its first evaluation), paid "
        "once per search.", ""]
    text = "\n".join(lines)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    return text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=8, help="candidates trained by each executor (8)")
    p.add_argument("--steps", type=int, default=None,
                   help="training steps (default: TrainingEvaluator's default recipe)")
    p.add_argument("--workers", type=int, default=2, help="pool and Ray workers (2)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per evaluation (1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lookups", type=int, default=200, help="oracle lookups for the overhead")
    p.add_argument("--per-round", type=int, default=5, help="lookups per round (5)")
    p.add_argument("--object-store-mb", type=int, default=200)
    p.add_argument("--gpu-shares", type=int, nargs="+", default=[1, 2, 4],
                   help="candidates sharing one GPU (measured only where CUDA is available)")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "executors.md"))
    args = p.parse_args()
    before = load()
    rows = throughput(args)
    ov = overhead(args)
    gpu = gpu_sharing(args)
    print(write(rows, ov, gpu, args, before, load()))


if __name__ == "__main__":
    main()
