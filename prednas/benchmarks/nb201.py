"""NAS-Bench-201 table served from the package's own copy (see data/NOTICE.md)."""

from __future__ import annotations

import csv
import io
from importlib import resources
from pathlib import Path

import numpy as np

from prednas.benchmarks.base import Benchmark
from prednas.errors import DataNotFoundError

__all__ = ["load_nb201", "NB201_METRICS"]

NB201_METRICS = ("cifar10_test_200ep", "cifar100_test_200ep", "imagenet16_test_200ep",
                 "cifar10_valid_12ep", "cifar10_test_12ep", "cifar100_valid_12ep",
                 "cifar100_test_12ep", "imagenet16_valid_12ep", "imagenet16_test_12ep")
CITATION = ("NAS-Bench-201 (Dong & Yang, ICLR 2020) and NATS-Bench (Dong et al., TPAMI 2021), "
            "MIT licence")
_CACHE: dict[str, Benchmark] = {}


def load_nb201(path: str | Path | None = None) -> Benchmark:
    """The NB201 table: packaged copy by default, or a CSV with the same columns at ``path``."""
    import spaces

    key = str(path)
    if key in _CACHE:
        return _CACHE[key]
    if path is None:
        text = resources.files("prednas.benchmarks").joinpath("data/nb201-accuracies.csv").read_text()
        origin = "package data nb201-accuracies.csv"
    else:
        p = Path(path)
        if not p.is_file():
            raise DataNotFoundError(f"NB201 table not found at {str(p)!r}")
        text, origin = p.read_text(), str(p)
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in ("index", "arch", *NB201_METRICS) if c not in (reader.fieldnames or [])]
    if missing:
        raise DataNotFoundError(f"NB201 table {origin!r} lacks column(s) {', '.join(missing)}")
    rows = list(reader)
    space = spaces.get("nb201")
    strings = [str(space.parse(r["arch"])) for r in rows]
    table = {m: np.array([float(r[m]) if r[m] not in ("", "nan") else np.nan for r in rows])
             for m in NB201_METRICS}
    bench = Benchmark("nb201", space, strings, table, np.array([int(r["index"]) for r in rows]),
                      citation=CITATION, default_metric="cifar10_test_200ep")
    _CACHE[key] = bench
    return bench
