"""Replace one proxy's values in a shipped proxy table with a recomputed column.

Used after a proxy's definition changes (fisher's fan-in weighting): the new values come from
the resumable cache of ``scripts/evaluate_proxies.py --proxies NAME --cache CSV``; every
architecture of the table must have one (a partial column would mix two definitions). The old
seconds are kept (the table's costs were measured on the machine that built it). Prints the
proxy's Spearman / Kendall against NB201 CIFAR-10 200-epoch accuracy before and after.

    python scripts/replace_proxy_column.py --proxy fisher --cache runs/fisher-fanin-nb201-cache.csv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--proxy", required=True)
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--table", type=Path, default=ROOT / "proxies" / "data" / "nb201-cifar10.csv.gz")
    ap.add_argument("--dry-run", action="store_true", help="report only, write nothing")
    args = ap.parse_args(argv)
    import proxies
    from prednas import benchmarks
    from prednas.metrics import rank_correlations

    table = proxies.ProxyTable.from_csv(args.table)
    new = proxies.ProxyTable.from_csv(args.cache)
    if args.proxy not in table.names or args.proxy not in new.names:
        print(f"{args.proxy!r} must be a column of both files", file=sys.stderr)
        return 2
    j = table.names.index(args.proxy)
    missing = [a for a in table.arch_strings if a not in new]
    if missing:
        print(f"{len(missing)} of {len(table)} architectures have no new {args.proxy} value; "
              "finish the cache first", file=sys.stderr)
        return 2
    old = table.values[:, j].copy()
    table.values[:, j] = new.lookup(table.arch_strings, [args.proxy])[:, 0]
    bench = benchmarks.load("nb201")
    y = bench.values("cifar10_test_200ep", table.arch_strings)
    for label, v in (("old", old), ("new", table.values[:, j])):
        rho, tau, _ = rank_correlations(v, y)
        print(f"{args.proxy} {label}: Spearman {rho:.3f}, Kendall {tau:.3f} "
              f"(n={int(np.isfinite(v).sum())}, NaN {int(np.isnan(v).sum())})")
    if not args.dry_run:
        table.to_csv(args.table)
        print(f"wrote {args.table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
