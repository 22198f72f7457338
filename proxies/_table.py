"""Cached proxy scores: a long ``arch,proxy,value,seconds`` CSV seen as an archs x proxies table."""

from __future__ import annotations

import csv
import gzip
import io
import math
import os
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path

import numpy as np

from prednas.errors import DataNotFoundError, UnknownNameError
from prednas.utils import atomic_path

__all__ = ["ProxyTable", "load_table", "read_records", "HEADER"]

HEADER = ("arch", "proxy", "value", "seconds")


def _arch_key(arch) -> str:
    return arch.strip() if isinstance(arch, str) else str(arch)


def _open_text(path: Path, mode: str, gz: bool | None = None):
    if gz if gz is not None else path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, mode + "b"), encoding="utf-8", newline="")
    return open(path, mode, encoding="utf-8", newline="")


def read_records(path: str | os.PathLike) -> list[tuple[str, str, float, float]]:
    """The rows of a long-format cache file (a missing file gives no rows)."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    with _open_text(path, "r") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            return []
        if tuple(header[:4]) != HEADER:
            raise DataNotFoundError(
                f"{str(path)!r} is not a proxy table: header {header!r}, expected {list(HEADER)}")
        for row in reader:
            if len(row) < 4:
                continue  # a half-written last line of a killed run
            try:
                rows.append((row[0], row[1], float(row[2]), float(row[3])))
            except ValueError:
                continue
    return rows


class ProxyTable:
    """Proxy scores of many architectures.

    Attributes:
        arch_strings: Architecture strings, one per row.
        names: Proxy names, one per column.
        values: ``(n_archs, n_names)`` float array, NaN where missing or undefined.
        seconds: Same shape, seconds each score cost (shared passes split among proxies).
    """

    def __init__(self, arch_strings: Sequence[str], names: Sequence[str], values: np.ndarray,
                 seconds: np.ndarray | None = None):
        self.arch_strings = [str(a) for a in arch_strings]
        self.names = [str(n) for n in names]
        self.values = np.asarray(values, dtype=np.float64).reshape(len(self.arch_strings),
                                                                   len(self.names))
        self.seconds = (np.full_like(self.values, np.nan) if seconds is None
                        else np.asarray(seconds, dtype=np.float64).reshape(self.values.shape))
        self._row = {a: i for i, a in enumerate(self.arch_strings)}
        self._col = {n: j for j, n in enumerate(self.names)}

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_records(cls, records: Iterable[tuple[str, str, float, float]]) -> ProxyTable:
        """From ``(arch, proxy, value, seconds)`` rows; a later row for a pair wins."""
        rows: dict[str, int] = {}
        cols: dict[str, int] = {}
        cells: dict[tuple[int, int], tuple[float, float]] = {}
        for arch, proxy, value, sec in records:
            i = rows.setdefault(_arch_key(arch), len(rows))
            j = cols.setdefault(proxy, len(cols))
            cells[i, j] = (float(value), float(sec))
        names = sorted(cols)
        order = [cols[n] for n in names]
        vals = np.full((len(rows), len(cols)), np.nan)
        secs = np.full((len(rows), len(cols)), np.nan)
        for (i, j), (v, s) in cells.items():
            vals[i, j], secs[i, j] = v, s
        return cls(list(rows), names, vals[:, order], secs[:, order])

    @classmethod
    def from_csv(cls, path: str | os.PathLike) -> ProxyTable:
        """Read a long-format ``arch,proxy,value,seconds`` CSV (``.gz`` is decompressed)."""
        path = Path(path)
        if not path.exists():
            raise DataNotFoundError(f"proxy table {str(path)!r} not found")
        try:
            return cls.from_records(read_records(path))
        except (OSError, EOFError, UnicodeDecodeError, ValueError) as exc:  # gzip/csv damage
            raise DataNotFoundError(f"proxy table {str(path)!r} is unreadable ({exc})") from None

    def to_records(self) -> list[tuple[str, str, float, float]]:
        return [(a, n, float(self.values[i, j]), float(self.seconds[i, j]))
                for i, a in enumerate(self.arch_strings) for j, n in enumerate(self.names)
                if not (math.isnan(self.values[i, j]) and math.isnan(self.seconds[i, j]))]

    def to_csv(self, path: str | os.PathLike) -> None:
        """Write the long format atomically (gzip when the name ends in ``.gz``)."""
        path = Path(path)
        with atomic_path(path) as tmp, _open_text(tmp, "w", gz=path.suffix == ".gz") as f:
            w = csv.writer(f)
            w.writerow(HEADER)
            for a, n, v, s in self.to_records():
                w.writerow((a, n, repr(v), f"{s:.6g}"))

    # -- queries -----------------------------------------------------------------------------
    def lookup(self, archs: Iterable, names: str | Sequence[str] | None = None) -> np.ndarray:
        """Scores of ``archs`` (objects or strings) for ``names``: ``(len(archs), len(names))``.

        Missing architectures or scores are NaN; an unknown proxy name raises UnknownNameError.
        """
        if names is None:
            names = self.names
        elif isinstance(names, str):
            names = [names]
        cols = []
        for n in names:
            if n not in self._col:
                raise UnknownNameError("proxy in this table", n, self.names)
            cols.append(self._col[n])
        archs = list(archs)
        out = np.full((len(archs), len(cols)), np.nan)
        for k, a in enumerate(archs):
            i = self._row.get(_arch_key(a))
            if i is not None:
                out[k] = self.values[i, cols]
        return out

    def __contains__(self, arch) -> bool:
        return _arch_key(arch) in self._row

    def __len__(self) -> int:
        return len(self.arch_strings)

    def __repr__(self) -> str:
        return f"ProxyTable({len(self)} archs x {len(self.names)} proxies)"


def load_table(space: str = "nb201", dataset: str = "cifar10") -> ProxyTable:
    """The shipped table ``proxies/data/{space}-{dataset}.csv.gz`` (package data)."""
    fname = f"{space}-{dataset}.csv.gz"
    root = resources.files("proxies") / "data"
    ref = root / fname
    if not ref.is_file():
        shipped = sorted(p.name[: -len(".csv.gz")] for p in root.iterdir()
                         if p.name.endswith(".csv.gz")) if root.is_dir() else []
        raise DataNotFoundError(
            f"no shipped proxy table for space={space!r}, dataset={dataset!r}; shipped: "
            f"{', '.join(shipped) or 'none'}")
    with resources.as_file(ref) as path:
        return ProxyTable.from_csv(path)
