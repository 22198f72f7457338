#!/usr/bin/env python
"""Score every zero-cost proxy on every architecture of the ``blocks1d-mnist1d`` benchmark.

The architectures are the seed-0 jobs of ``prednas.benchmarks.blocks1d_mnist1d.build_spec()``, in
its order: the 1,884 stacks of the sub-space ``SUBSPACE`` (part ``sub``) and the 200 samples of the
full ``blocks1d`` space (part ``full``). Each is built with init seed 0 and scored with
``proxies.score_arch`` on one fixed batch: 64 training examples of the recipe's MNIST-1D task drawn
with seed 0 (``task.batch(n=64, split="train", seed=0)``, the batch ``predictors.FeaturePipeline``
scores live architectures on). Each architecture becomes one JSON line of
``proxies/data/blocks1d-mnist1d-records.jsonl`` as soon as it is scored (append-only, fsynced);
run the same command again after an interruption (``kill -9`` included) and it continues where it
stopped. ``--finalize`` turns the records into the shipped table
``proxies/data/blocks1d-mnist1d.csv.gz`` (``proxies.load_table("blocks1d", "mnist1d")``).

    python scripts/build_proxies_blocks1d.py                      # score what is missing
    python scripts/build_proxies_blocks1d.py --workers 4 --max-minutes 60
    python scripts/build_proxies_blocks1d.py --status             # progress only
    python scripts/build_proxies_blocks1d.py --finalize           # write the table (complete)
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import logging
import math
import os
import shlex
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "proxies" / "data"
DEFAULT_RECORDS = DATA / "blocks1d-mnist1d-records.jsonl"
DEFAULT_TABLE = DATA / "blocks1d-mnist1d.csv.gz"
#: the batch every score is computed on (``FeaturePipeline`` live-scoring conventions)
BATCH_SIZE = 64
BATCH_SEED = 0
#: network initialisation seed (``FeaturePipeline.proxy_seed``)
INIT_SEED = 0
#: record fields that must agree between every record of one file
_SETTINGS = ("task", "task_options", "batch_size", "batch_seed", "init_seed", "batch_sha")

log = logging.getLogger("build_proxies_blocks1d")


# ------------------------------------------------------------------------------------------------
# what to score
# ------------------------------------------------------------------------------------------------
def jobs_of(spec) -> list[tuple[str, str]]:
    """``(arch, part)`` of every seed-0 job of the benchmark build, in build order, once each."""
    seen: set[str] = set()
    out = []
    for arch, seed, part in spec.jobs:
        if int(seed) == 0 and arch not in seen:
            seen.add(arch)
            out.append((arch, part))
    return out


def load_batch(recipe: dict):
    """The recipe's task and its fixed proxy batch."""
    from prednas import tasks

    task = tasks.get(recipe["task"], **recipe.get("task_options", {}))
    x, y = task.batch(n=BATCH_SIZE, split="train", seed=BATCH_SEED)
    return task, x, y


def batch_sha(x, y) -> str:
    """A short fingerprint of the batch, so records of another batch are never mixed in."""
    h = hashlib.sha256()
    for t in (x, y):
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


# ------------------------------------------------------------------------------------------------
# scoring (runs in the workers)
# ------------------------------------------------------------------------------------------------
_WORKER: dict = {}


def _init_worker(threads: int, x, y, num_classes: int, spaces_cfg: dict, device: str) -> None:
    import torch

    torch.set_num_threads(threads)
    logging.getLogger("proxies").setLevel(logging.ERROR)  # NaN warnings are in the records
    _WORKER.update(x=x, y=y, num_classes=num_classes, spaces_cfg=spaces_cfg, device=device,
                   spaces={})


def _space(part: str):
    import spaces

    sp = _WORKER["spaces"].get(part)
    if sp is None:
        name, cfg = _WORKER["spaces_cfg"][part]
        sp = _WORKER["spaces"][part] = spaces.get(name, **cfg)
    return sp


def score_job(arch: str, part: str, names: list[str]) -> dict:
    """Scores, per-proxy seconds and wall seconds of one architecture (in a worker)."""
    import proxies

    t0 = time.perf_counter()
    vals, secs = proxies.score_arch(_space(part), arch, _WORKER["x"], _WORKER["y"], names=names,
                                    num_classes=_WORKER["num_classes"], seed=INIT_SEED,
                                    device=_WORKER["device"], return_seconds=True)
    return {"scores": {n: float(vals[n]) for n in names},
            "seconds": {n: float(secs[n]) for n in names},
            "wall_seconds": time.perf_counter() - t0}


