"""The contract between the search engine and its strategies (Optuna style).

Each strategy family has an abstract base with one or two abstract methods and no-op hooks. The
engine, :class:`prednas.search.Search`, takes strategy objects as keyword arguments and hands each
a read-only :class:`SearchContext` in ``setup``; strategies never see the ``Search`` object. The
history of the run is a sequence of immutable, typed :class:`Record` objects (the lines of
``evaluations.jsonl``), as Optuna samplers see ``FrozenTrial`` objects.

Strategies keep their constructor arguments unchanged (``get_params``), declare their constraints
once (``_parameter_constraints``, checked when the object is constructed), and must be *storable*:
:meth:`Strategy.describe` turns them into JSON so that a run directory can rebuild them on
``--resume``. A parameter that cannot be stored (an arbitrary object) is refused when the run
starts, unless its type is registered with :func:`register_storable`.
"""

from __future__ import annotations

import abc
import functools
import inspect
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from prednas.errors import InvalidParameterError, RunDirectoryError
from prednas.params import validate_params

__all__ = ["Strategy", "Mutator", "Filter", "Evaluator", "Executor", "Ensembler", "Candidate",
           "History", "Record", "SearchContext", "register_storable", "encode_param",
           "decode_param"]


# ------------------------------------------------------------------------------------------------
# storing strategy parameters
# ------------------------------------------------------------------------------------------------
#: type -> (tag, encode(obj) -> JSON-able, decode(JSON-able) -> obj)
_STORABLE: dict[type, tuple[str, Callable[[Any], Any], Callable[[Any], Any]]] = {}
_DECODERS: dict[str, Callable[[Any], Any]] = {}


def register_storable(cls: type, tag: str, encode: Callable[[Any], Any],
                      decode: Callable[[Any], Any]) -> None:
    """Let strategy parameters of type ``cls`` (and subclasses) be stored in a run directory:
    ``encode(obj)`` returns JSON-able data and ``decode(data)`` rebuilds an equivalent object."""
    _STORABLE[cls] = (tag, encode, decode)
    _DECODERS[tag] = decode


class _NotStorable(Exception):
    def __init__(self, value):
        self.value = value


def encode_param(v: Any) -> Any:
    """JSON-able form of a strategy parameter; raises ``_NotStorable`` for anything else."""
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v)
    if isinstance(v, os.PathLike):
        return {"__path__": os.fspath(v)}
    if isinstance(v, (list, tuple)):
        return [encode_param(x) for x in v]
    if isinstance(v, Mapping) and all(isinstance(k, str) for k in v):
        return {k: encode_param(x) for k, x in v.items()}
    if isinstance(v, Strategy):
        return {"__strategy__": v.describe()}
    _lazy_storables()
    for cls, (tag, enc, _) in _STORABLE.items():
        if isinstance(v, cls):
            return {f"__{tag}__": enc(v)}
    raise _NotStorable(v)


def decode_param(v: Any) -> Any:
    """Inverse of :func:`encode_param`."""
    if isinstance(v, list):
        return [decode_param(x) for x in v]
    if isinstance(v, dict):
        if len(v) == 1:
            (k, x), = v.items()
            if k == "__path__":
                return Path(x)
            if k == "__strategy__":
                from prednas.search.registries import rebuild_strategy

                return rebuild_strategy(x.get("family"), x)
            if k.startswith("__") and k.endswith("__"):
                tag = k[2:-2]
                _lazy_storables()
                if tag not in _DECODERS:
                    raise RunDirectoryError(f"stored parameter of unknown type {tag!r}")
                return _DECODERS[tag](x)
        return {k: decode_param(x) for k, x in v.items()}
    return v


@functools.cache
def _lazy_storables() -> None:
    """Register the library's own storable types (predictors) on first need."""
    try:
        import predictors
    except ImportError:  # pragma: no cover - part of the distribution
        return

    def enc(est):
        name = getattr(est, "registry_name", None) or _predictor_name(est)
        return {"name": name, "params": encode_param(est.get_params(deep=False))}

    def dec(d):
        return predictors.get(d["name"], **decode_param(d.get("params") or {}))

    register_storable(predictors.BasePredictor, "predictor", enc, dec)

    from prednas.benchmarks.base import Benchmark

    def load_bench(name):
        from prednas import benchmarks

        return benchmarks.load(name)

    register_storable(Benchmark, "benchmark", lambda b: b.name, load_bench)


def _predictor_name(est) -> str:
    import predictors

    for name in predictors.list_predictors():
        if type(est) is predictors.base.PREDICTORS.get(name):
            return name
    raise _NotStorable(est)


