"""Abstract strategy families of the search engine (Optuna style).

Each family has an abstract base with one or two abstract methods and no-op hooks. The engine,
:class:`prednas.search.Search`, takes strategy objects as keyword arguments. Every strategy keeps its
constructor arguments unchanged (``get_params``) so that a run directory can record how it was made
and ``prednas search --resume`` can rebuild it; strategies get their randomness from a
``np.random.Generator`` handed over by the engine, never from global state.
"""

from __future__ import annotations

import abc
import inspect
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Strategy", "Mutator", "Filter", "Evaluator", "Executor", "Ensembler", "Candidate",
           "History"]


class Strategy:
    """Common behaviour: ``get_params`` returns the constructor arguments (sklearn style)."""

    #: registry name (set by the ``register`` decorator of each family)
    name: str = ""

    def get_params(self) -> dict[str, Any]:
        sig = inspect.signature(type(self).__init__)
        return {k: getattr(self, k) for k in sig.parameters
                if k != "self" and sig.parameters[k].kind is not inspect.Parameter.VAR_KEYWORD
                and hasattr(self, k)}

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly description (name + scalar params) stored in the run state."""
        params = {}
        for k, v in self.get_params().items():
            if v is None or isinstance(v, (bool, int, float, str)):
                params[k] = v
            elif isinstance(v, (list, tuple)) and all(isinstance(x, (int, float, str)) for x in v):
                params[k] = list(v)
            elif isinstance(v, dict) and all(
                    isinstance(x, (bool, int, float, str, type(None))) for x in v.values()):
                params[k] = dict(v)
            else:
                params[k] = f"<{type(v).__name__}>"
        return {"name": self.name or type(self).__name__, "params": params}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


@dataclass
class Candidate:
    """One architecture proposed for full evaluation, with what the filter thought of it."""

    arch: Any
    parent: str | None = None
    predicted: float = float("nan")
    predicted_std: float = float("nan")
    scores: dict[str, float] = field(default_factory=dict)


class History:
    """The completed evaluations the strategies may look at, in a canonical order.

    Records are dicts as written to ``evaluations.jsonl`` (``arch``, ``canonical``, ``objective``,
    ``status``, ``round``, ``slot``...). The order is ``(round, slot)``, not completion order, so a
    resumed run sees exactly what an uninterrupted run saw.
    """

    def __init__(self, space, records: Iterable[dict] = ()):
        self.space = space
        self.records: list[dict] = sorted(records, key=lambda r: (r["round"], r["slot"]))
        self.seen: set[str] = {r["canonical"] for r in self.records}
        self._objects: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self.records)

    def arch(self, record: dict):
        s = record["arch"]
        if s not in self._objects:
            self._objects[s] = self.space.parse(s)
        return self._objects[s]

    @property
    def ok(self) -> list[dict]:
        return [r for r in self.records if r["status"] == "ok" and np.isfinite(r["objective"])]

    def top(self, k: int) -> list[dict]:
        """The ``k`` best successful records by objective (ties: fewer parameters, then earlier
        first)."""
        ok = self.ok
        order = sorted(range(len(ok)),
                       key=lambda i: (-ok[i]["objective"], ok[i].get("params") or 0, i))
        return [ok[i] for i in order[:k]]

    def last(self, k: int) -> list[dict]:
        return self.records[-k:] if k > 0 else []

    def is_seen(self, arch) -> bool:
        return str(self.space.canonical(arch)) in self.seen


class Mutator(Strategy, abc.ABC):
    """Proposes a pool of new, not yet evaluated architectures."""

    @abc.abstractmethod
    def propose(self, space, history: History, rng: np.random.Generator, *,
                max_params: int | None = None,
                param_counter: Callable[[Any], int] | None = None) -> list[Candidate]:
        """Distinct candidates (through ``space.canonical``), none already in ``history``; those
        with more than ``max_params`` parameters (counted by ``param_counter``) are dropped."""

    def pool_size(self) -> int | None:
        return None


class Filter(Strategy, abc.ABC):
    """Ranks a pool of candidates cheaply and keeps the ``k`` to evaluate fully."""

    @abc.abstractmethod
    def select(self, space, candidates: Sequence[Candidate], history: History, k: int,
               rng: np.random.Generator) -> list[Candidate]:
        """The ``k`` most promising candidates, best first, with ``predicted`` filled in if known."""

    def setup(self, search) -> None:
        """Hook called once by the engine before the first round."""

    def feature_seconds(self) -> float:
        """One-off set-up cost (e.g. a supernet warm-up), reported separately."""
        return 0.0


class Evaluator(Strategy, abc.ABC):
    """Evaluates one architecture fully: a training run or a benchmark lookup.

    ``evaluate`` must be picklable with its evaluator (the process-pool executor ships both to a
    worker) and returns a JSON-friendly dict with at least ``status`` (``"ok"`` or a failure kind),
    ``reason``, ``objective`` (higher is better, NaN on failure) and ``seconds``.
    """

    #: True when one evaluation is a cheap table lookup (oracle mode)
    is_oracle: bool = False

    @abc.abstractmethod
    def evaluate(self, space, arch, *, seed: int, parent_state_path: str | None = None,
                 save_path: str | None = None) -> dict[str, Any]:
        """Evaluate ``arch``; save the trained weights to ``save_path`` when given and supported."""

    def setup(self, search) -> None:
        """Hook called once by the engine before the first round."""


class Executor(Strategy, abc.ABC):
    """Runs jobs and yields ``(key, result)`` as each completes (possibly out of order).

    Narrow on purpose: a distributed engine (Ray, Dask) only has to implement ``map_unordered``.
    """

    @abc.abstractmethod
    def map_unordered(self, fn: Callable[..., Any],
                      jobs: Sequence[tuple[Any, tuple, dict]]) -> Iterator[tuple[Any, Any]]:
        """Call ``fn(*args, **kwargs)`` for each ``(key, args, kwargs)``; yield ``(key, result)``."""

    def shutdown(self) -> None:
        """Release workers (no-op by default)."""


class Ensembler(Strategy, abc.ABC):
    """Turns the search result into a final ensemble artifact."""

    @abc.abstractmethod
    def build(self, search, winner: dict) -> dict[str, Any]:
        """Build and save the ensemble; returns a JSON-friendly summary for the report."""
