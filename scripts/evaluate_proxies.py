#!/usr/bin/env python
"""Validate the zero-cost proxy suite on NAS-Bench-201 and write benchmarks/proxies-nb201.md.

Example (resumable; the cache is an append-only CSV)::

    python scripts/evaluate_proxies.py --space nb201 --bench nb201 \
        --data ../shared/data/cifar10-subset.npz --n 3000 --seed 0 --batch-size 64 \
        --device auto --cache runs/proxies-nb201.csv
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from proxies._evaluate import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
