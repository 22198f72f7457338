"""A tabular NAS benchmark: architectures of one space with published metrics."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from prednas.errors import InvalidArchitectureError, UnknownNameError

__all__ = ["Benchmark"]


class Benchmark:
    """Ground truth for every architecture of a finite space.

    Args:
        name: registry name.
        space: the :class:`spaces.Space` the strings belong to.
        arch_strings: canonical architecture strings, one per row.
        table: ``{metric: float array aligned with arch_strings}``.
        indices: the benchmark's own index of each row.
    """

    #: the metric a search maximises unless told otherwise
    default_metric: str = ""

    def __init__(self, name: str, space, arch_strings: Sequence[str], table: dict[str, np.ndarray],
                 indices: np.ndarray | None = None, citation: str = "",
                 default_metric: str | None = None):
        self.name = name
        self.space = space
        self._strings = list(arch_strings)
        self._row = {s: i for i, s in enumerate(self._strings)}
        self._table = {k: np.asarray(v, dtype=np.float64) for k, v in table.items()}
        self.indices = np.arange(len(self._strings)) if indices is None else np.asarray(indices)
        self.citation = citation
        if default_metric is not None:
            self.default_metric = default_metric
        if not self.default_metric and self._table:
            self.default_metric = next(iter(self._table))
        self._archs = None
        self._canonical_row: dict[str, int] | None = None

    @property
    def metrics(self) -> list[str]:
        return list(self._table)

    def __len__(self) -> int:
        return len(self._strings)

    def __repr__(self) -> str:
        return f"Benchmark({self.name!r}, {len(self)} architectures, metrics={self.metrics})"

    def archs(self) -> list:
        """Every architecture object, in table order."""
        if self._archs is None:
            self._archs = [self.space.parse(s) for s in self._strings]
        return list(self._archs)

    def arch_strings(self) -> list[str]:
        return list(self._strings)

    def row(self, arch) -> int:
        """Row position of ``arch`` (object or string) in the table; an isomorphic variant of a
        table architecture is answered through its canonical form."""
        arch = self.space.coerce(arch)  # outside the space: the space's error names it
        key = str(arch)
        if key in self._row:
            return self._row[key]
        if self._canonical_row is None:
            self._canonical_row = {}
            for s, i in self._row.items():
                self._canonical_row.setdefault(str(self.space.canonical(self.space.parse(s))), i)
        row = self._canonical_row.get(str(self.space.canonical(arch)))
        if row is None:
            raise InvalidArchitectureError(self._missing(key))
        return row

    def _missing(self, key: str) -> str:
        return f"{key!r} is not in benchmark {self.name!r} ({len(self)} architectures)"

    def _check_metric(self, metric: str) -> np.ndarray:
        try:
            return self._table[metric]
        except (KeyError, TypeError):
            raise UnknownNameError("metric", metric, self._table) from None

    def query(self, arch, metric: str) -> float:
        """The published ``metric`` of ``arch`` (object or string)."""
        values = self._check_metric(metric)
        return float(values[self.row(arch)])

    def values(self, metric: str, archs=None) -> np.ndarray:
        """``metric`` for every row (or for ``archs``), as a float array."""
        values = self._check_metric(metric)
        if archs is None:
            return values.copy()
        return values[[self.row(a) for a in archs]]

    def best(self, metric: str) -> tuple[object, float]:
        """The architecture with the highest ``metric`` and that value."""
        values = self._check_metric(metric)
        i = int(np.nanargmax(values))
        return self.space.parse(self._strings[i]), float(values[i])

    def index_of(self, arch) -> int:
        """The benchmark's own index of ``arch`` (NB201 / NATS-Bench topology index)."""
        return int(self.indices[self.row(arch)])
