"""Build (or continue building) the ``blocks1d-mnist1d`` benchmark table.

Trains every architecture of the sub-space ``prednas.benchmarks.blocks1d_mnist1d.SUBSPACE`` with the
fixed recipe ``RECIPE`` (seed 0; seeds 0-2 for the first 100 of a fixed shuffled order), then 200
samples of the full ``blocks1d`` space. Records are appended to
``prednas/benchmarks/data/blocks1d-mnist1d/records.jsonl`` as each training finishes; run the same
command again after an interruption (``kill -9`` included) and it continues where it stopped.

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
DEFAULT_OUT = ROOT / "prednas" / "benchmarks" / "data" / "blocks1d-mnist1d"


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
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="build directory")
    ap.add_argument("--workers", type=int, default=None, help="worker processes (default: cores)")
    ap.add_argument("--threads-per-worker", type=int, default=1)
    ap.add_argument("--limit", type=int, default=None, help="at most this many new jobs")
    ap.add_argument("--max-minutes", type=float, default=None,
                    help="submit no new job after this many minutes")
    ap.add_argument("--status", action="store_true", help="print progress and exit")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from prednas.benchmarks.blocks1d_mnist1d import build_spec
    from prednas.benchmarks.build import build

    spec = build_spec(command="python scripts/build_bench_blocks1d.py")
    if args.status:
        status(spec, args.out)
        return 0
    print("+", shlex.join(sys.argv), flush=True)
    build(spec, args.out, workers=args.workers, threads_per_worker=args.threads_per_worker,
          limit=args.limit, max_seconds=None if args.max_minutes is None else 60 * args.max_minutes)
    status(spec, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