# ------------------------------------------------------------------------------------------------
# strategies
# ------------------------------------------------------------------------------------------------
class Strategy:
    """Common behaviour of every strategy.

    ``get_params`` returns the constructor arguments (sklearn style); ``_parameter_constraints``
    declares what each may be (see :mod:`prednas.params`), checked once when the object is built;
    ``describe`` stores it, :func:`prednas.search.registries.rebuild_strategy` rebuilds it.
    """

    #: registry name (set by the ``register`` decorator of each family)
    name: str = ""
    #: the strategy family (``"mutator"``, ``"filter"``, ...)
    family: str = ""
    #: parameter -> allowed constraints (see :mod:`prednas.params`)
    _parameter_constraints: dict[str, list] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return

        @functools.wraps(init)
        def __init__(self, *args, **kw):
            init(self, *args, **kw)
            if type(self).__init__ is __init__:  # the most derived constructor checks, once
                self._validate_params()

        cls.__init__ = __init__

    def _validate_params(self) -> None:
        constraints: dict[str, list] = {}
        for klass in reversed(type(self).__mro__):
            constraints.update(getattr(klass, "_parameter_constraints", {}) or {})
        validate_params(type(self).__name__, constraints, self.get_params())

    def get_params(self) -> dict[str, Any]:
        sig = inspect.signature(type(self).__init__)
        return {k: getattr(self, k) for k in sig.parameters
                if k != "self" and sig.parameters[k].kind not in (inspect.Parameter.VAR_KEYWORD,
                                                                  inspect.Parameter.VAR_POSITIONAL)
                and hasattr(self, k)}

    def describe(self) -> dict[str, Any]:
        """``{"name": registry name, "params": JSON-able parameters}``, stored in the run state.

        Raises:
            InvalidParameterError: a parameter cannot be stored, so the run could not be resumed.
        """
        params = {}
        for k, v in self.get_params().items():
            try:
                params[k] = encode_param(v)
            except _NotStorable as exc:
                raise InvalidParameterError(
                    f"The {k!r} parameter of {type(self).__name__} is a "
                    f"{type(exc.value).__name__} object, which cannot be stored in the run "
                    f"directory, so the search could not be resumed. Pass a registered "
                    f"{'predictor' if k in ('predictor', 'prior') else 'value'} or a path, or "
                    f"register the type with prednas.search.register_storable") from None
        return {"family": self.family, "name": self.name or type(self).__name__,
                "params": params}

    def setup(self, context: SearchContext) -> None:
        """Hook called once by the engine before the first round (and again on resume)."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


# ------------------------------------------------------------------------------------------------
# records, history, context
# ------------------------------------------------------------------------------------------------
_FLOAT_OR_NONE = ("predicted", "predicted_std")


@dataclass(frozen=True)
class Record:
    """One completed evaluation (a line of ``evaluations.jsonl``), immutable.

    ``kind`` is ``"candidate"`` (the search proper), ``"baseline"`` or ``"replica"``; ``status`` is
    ``"ok"`` or a failure kind with its ``reason``; ``objective`` is what the search maximises (NaN
    on failure); ``metrics`` holds everything else the evaluator measured (``val_acc``,
    ``test_acc``, ``params``, ``flops``, ``seconds``, ``weights``...). ``record.get(key)`` reads a
    field or a metric.
    """

    arch: str
    canonical: str
    kind: str
    round: int
    slot: int
    status: str
    objective: float
    seed: int = 0
    query: int = 0
    reason: str = ""
    parent: str | None = None
    predicted: float | None = None
    predicted_std: float | None = None
    space: str = ""
    metrics: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "metrics", MappingProxyType(dict(self.metrics)))
        object.__setattr__(self, "objective", float(self.objective)
                           if self.objective is not None else math.nan)

    @property
    def ok(self) -> bool:
        return self.status == "ok" and math.isfinite(self.objective)

    def get(self, key: str, default: Any = None) -> Any:
        if key in _FIELD_NAMES:
            return getattr(self, key)
        return self.metrics.get(key, default)

    def to_json(self) -> dict[str, Any]:
        """The flat JSON object written to ``evaluations.jsonl``."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "metrics"}
        d.update({k: v for k, v in self.metrics.items() if k not in d})
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Record:
        known = {k: d[k] for k in _FIELD_NAMES if k in d and k != "metrics"}
        for k in _FLOAT_OR_NONE:
            if known.get(k) is not None:
                known[k] = float(known[k])
        metrics = {k: v for k, v in d.items() if k not in _FIELD_NAMES}
        return cls(**known, metrics=metrics)


_FIELD_NAMES = frozenset(f.name for f in fields(Record))


@dataclass
class Candidate:
    """One architecture proposed for full evaluation, with what the filter thought of it."""

    arch: Any
    parent: str | None = None
    predicted: float = float("nan")
    predicted_std: float = float("nan")
    scores: dict[str, float] = field(default_factory=dict)


