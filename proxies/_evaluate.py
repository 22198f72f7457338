"""Validate the proxy suite against a tabular benchmark (``scripts/evaluate_proxies.py``, CLI).

Samples architectures with a seed, scores every proxy on one fixed batch (networks built with a
fixed init seed), appends ``arch,proxy,value,seconds`` rows to a cache CSV (so a killed run
resumes), then writes a markdown report: Spearman and Kendall against each benchmark metric next to
the published NAS-Bench-Suite-Zero / ZiCo / MeCo values, per-proxy time, a label-free combination
and the speed of the shared engine against one-proxy-at-a-time scoring.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

log = logging.getLogger("proxies.evaluate")

METRICS = ("cifar10_test_200ep", "cifar100_test_200ep", "imagenet16_test_200ep")
#: Spearman rho on NB201 (CIFAR-10, CIFAR-100, ImageNet16-120): NAS-Bench-Suite-Zero Fig. 2
#: (1,000 random archs), ZiCo paper, MeCo paper.
PUBLISHED: dict[str, tuple[float, float, float]] = {
    "synflow": (0.73, 0.76, 0.75), "snip": (0.58, 0.63, 0.57), "grad_norm": (0.58, 0.63, 0.57),
    "grasp": (0.51, 0.54, 0.55), "fisher": (0.50, 0.54, 0.48), "jacov": (0.75, 0.71, 0.71),
    "nwot": (0.77, 0.80, 0.77), "zen": (0.35, 0.35, 0.39), "epe_nas": (0.70, 0.60, 0.33),
    "l2_norm": (0.68, 0.72, 0.69), "plain": (-0.26, -0.21, -0.22), "params": (0.72, 0.73, 0.69),
    "flops": (0.69, 0.71, 0.67), "zico": (0.80, 0.81, 0.79), "meco": (0.89, 0.88, 0.85),
}
PUBLISHED_SOURCE = {"zico": "ZiCo paper", "meco": "MeCo paper"}
#: the label-free combination, fixed before looking at any benchmark label: the mean rank of
#: four proxies that read different signals (feature correlation, gradient statistics,
#: activation patterns, data-free weight flow)
COMBINATION: tuple[str, ...] = ("meco", "zico", "nwot", "synflow")
TOLERANCE = 0.05


# ------------------------------------------------------------------------------------------------
# sampling and scoring
# ------------------------------------------------------------------------------------------------
def sample_archs(space, n: int, seed: int) -> list:
    """``n`` distinct architectures drawn with ``seed`` (without replacement for finite spaces)."""
    from prednas.utils import make_rng

    rng = make_rng(seed)
    if space.is_finite:
        allarchs = list(space.enumerate())
        idx = rng.choice(len(allarchs), size=min(n, len(allarchs)), replace=False)
        return [allarchs[i] for i in idx]
    seen, out = set(), []
    for _ in range(100 * n):
        a = space.sample(rng)
        if str(a) not in seen:
            seen.add(str(a))
            out.append(a)
        if len(out) == n:
            break
    return out


def _worker_init(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    logging.getLogger("proxies").setLevel(logging.ERROR)


def _score_chunk(space_name: str, arch_strings: list[str], x, y, names, num_classes: int,
                 seed: int, device: str, build_kwargs: dict) -> list[tuple[str, str, float, float]]:
    import proxies
    import spaces

    space = spaces.get(space_name)
    rows = []
    for a in arch_strings:
        try:
            vals, secs = proxies.score_arch(space, a, x, y, names=names, num_classes=num_classes,
                                            seed=seed, device=device, return_seconds=True,
                                            **build_kwargs)
        except Exception as exc:  # noqa: BLE001 - leave the arch out; a rerun retries it
            log.error("scoring %s failed: %s: %s", a, type(exc).__name__, exc)
            continue
        rows.extend((a, n, vals[n], secs[n]) for n in vals)
    return rows


def compute_cache(space_name: str, archs: Sequence, x, y, cache: str | os.PathLike,
                  names: Sequence[str] | None = None, num_classes: int = 10, seed: int = 0,
                  device: str = "auto", workers: int = 1, chunk: int = 20,
                  build_kwargs: dict | None = None, max_seconds: float | None = None,
                  progress: bool = True) -> int:
    """Score every arch not yet in ``cache`` and append its rows; returns the number scored."""
    import proxies
    from proxies._table import HEADER, read_records

    names = list(names or proxies.list_proxies())
    build_kwargs = build_kwargs or {}
    cache = Path(cache)
    have: dict[str, set] = {}
    for a, n, _, _ in read_records(cache):
        have.setdefault(a, set()).add(n)
    todo = [str(a) for a in archs if not set(names) <= have.get(str(a), set())]
    if not todo:
        return 0
    cache.parent.mkdir(parents=True, exist_ok=True)
    new_file = not cache.exists() or cache.stat().st_size == 0
    t0 = time.perf_counter()
    done = 0
    try:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc="proxies", disable=not progress, mininterval=5)
    except ImportError:  # pragma: no cover
        bar = None
    torn = False
    if not new_file:
        with open(cache, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            torn = fh.read(1) != b"\n"  # a killed run left half a line
    with open(cache, "a", newline="") as fh:
        if new_file:
            fh.write(",".join(HEADER) + "\n")
        elif torn:
            fh.write("\n")

        def write(rows):
            for a, n, v, s in rows:
                fh.write(f"{a},{n},{v!r},{s:.6g}\n")
            fh.flush()

        chunks = [todo[i:i + chunk] for i in range(0, len(todo), chunk)]
        args = (x, y, names, num_classes, seed, device, build_kwargs)
        if workers <= 1:
            _worker_init(max(1, (os.cpu_count() or 1)))
            for c in chunks:
                rows = _score_chunk(space_name, c, *args)
                write(rows)
                done += len(c)
                if bar:
                    bar.update(len(c))
                if max_seconds and time.perf_counter() - t0 > max_seconds:
                    log.warning("stopping after %.0f s (max_seconds); rerun to resume", max_seconds)
                    break
        else:
            import multiprocessing as mp

            threads = max(1, (os.cpu_count() or 1) // workers)
            with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"),
                                     initializer=_worker_init, initargs=(threads,)) as ex:
                futs = [ex.submit(_score_chunk, space_name, c, *args) for c in chunks]
                try:
                    for f in as_completed(futs):
                        rows = f.result()
                        write(rows)
                        done += len({r[0] for r in rows})
                        if bar:
                            bar.update(len({r[0] for r in rows}))
                        if max_seconds and time.perf_counter() - t0 > max_seconds:
                            log.warning("stopping after %.0f s (max_seconds); rerun to resume",
                                        max_seconds)
                            for g in futs:
                                g.cancel()
                            break
                finally:
                    for g in futs:
                        g.cancel()
    if bar:
        bar.close()
    return done


def measure_speed(space, archs: Sequence, x, y, device: str = "auto", seed: int = 0,
                  repeats: int = 3, **build_kwargs) -> dict:
    """Per arch: one forward+backward, the shared suite, and each proxy on a fresh copy."""
    import torch

    import proxies
    from prednas.utils import resolve_device, torch_seed

    dev = resolve_device(device)
    x, y = x.to(dev), y.to(dev)
    rows = []
    breakdown: dict[str, list[float]] = {}

    def timed(fn):
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        fn()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        return time.perf_counter() - t0

    for a in archs:
        with torch_seed(seed, dev):
            model = space.build(space.coerce(a), 10, tuple(x.shape[1:]), **build_kwargs).to(dev)
        _, secs = proxies.score(model, x, y, seed=seed, return_seconds=True)  # also warms up
        for k, v in secs.items():
            breakdown.setdefault(k, []).append(v)
        fb = proxies.forward_backward_seconds(model, x, y, repeats=repeats)
        # the lambdas run inside this iteration, so binding the loop's model is intended
        suite = float(np.median([timed(lambda: proxies.score(model, x, y, seed=seed))  # noqa: B023
                                 for _ in range(repeats)]))
        no_grasp = [n for n in proxies.list_proxies() if n != "grasp"]
        suite_ng = float(np.median([timed(lambda: proxies.score(model, x, y, no_grasp,  # noqa: B023
                                                                 seed=seed))
                                    for _ in range(repeats)]))
        sep = float(np.median([timed(lambda: proxies.score_separately(model, x, y,  # noqa: B023
                                                                      seed=seed))
                               for _ in range(max(1, repeats // 2))]))
        rows.append({"arch": str(a), "forward_backward_s": fb, "suite_s": suite,
                     "suite_without_grasp_s": suite_ng, "separate_s": sep})
    fb = float(np.median([r["forward_backward_s"] for r in rows]))
    suite = float(np.median([r["suite_s"] for r in rows]))
    sep = float(np.median([r["separate_s"] for r in rows]))
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu"
    return {"device": f"{dev.type} ({name})", "threads": torch.get_num_threads(),
            "archs": len(rows), "batch": int(len(x)), "build_kwargs": build_kwargs,
            "forward_backward_s": fb, "suite_s": suite, "separate_s": sep,
            "suite_over_fb": float(np.median([r["suite_s"] / r["forward_backward_s"]
                                              for r in rows])),
            "suite_without_grasp_s": float(np.median([r["suite_without_grasp_s"] for r in rows])),
            "suite_without_grasp_over_fb": float(np.median(
                [r["suite_without_grasp_s"] / r["forward_backward_s"] for r in rows])),
            "separate_over_suite": float(np.median([r["separate_s"] / r["suite_s"] for r in rows])),
            "per_proxy_amortised_s": {k: float(np.median(v)) for k, v in breakdown.items()},
            "per_arch": rows}


# ------------------------------------------------------------------------------------------------
# analysis
# ------------------------------------------------------------------------------------------------
def rank_average(values: np.ndarray) -> np.ndarray:
    """Mean of per-column ranks (NaN ranks lowest); higher is better."""
    from scipy.stats import rankdata

    cols = []
    for j in range(values.shape[1]):
        v = values[:, j].copy()
        v[~np.isfinite(v)] = -np.inf
        cols.append(rankdata(v))
    return np.mean(cols, axis=0)


def correlations(scores: np.ndarray, targets: np.ndarray) -> tuple[float, float, int]:
    """Spearman, Kendall and the number of finite pairs."""
    from prednas.metrics import rank_correlations

    return rank_correlations(scores, targets)


def _fmt(v: float, nd: int = 3) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.{nd}f}"


def build_report(table, bench, archs: Sequence, command: str, speeds: Sequence[dict],
                 info: dict) -> str:
    """The markdown report for ``archs`` (those present in ``table``)."""
    archs = [a for a in archs if a in table]
    names = [n for n in table.names]
    vals = table.lookup(archs, names)
    secs_all = table.seconds
    rows_idx = [table.arch_strings.index(str(a)) for a in archs] if archs else []
    secs = secs_all[rows_idx] if rows_idx else np.zeros((0, len(names)))
    targets = {m: bench.values(m, archs) for m in METRICS}
    lines = [
        "# Zero-cost proxies on NAS-Bench-201",
        "",
        "Written by `scripts/evaluate_proxies.py`; do not edit by hand.",
        "",
        f"- command: `{command}`",
        f"- architectures: {len(archs)} sampled without replacement from the 15,625 cells "
        f"(seed {info.get('seed')})",
        f"- batch: {info.get('batch_size')} CIFAR-10 training images from `{info.get('data')}` "
        f"(fixed batch seed {info.get('seed')}); network C={info.get('C')}, N={info.get('N')}, "
        f"init seed {info.get('seed')}",
        "- targets: NB201 test accuracy after 200 epochs on CIFAR-10 / CIFAR-100 / "
        "ImageNet16-120 (mean over seeds)",
        f"- scores computed on: {info.get('device')}",
        "",
        "## Rank correlation with accuracy",
        "",
        "Spearman rho (ours vs published) and Kendall tau. Published: NAS-Bench-Suite-Zero Fig. 2 "
        "(1,000 random archs), ZiCo and MeCo from their papers. `ok` = CIFAR-10 rho within "
        f"±{TOLERANCE} of the published value.",
        "",
        "| proxy | rho C10 | pub. | diff | ok | rho C100 | pub. | rho IN16 | pub. | tau C10 | "
        "tau C100 | tau IN16 | NaN | rho C10, NaN last | ms/arch |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    summary = {}
    for j, n in enumerate(names):
        res = [correlations(vals[:, j], targets[m]) for m in METRICS]
        pub = PUBLISHED.get(n, (math.nan,) * 3)
        diff = res[0][0] - pub[0] if np.isfinite(pub[0]) else math.nan
        ok = "yes" if np.isfinite(diff) and abs(diff) <= TOLERANCE else (
            "n/a" if not np.isfinite(diff) else "**no**")
        summary[n] = {"spearman": [r[0] for r in res], "kendall": [r[1] for r in res],
                      "published": list(pub), "diff_c10": diff, "ok": ok}
        nan = int(np.sum(~np.isfinite(vals[:, j])))
        filled = np.where(np.isfinite(vals[:, j]), vals[:, j], -np.inf)
        rho_last = correlations(rank_average(filled[:, None]), targets[METRICS[0]])[0]
        ms = 1000 * float(np.nanmean(secs[:, j])) if len(secs) else math.nan
        lines.append(
            f"| {n} | {_fmt(res[0][0])} | {_fmt(pub[0], 2)} | {_fmt(diff, 2)} | {ok} | "
            f"{_fmt(res[1][0])} | {_fmt(pub[1], 2)} | {_fmt(res[2][0])} | {_fmt(pub[2], 2)} | "
            f"{_fmt(res[0][1])} | {_fmt(res[1][1])} | {_fmt(res[2][1])} | {nan} | "
            f"{_fmt(rho_last)} | {_fmt(ms, 1)} |")
    misses = [n for n, s in summary.items() if s["ok"] == "**no**"]
    lines += ["", f"Within ±{TOLERANCE} on CIFAR-10: "
              f"{sum(s['ok'] == 'yes' for s in summary.values())} of "
              f"{sum(s['ok'] != 'n/a' for s in summary.values())}"
              + (f"; misses: {', '.join(misses)}." if misses else "."), "",
              "`NaN` counts architectures where the proxy is undefined (mostly cells whose output "
              "does not depend on the input); they are left out of the correlations, and the "
              "`NaN last` column ranks them below every scored architecture instead. "
              "`ms/arch` is the amortised cost inside one `proxies.score` call (each shared pass "
              "split evenly among the proxies that read it), measured while several worker "
              "processes shared the device; see the speed section for clean timings.", ""]
    combo = [n for n in COMBINATION if n in names]
    if combo:
        cv = rank_average(table.lookup(archs, combo))
        res = [correlations(cv, targets[m]) for m in METRICS]
        lines += [
            "## Label-free combination",
            "",
            f"Mean rank of {', '.join(f'`{n}`' for n in combo)} over the scored architectures "
            "(NaN ranks last). The members were fixed before any benchmark label was read, "
            "one per kind of signal (feature-map correlation, gradient signal-to-noise, "
            "activation patterns, data-free weight flow); no weights are fitted. "
            "Target: Spearman >= 0.85 on CIFAR-10.",
            "",
            "| metric | Spearman | Kendall | target met |",
            "|---|---|---|---|",
        ]
        for m, r in zip(METRICS, res):
            met = ("yes" if r[0] >= 0.85 else "**no**") if m == METRICS[0] else ""
            lines.append(f"| {m} | {_fmt(r[0])} | {_fmt(r[1])} | {met} |")
        lines.append("")
    if speeds:
        lines += [
            "## Speed: shared engine vs one proxy at a time",
            "",
            "Per architecture (median over archs): one train-mode forward + loss backward of the "
            "batch; `proxies.score` computing all proxies with shared passes; and "
            "`proxies.score_separately`, which scores each proxy on its own fresh copy of the "
            "model with its own passes (what the reference code does). Target: suite <= 8x "
            "forward+backward.",
            "",
            "| device | archs | batch | network | fwd+bwd ms | suite ms | separate ms | "
            "suite / fwd+bwd | separate / suite | target met | suite without grasp / fwd+bwd |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for s in speeds:
            bk = s.get("build_kwargs") or {}
            net = ", ".join(f"{k}={v}" for k, v in bk.items()) or "default"
            met = "yes" if s["suite_over_fb"] <= 8 else "**no**"
            lines.append(
                f"| {s['device']} | {s['archs']} | {s['batch']} | {net} | "
                f"{1000 * s['forward_backward_s']:.1f} | {1000 * s['suite_s']:.1f} | "
                f"{1000 * s['separate_s']:.1f} | {s['suite_over_fb']:.2f} | "
                f"{s['separate_over_suite']:.2f} | {met} | "
                f"{_fmt(s.get('suite_without_grasp_over_fb', math.nan), 2)} |")
        breakdown = [s for s in speeds if s.get("per_proxy_amortised_s")]
        if breakdown:
            lines += ["", "Amortised ms per proxy inside one suite call (shared passes split "
                      "evenly among their readers):", "",
                      "| device | " + " | ".join(sorted(breakdown[0]["per_proxy_amortised_s"]))
                      + " |", "|---|" + "---|" * len(breakdown[0]["per_proxy_amortised_s"])]
            for s in breakdown:
                per = s["per_proxy_amortised_s"]
                lines.append(f"| {s['device']} | "
                             + " | ".join(f"{1000 * per[k]:.1f}" for k in sorted(per)) + " |")
        lines.append("")
    lines += ["## Notes", ""] + [f"- {t}" for t in info.get("notes", [])] + [""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# entry point shared by the script and `prednas proxies evaluate`
# ------------------------------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--space", default="nb201", help="search space (default nb201)")
    p.add_argument("--bench", default="nb201", help="benchmark table (default nb201)")
    p.add_argument("--data", default=None,
                   help="CIFAR-10 path (cifar-10-batches-py folder or .npz); required for nb201")
    p.add_argument("--n", type=int, default=1000, help="architectures to sample (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="sampling / batch / init seed (default 0)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument("--cache", default=None, help="cache CSV (arch,proxy,value,seconds); resumable")
    p.add_argument("--proxies", default=None, help="comma-separated proxy names (default all)")
    p.add_argument("--workers", type=int, default=1, help="scoring processes (default 1)")
    p.add_argument("--max-seconds", type=float, default=None,
                   help="stop scoring after this long (rerun to resume)")
    p.add_argument("--speed-archs", type=int, default=0,
                   help="also time suite vs separate on this many archs (default 0: skip)")
    p.add_argument("--speed-out", default=None, help="JSON file for the speed measurement")
    p.add_argument("--speed-in", action="append", default=[],
                   help="speed JSON file(s) to include in the report (repeatable)")
    p.add_argument("--C", type=int, default=16, help="nb201 network width (default 16)")
    p.add_argument("--N", type=int, default=5, help="nb201 cells per stage (default 5)")
    p.add_argument("--ship", default=None,
                   help="also write the cached scores of the sampled archs here (.csv.gz)")
    p.add_argument("--report", default="benchmarks/proxies-nb201.md",
                   help="markdown report path (default benchmarks/proxies-nb201.md; '' to skip)")
    p.add_argument("--note", action="append", default=[], help="extra note line for the report")
    p.add_argument("--scored-on", default=None,
                   help="device label for the report when the cache was filled elsewhere")


def run(args, argv_text: str | None = None) -> int:
    import torch

    import proxies
    import spaces
    from prednas import benchmarks, tasks
    from prednas.errors import InvalidParameterError
    from prednas.utils import atomic_write_json, atomic_write_text, resolve_device
    from proxies._table import ProxyTable, read_records

    space = spaces.get(args.space)
    if args.data is None:
        raise InvalidParameterError("--data is required: a CIFAR-10 folder or .npz (nothing is "
                                    "downloaded)")
    task = tasks.get("cifar10", path=args.data)
    x, y = task.batch(n=args.batch_size, split="train", seed=args.seed)
    names = args.proxies.split(",") if args.proxies else proxies.list_proxies()
    for n in names:
        proxies.get(n)
    dev = resolve_device(args.device)
    build_kwargs = {"C": args.C, "N": args.N} if args.space == "nb201" else {}
    archs = sample_archs(space, args.n, args.seed)
    cache = Path(args.cache or f"proxies-{args.space}-cache.csv")
    t0 = time.perf_counter()
    scored = compute_cache(args.space, archs, x, y, cache, names, num_classes=task.num_classes,
                           seed=args.seed, device=str(dev), workers=args.workers,
                           build_kwargs=build_kwargs, max_seconds=args.max_seconds)
    log.info("scored %d archs in %.1f s", scored, time.perf_counter() - t0)
    speeds = []
    for p in args.speed_in:
        if Path(p).exists():
            speeds.append(json.loads(Path(p).read_text()))
    if args.speed_archs > 0:
        sp = measure_speed(space, archs[: args.speed_archs], x, y, device=str(dev),
                           seed=args.seed, **build_kwargs)
        if args.speed_out:
            atomic_write_json(args.speed_out, sp)
        speeds.append(sp)
        print(f"speed on {sp['device']}: fwd+bwd {1000 * sp['forward_backward_s']:.1f} ms, suite "
              f"{1000 * sp['suite_s']:.1f} ms ({sp['suite_over_fb']:.2f}x), separate "
              f"{1000 * sp['separate_s']:.1f} ms ({sp['separate_over_suite']:.2f}x the suite)")
    table = ProxyTable.from_records(read_records(cache))
    if args.ship:
        keep = {str(a) for a in archs}
        ProxyTable.from_records(r for r in read_records(cache) if r[0] in keep).to_csv(args.ship)
    if args.report:
        bench = benchmarks.load(args.bench)
        info = {"seed": args.seed, "batch_size": args.batch_size, "data": Path(args.data).name,
                "C": args.C, "N": args.N, "workers": args.workers,
                "device": args.scored_on or (
                    (torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu")
                    + f", {args.workers} worker process(es)"),
                "notes": list(args.note)}
        text = build_report(table, bench, archs, argv_text or " ".join(map(shlex.quote, sys.argv)),
                            speeds, info)
        atomic_write_text(args.report, text)
        print(f"wrote {args.report} ({sum(a in table for a in archs)} archs)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("proxies").setLevel(logging.ERROR)
    logging.getLogger("proxies.evaluate").setLevel(logging.INFO)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(p)
    args = p.parse_args(argv)
    text = "python scripts/evaluate_proxies.py " + " ".join(
        map(shlex.quote, argv if argv is not None else sys.argv[1:]))
    return run(args, text)