# ------------------------------------------------------------------------------------------------
# the records file
# ------------------------------------------------------------------------------------------------
class _Lock:
    """An exclusive advisory lock on the records file while a process appends to it."""

    def __init__(self, path: Path):
        self.path = path
        self._fh = None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no lock
            return self
        from prednas.errors import RunDirectoryError

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a")  # never truncates
        try:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._fh.close()
            self._fh = None
            raise RunDirectoryError(f"{self.path} is being written by another process; wait for "
                                    "it to finish or stop it first") from None
        return self

    def __exit__(self, *exc):
        if self._fh is not None:
            self._fh.close()  # releases the lock
            self._fh = None


def read_records(path: Path) -> list[dict]:
    from prednas.utils import JsonlLog

    return JsonlLog(path).read()


def check_settings(records: list[dict], settings: dict, path: Path) -> None:
    """Refuse to mix records computed with another task, batch or seed."""
    from prednas.errors import RunDirectoryError

    for r in records:
        for k in _SETTINGS:
            if r.get(k) != settings[k]:
                raise RunDirectoryError(
                    f"{path} holds records with another {k} ({r.get(k)!r}, this run: "
                    f"{settings[k]!r}, first at arch {r.get('arch')!r}); choose another "
                    "--records file")


def recorded_names(records: list[dict]) -> dict[str, set[str]]:
    """The proxies already recorded for each architecture (over all its records)."""
    have: dict[str, set[str]] = collections.defaultdict(set)
    for r in records:
        have[r["arch"]].update(r.get("scores", {}))
    return have


def build(records_path: Path, names: list[str] | None = None, workers: int = 1,
          threads_per_worker: int = 1, limit: int | None = None,
          max_seconds: float | None = None, device: str = "auto",
          progress: bool = True) -> int:
    """Score every architecture that lacks one of ``names`` and append its record.

    Returns the number of architectures scored by this call.
    """
    import proxies
    from prednas.benchmarks.blocks1d_mnist1d import RECIPE, build_spec
    from prednas.errors import InvalidParameterError
    from prednas.utils import JsonlLog, resolve_device

    if workers < 1:
        raise InvalidParameterError(f"The 'workers' parameter must be an int in [1, inf). Got "
                                    f"{workers} instead.")
    names = list(names or proxies.list_proxies())
    for n in names:
        proxies.get(n)  # unknown names fail before any work
    spec = build_spec()
    jobs = jobs_of(spec)
    task, x, y = load_batch(RECIPE)
    settings = {"task": RECIPE["task"], "task_options": RECIPE.get("task_options", {}),
                "batch_size": BATCH_SIZE, "batch_seed": BATCH_SEED, "init_seed": INIT_SEED,
                "batch_sha": batch_sha(x, y)}
    dev = str(resolve_device(device))
    with _Lock(records_path):
        logfile = JsonlLog(records_path)
        records = logfile.read()
        check_settings(records, settings, records_path)
        have = recorded_names(records)
        todo = [(a, p, [n for n in names if n not in have.get(a, set())]) for a, p in jobs]
        todo = [t for t in todo if t[2]]
        log.info("%d of %d architectures have every requested proxy; %d to score%s",
                 len(jobs) - len(todo), len(jobs), len(todo),
                 "" if limit is None else f" (this time at most {limit})")
        n_left = len(todo)
        if limit is not None:
            todo = todo[:limit]
        if not todo:
            return 0
        spaces_cfg = {p: (spec.space_for(p).name, spec.space_for(p).config())
                      for p in sorted({p for _, p, _ in todo})}
        host = socket.gethostname()
        init_args = (threads_per_worker, x, y, task.num_classes, spaces_cfg, dev)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(jobs), initial=len(jobs) - n_left, unit="arch",
                       desc="proxies blocks1d-mnist1d", smoothing=0.05)
        start = time.perf_counter()
        done = 0

        def finish(job, result: dict) -> None:
            nonlocal done
            arch, part, _ = job
            rec = {"arch": arch, "part": part, **settings, "device": dev, **result,
                   "host": host, "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
            logfile.append(rec)
            done += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"{arch[:40]} {result['wall_seconds']:.1f}s")

        def out_of_time() -> bool:
            return max_seconds is not None and time.perf_counter() - start > max_seconds

        try:
            if workers == 1:  # in this process; its torch threads and log level come back
                import torch

                threads, plog = torch.get_num_threads(), logging.getLogger("proxies")
                level = plog.level
                _init_worker(*init_args)
                try:
                    for job in todo:
                        if out_of_time():
                            break
                        finish(job, score_job(*job))
                finally:
                    torch.set_num_threads(threads)
                    plog.setLevel(level)
                    _WORKER.clear()
            else:
                import multiprocessing
                from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

                ctx = multiprocessing.get_context("spawn")
                with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                         initargs=init_args) as pool:
                    queue = list(reversed(todo))
                    pending: dict = {}
                    while queue or pending:
                        while queue and len(pending) < 2 * workers and not out_of_time():
                            job = queue.pop()
                            pending[pool.submit(score_job, *job)] = job
                        if not pending:
                            break
                        ready, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                        for fut in ready:
                            # proxies.score_arch turns a proxy that is undefined for a network
                            # into NaN; anything it raises is a real error: it stops the build and
                            # a rerun redoes only the unrecorded architectures
                            finish(pending.pop(fut), fut.result())
        finally:
            if bar is not None:
                bar.close()
        if out_of_time():
            log.info("stopped after %.0f s (max time); rerun to continue", max_seconds)
    return done