class History:
    """The completed evaluations a strategy may look at, in a canonical order.

    The order is ``(round, slot)``, not completion order, so a resumed run sees exactly what an
    uninterrupted run saw.
    """

    def __init__(self, space, records: Iterable[Record] = (), also_seen: Iterable[str] = ()):
        self.space = space
        self.records: tuple[Record, ...] = tuple(sorted(records, key=lambda r: (r.round, r.slot)))
        #: canonical forms already tried: the records' and ``also_seen`` (e.g. candidates a
        #: scheduler paused before their full training, which are not records here)
        self.seen: frozenset[str] = frozenset(
            [r.canonical for r in self.records] + [str(c) for c in also_seen])
        self._objects: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)

    def arch(self, record: Record):
        s = record.arch
        if s not in self._objects:
            self._objects[s] = self.space.parse(s)
        return self._objects[s]

    @property
    def ok(self) -> list[Record]:
        return [r for r in self.records if r.ok]

    def top(self, k: int) -> list[Record]:
        """The ``k`` best successful records by objective (ties: fewer parameters, then earlier
        first)."""
        ok = self.ok
        order = sorted(range(len(ok)),
                       key=lambda i: (-ok[i].objective, ok[i].get("params") or 0, i))
        return [ok[i] for i in order[:k]]

    def last(self, k: int) -> list[Record]:
        return list(self.records[-k:]) if k > 0 else []

    def is_seen(self, arch) -> bool:
        return str(self.space.canonical(arch)) in self.seen


class SearchContext:
    """What the engine tells a strategy about the run: read-only.

    Attributes:
        space: the search space.
        task: the task candidates are trained on (``None`` in oracle mode).
        oracle: the benchmark answering evaluations (``None`` when training).
        metric: the oracle metric maximised (``None`` when training).
        seed: the run's seed.
        device: the run's device setting (``"auto"``, ``"cpu"``, ``"cuda"``...).
        run_dir: the run directory (it may not exist yet during ``setup`` of a new run).
        max_params: the parameter cap, or ``None``.
        objectives: what the search optimises: the first is maximised (the record's
            ``objective``), the others are costs minimised (``params``, ``flops``,
            ``latency_ms``, a benchmark's cost column); one entry for a single-objective search.
        constraints: ``{cost: upper bound}`` a candidate must meet to count (e.g. latency).
    """

    __slots__ = ("_space", "_task", "_oracle", "_metric", "_seed", "_device", "_run_dir",
                 "_max_params", "_records", "_evaluate", "_count_params", "_objectives",
                 "_constraints")

    def __init__(self, *, space, task=None, oracle=None, metric: str | None = None, seed: int = 0,
                 device: str = "auto", run_dir: str | os.PathLike | None = None,
                 max_params: int | None = None,
                 records: Callable[[], Sequence[Record]] = tuple,
                 evaluate: Callable[[Sequence[Mapping[str, Any]]], list[Record]] | None = None,
                 count_params: Callable[[Any], int] | None = None,
                 objectives: Sequence[str] = ("objective",),
                 constraints: Mapping[str, float] | None = None):
        self._space, self._task, self._oracle, self._metric = space, task, oracle, metric
        self._objectives = tuple(objectives)
        self._constraints = MappingProxyType(dict(constraints or {}))
        self._seed, self._device, self._max_params = int(seed), device, max_params
        self._run_dir = Path(run_dir) if run_dir is not None else None
        self._records, self._evaluate, self._count_params = records, evaluate, count_params

    space = property(lambda self: self._space)
    task = property(lambda self: self._task)
    oracle = property(lambda self: self._oracle)
    metric = property(lambda self: self._metric)
    seed = property(lambda self: self._seed)
    device = property(lambda self: self._device)
    run_dir = property(lambda self: self._run_dir)
    max_params = property(lambda self: self._max_params)
    objectives = property(lambda self: self._objectives)
    constraints = property(lambda self: self._constraints)

    @property
    def costs(self) -> tuple[str, ...]:
        """The minimised objectives (empty for a single-objective search)."""
        return self._objectives[1:]

    def get_records(self, kind: str | None = "candidate", ok: bool = False) -> tuple[Record, ...]:
        """Completed evaluations of ``kind`` (``None``: every kind) in completion order."""
        return tuple(r for r in self._records()
                     if (kind is None or r.kind == kind) and (not ok or r.ok))

    def history(self) -> History:
        """The candidate evaluations so far, in ``(round, slot)`` order."""
        return History(self._space, self.get_records("candidate"))

    def evaluate(self, arch, *, seed: int, kind: str, slot: int) -> Record:
        """Evaluate ``arch`` outside the search proper (replicas, baselines), recorded in the run
        with ``kind`` and ``slot``; one already recorded is returned, not redone."""
        return self.evaluate_many([{"arch": arch, "seed": seed, "kind": kind, "slot": slot}])[0]

    def evaluate_many(self, jobs: Sequence[Mapping[str, Any]]) -> list[Record]:
        """:meth:`evaluate` for several architectures at once, run in parallel by the run's
        executor (each a mapping with ``arch``, ``seed``, ``kind`` and ``slot``); the records
        come back in the order of ``jobs``, and each is written to the run as it finishes."""
        if self._evaluate is None:
            raise RunDirectoryError("this context cannot run evaluations (no run is open)")
        return self._evaluate([{**j, "arch": str(j["arch"])} for j in jobs])

    def count_params(self, arch) -> int:
        """Parameters of ``arch`` built for the run's task."""
        if self._count_params is None:
            raise InvalidParameterError("parameter counts need a task (training mode)")
        return self._count_params(arch)

    def __repr__(self) -> str:
        mode = (f"oracle={getattr(self._oracle, 'name', None)!r}" if self._oracle is not None
                else f"task={getattr(self._task, 'name', None)!r}")
        return f"SearchContext(space={self._space.name!r}, {mode}, seed={self._seed})"


