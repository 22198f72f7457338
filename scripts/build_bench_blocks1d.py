"""Build (or continue building) the ``blocks1d-mnist1d`` benchmark table.

Trains every architecture of the sub-space ``prednas.benchmarks.blocks1d_mnist1d.SUBSPACE`` and
200 samples of the full ``blocks1d`` space with one fixed recipe. Version 2 (the default):
``RECIPE_V2`` (validation 5,000 and test 20,000 examples, a learning curve every 25 steps), seeds
0-1 for every architecture, then seeds 0-4 for the best 100 (and the best 50 by the final means).
Version 1 (``--version 1``, the first table): ``RECIPE``, seed 0 (seeds 0-2 for the first 100 of a
fixed shuffled order). Records are appended to ``prednas/benchmarks/data/<name>/records.jsonl`` as
each training finishes; run the same command again after an interruption (``kill -9`` included)
and it continues where it stopped.

    python scripts/build_bench_blocks1d.py                     # every core, until done
    python scripts/build_bench_blocks1d.py --workers 1 --max-minutes 60
    python scripts/build_bench_blocks1d.py --status            # progress only
"""

from __future__ import annotations

import argparse
import collections
import logging
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "prednas" / "benchmarks" / "data"


def status(spec, out: Path) -> None:
    from prednas.benchmarks.build import RECORDS
    from prednas.utils import JsonlLog

    recs = JsonlLog(out / RECORDS).read()
    done = {(r["arch"], r["seed"], r["part"]) for r in recs}
    by_part = collections.Counter(p for _, _, p in spec.jobs)
    done_part = collections.Counter(p for (a, s, p) in done)
    st = collections.Counter(r["status"] for r in recs)
    secs = sum(r.get("train_seconds", 0.0) for r in recs)
    print(f"{len(done)} of {len(spec.jobs)} jobs recorded "
          + ", ".join(f"{p}: {done_part[p]}/{n}" for p, n in by_part.items())
          + f"; status {dict(st)}; {secs / 3600:.2f} training hours so far")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--version", type=int, default=2, choices=(1, 2), help="table version")
    ap.add_argument("--out", type=Path, default=None,
                    help="build directory (default: the version's package data directory)")
    ap.add_argument("--workers", type=int, default=None, help="worker processes (default: cores)")
    ap.add_argument("--threads-per-worker", type=int, default=1)
    ap.add_argument("--limit", type=int, default=None, help="at most this many new jobs")
    ap.add_argument("--max-minutes", type=float, default=None,
                    help="submit no new job after this many minutes")
    ap.add_argument("--status", action="store_true", help="print progress and exit")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    import time

    from prednas.benchmarks.blocks1d_mnist1d import DIRS, build_spec
    from prednas.benchmarks.build import RECORDS, build
    from prednas.utils import JsonlLog

    out = args.out or DATA / DIRS[args.version]
    command = "python scripts/build_bench_blocks1d.py" + (
        "" if args.version == 2 else f" --version {args.version}")

    spec = build_spec(command=command, version=args.version, records=JsonlLog(out / RECORDS).read())
    if args.status:
        status(spec, out)
        return 0
    print("+", shlex.join(sys.argv), flush=True)
    start, limit = time.monotonic(), args.limit
    while True:  # version 2's second phase depends on the first's results: rebuild the job list
        recs = JsonlLog(out / RECORDS).read()
        spec = build_spec(command=command, version=args.version, records=recs)
        done = {(r["arch"], int(r["seed"]), r.get("part", "sub")) for r in recs}
        left = None if args.max_minutes is None else 60 * args.max_minutes - (time.monotonic() - start)
        if all(j in done for j in spec.jobs) or (left is not None and left <= 0) or limit == 0:
            break
        build(spec, out, workers=args.workers, threads_per_worker=args.threads_per_worker,
              limit=limit, max_seconds=left)
        n_new = len(JsonlLog(out / RECORDS).read()) - len(recs)
        if n_new == 0:
            break
        if limit is not None:
            limit -= n_new
    status(spec, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