# ------------------------------------------------------------------------------------------------
# status and the shipped table
# ------------------------------------------------------------------------------------------------
def status(records_path: Path) -> str:
    import proxies
    from prednas.benchmarks.blocks1d_mnist1d import build_spec

    jobs = jobs_of(build_spec())
    records = read_records(records_path)
    have = recorded_names(records)
    names = set(proxies.list_proxies())
    parts = collections.Counter(p for _, p in jobs)
    done = collections.Counter(p for a, p in jobs if names <= have.get(a, set()))
    walls = [r["wall_seconds"] for r in records if "wall_seconds" in r]
    nan = sum(1 for r in records for v in r.get("scores", {}).values()
              if isinstance(v, float) and math.isnan(v))
    per = f"; {sum(walls) / len(walls):.2f} s per architecture" if walls else ""
    return (f"{sum(done.values())} of {len(jobs)} architectures scored with every proxy ("
            + ", ".join(f"{p}: {done[p]}/{n}" for p, n in parts.items())
            + f"); {nan} NaN scores{per}")


def finalize(records_path: Path, table_path: Path, allow_partial: bool = False) -> int:
    """Write the long-format table ``proxies.load_table`` reads; returns its architectures."""
    import proxies
    from prednas.benchmarks.blocks1d_mnist1d import build_spec
    from prednas.errors import DataNotFoundError
    from proxies._table import ProxyTable

    records = read_records(records_path)
    if not records:
        raise DataNotFoundError(f"no records in {str(records_path)!r}; score first")
    check_settings(records, {k: records[0].get(k) for k in _SETTINGS}, records_path)
    jobs = jobs_of(build_spec())
    have = recorded_names(records)
    names = set(proxies.list_proxies())
    missing = [a for a, _ in jobs if not names <= have.get(a, set())]
    if missing and not allow_partial:
        raise DataNotFoundError(
            f"{len(missing)} of {len(jobs)} architectures lack some proxy (first: "
            f"{missing[0]!r}); finish the build or pass --allow-partial")
    rows = []
    for r in records:  # a later record of a pair wins
        secs = r.get("seconds", {})
        rows.extend((r["arch"], n, float(v), float(secs.get(n, math.nan)))
                    for n, v in r["scores"].items())
    table = ProxyTable.from_records(rows)
    table.to_csv(table_path)
    return len(table)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=Path, default=DEFAULT_RECORDS,
                    help="append-only records file (default proxies/data/"
                         "blocks1d-mnist1d-records.jsonl)")
    ap.add_argument("--table", type=Path, default=DEFAULT_TABLE,
                    help="table written by --finalize (default proxies/data/"
                         "blocks1d-mnist1d.csv.gz)")
    ap.add_argument("--workers", type=int, default=1, help="scoring processes (default 1)")
    ap.add_argument("--threads-per-worker", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--limit", type=int, default=None, help="score at most this many archs")
    ap.add_argument("--max-minutes", type=float, default=None,
                    help="start no new architecture after this many minutes")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda... (default auto)")
    ap.add_argument("--proxies", default=None,
                    help="comma-separated proxy names (default: every registered proxy)")
    ap.add_argument("--status", action="store_true", help="print progress and exit")
    ap.add_argument("--finalize", action="store_true",
                    help="write the table from the records and exit")
    ap.add_argument("--allow-partial", action="store_true",
                    help="with --finalize: write the table even if architectures are missing")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from prednas.errors import PredNASError

    try:
        if args.status:
            print(status(args.records))
            return 0
        if args.finalize:
            n = finalize(args.records, args.table, allow_partial=args.allow_partial)
            print(f"wrote {args.table} ({n} architectures)")
            return 0
        print("+", shlex.join(["python", "scripts/build_proxies_blocks1d.py", *(
            sys.argv[1:] if argv is None else argv)]), flush=True)
        t0 = time.perf_counter()
        n = build(args.records, args.proxies.split(",") if args.proxies else None,
                  workers=args.workers, threads_per_worker=args.threads_per_worker,
                  limit=args.limit,
                  max_seconds=None if args.max_minutes is None else 60 * args.max_minutes,
                  device=args.device, progress=not args.quiet)
        print(f"scored {n} architectures in {time.perf_counter() - t0:.1f} s (batch loading "
              f"included; {args.workers} worker(s), {os.cpu_count()} cores)")
        print(status(args.records))
    except PredNASError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