# ------------------------------------------------------------------------------------------------
# the families
# ------------------------------------------------------------------------------------------------
class Mutator(Strategy, abc.ABC):
    """Proposes a pool of new, not yet evaluated architectures."""

    family = "mutator"

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

    family = "filter"

    @abc.abstractmethod
    def select(self, space, candidates: Sequence[Candidate], history: History, k: int,
               rng: np.random.Generator) -> list[Candidate]:
        """The ``k`` most promising candidates, best first, with ``predicted`` filled in if known."""

    def feature_seconds(self) -> float:
        """One-off set-up cost (e.g. a supernet warm-up), reported separately."""
        return 0.0

    def signals(self) -> dict[str, Any]:
        """What the filter used to rank candidates, for the report (name -> description)."""
        return {}


class Evaluator(Strategy, abc.ABC):
    """Evaluates one architecture fully: a training run or a benchmark lookup.

    ``evaluate`` must be picklable with its evaluator (the process-pool executor ships both to a
    worker) and returns a JSON-friendly dict with at least ``status`` (``"ok"``), ``reason``,
    ``objective`` (higher is better) and ``seconds``. A candidate that fails is reported by raising
    one of :attr:`failures` (:class:`prednas.errors.CandidateError` and the evaluator's own kinds);
    the engine records it and goes on. Any other exception is a bug: it stops the search with its
    traceback, leaving a run directory that ``--resume`` continues.
    """

    family = "evaluator"

    #: True when one evaluation is a cheap table lookup (oracle mode)
    is_oracle: bool = False
    #: exception types that mean "this candidate failed"; anything else stops the search
    failures: tuple[type[BaseException], ...] = ()
    #: True when ``evaluate`` uses ``parent_state_path`` (weight inheritance)
    uses_parent_weights: bool = False
    #: True when ``evaluate`` takes ``fidelity`` (train to that many steps and pause),
    #: ``checkpoint`` (where a paused evaluation saves its state) and ``resume`` (the
    #: checkpoint to continue from): partial trainings under a scheduler
    supports_fidelity: bool = False

    def full_steps(self, context: SearchContext | None = None) -> int | None:
        """The steps of a full evaluation, the last rung of a scheduler (``None``: the
        evaluator has no steps)."""
        return None

    @abc.abstractmethod
    def evaluate(self, space, arch, *, seed: int, parent_state_path: str | None = None,
                 save_path: str | None = None) -> dict[str, Any]:
        """Evaluate ``arch``; save the trained weights to ``save_path`` when given and supported."""


class Executor(Strategy, abc.ABC):
    """Runs jobs and yields ``(key, result)`` as each completes (possibly out of order).

    Narrow on purpose: a distributed engine (Ray, Dask) only has to implement ``map_unordered``.
    """

    family = "executor"

    @abc.abstractmethod
    def map_unordered(self, fn: Callable[..., Any],
                      jobs: Iterable[tuple[Any, tuple, dict]]) -> Iterator[tuple[Any, Any]]:
        """Call ``fn(*args, **kwargs)`` for each ``(key, args, kwargs)``; yield ``(key, result)``.

        ``jobs`` may be a lazy iterator: take the next job only when a worker is free to run
        it, so that the asynchronous loop (a :class:`~prednas.search.schedulers.Scheduler`)
        decides each job with every result yielded before it.
        """

    def shutdown(self) -> None:
        """Release workers (no-op by default)."""


class Ensembler(Strategy, abc.ABC):
    """Turns the search result into a final ensemble artifact."""

    family = "ensembler"

    @abc.abstractmethod
    def build(self, context: SearchContext, winner: Record) -> dict[str, Any] | None:
        """Build and save the ensemble; returns a JSON-friendly summary for the report."""
