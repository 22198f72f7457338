"""The search loop: propose, filter, evaluate the few, learn, repeat — resumable at any moment."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from prednas.errors import InvalidParameterError, RunDirectoryError
from prednas.params import DEVICE, Interval, SequenceOf, validate_params
from prednas.search.base import (
    Ensembler,
    Evaluator,
    Executor,
    Filter,
    History,
    Mutator,
    Record,
    SearchContext,
    decode_param,
    encode_param,
)
from prednas.search.cost import seconds_of
from prednas.search.rundir import FORMAT_VERSION, STATE_KIND, RunDir
from prednas.search.study import mirror as mirror_study

__all__ = ["Search", "SearchResult", "RESUMABLE_OVERRIDES"]

log = logging.getLogger(__name__)

#: settings a resumed search may change; every other override must match what the run recorded
RESUMABLE_OVERRIDES = ("budget", "max_seconds", "executor", "progress", "device")
_FAMILIES = ("mutator", "filter", "evaluator", "executor", "ensembler", "scheduler")


@dataclass
class SearchResult:
    """What a search produced. ``records`` are the candidate evaluations in completion order."""

    best: Record | None
    records: list[Record]
    run_dir: Path
    baseline: Record | None = None
    ensemble: dict | None = None
    overhead: list[dict] = field(default_factory=list)
    #: why ``best`` won when trainings are noisy: its noise-aware estimate, its trainings
    #: (n, mean, std), the runner-up, and ``why`` in words (``None`` for table lookups)
    estimate: dict | None = None

    @property
    def best_arch(self) -> str | None:
        return None if self.best is None else self.best.arch

    def best_so_far(self, key: str = "objective") -> np.ndarray:
        """Best ``key`` after each evaluation, in the order evaluations were made."""
        vals = np.array([float(r.get(key, math.nan)) if r.ok else math.nan
                         for r in sorted(self.records, key=lambda r: r.query)], float)
        return np.fmax.accumulate(np.where(np.isfinite(vals), vals, -np.inf)) if len(vals) else vals


def _slug(arch_str: str) -> str:
    return hashlib.sha1(arch_str.encode()).hexdigest()[:16]


def _evaluate_job(evaluator: Evaluator, space, arch_str: str, seed: int, parent_state_path,
                  save_path, **fidelity) -> dict:
    """Runs in the executor (maybe another process). Only the failures the evaluator declares
    become failed records; anything else propagates and stops the search. ``fidelity``: the
    partial-training arguments of a scheduled job (``fidelity``, ``checkpoint``, ``resume``)."""
    from prednas.errors import CandidateError

    arch = space.parse(arch_str)
    try:
        return evaluator.evaluate(space, arch, seed=seed, parent_state_path=parent_state_path,
                                  save_path=save_path, **fidelity)
    except (CandidateError, *evaluator.failures) as exc:
        log.warning("candidate %s failed: %s", arch_str, exc)
        status = getattr(exc, "status", "oom" if isinstance(exc, MemoryError) else "failed")
        return {"status": status, "reason": f"{type(exc).__name__}: {exc}"[:500],
                "objective": math.nan, "seconds": 0.0,
                **({"fidelity": 0} if fidelity else {})}


class Search:
    """Predictor-guided architecture search (and its baselines, through the same loop).

    Each round takes the best candidates so far, asks the ``mutator`` for many new distinct
    architectures, lets the ``filter`` score them cheaply in stages and keep ``per_round`` of them,
    evaluates those fully with the ``evaluator`` through the ``executor`` (records are appended to
    ``evaluations.jsonl`` as they complete), then the next round's predictor is refitted on every
    result so far. Every round's randomness is derived from ``(seed, round)`` and every round's plan
    is saved in ``state.json`` before evaluation, so a resumed run ends exactly where an
    uninterrupted one would (up to wall-time budgets and nondeterministic training on GPU).

    Strategies see the run only through a read-only :class:`~prednas.search.SearchContext`. Every
    parameter is checked, and every strategy must be storable, before the run directory is created.

    Args:
        space: a :class:`spaces.Space` or its name.
        task: a task (or name) for real training; exclusive with ``oracle``.
        oracle: a tabular benchmark (or name, e.g. ``"nb201"``): each evaluation is one query.
        metric: the oracle's metric to maximise (default: the benchmark's ``default_metric``).
        mutator, filter, evaluator, executor, ensembler: strategies (defaults: mutations of the
            best, the staged predictor filter, training or lookup, in-process, replica ensemble in
            training mode / none in oracle mode). Use :func:`random_search` /
            :func:`regularized_evolution` / :func:`model_search` for the baselines.
        budget: number of full evaluations (queries in oracle mode; default 50). A training or
            simulated search given neither ``budget`` nor ``max_seconds`` searches for
            :data:`~prednas.search.defaults.SEARCH_MINUTES` minutes (5); a ``budget`` makes it
            reproducible from its seed.
        max_seconds: optional wall-time (simulated: simulated-time) budget for the search phase.
        per_round: full evaluations per round.
        seed: seed of everything random in the run.
        run_dir: directory of the run (a new temporary directory when None).
        baseline: an architecture (or ``True`` for ``space.default_arch()``) trained in the same run
            with the same recipe, for the report.
        max_params: parameter cap; candidates above it are not proposed (training mode).
        param_cap: the parameter cap as a share of the baseline's parameters (training or
            simulation, with ``baseline``; exclusive with ``max_params``), e.g. the command
            line's 0.6. Without a mutator or filter, a search that trains uses prednas's
            measured defaults (:mod:`prednas.search.defaults`), as ``prednas search`` does.
        task_options: options of the task when given by name.
        device: device for training, proxies and warm-up.
        progress: show a progress bar with the best objective so far.
        objectives: a multi-objective search: the metric to maximise first (a benchmark metric,
            or ``"val_acc"`` when training), then costs to minimise (``"params"``, ``"flops"``,
            ``"latency_ms"`` at batch 1 and ``"latency_batch_ms"`` at the evaluator's
            ``latency_batch``, both measured on the search's device when training, or a
            benchmark's cost column). The run keeps the Pareto front (``pareto.jsonl``,
            rewritten each round) and its hypervolume after every round.
        constraints: ``{cost: upper bound}``, e.g. ``{"latency_ms": 2.0}``: candidates above a
            bound do not count toward the front or the best.
        hv_reference: the reference point of the hypervolume, one value per objective in its own
            direction (default: 0 for the metric; for each cost the benchmark's worst value, or
            twice the worst of the first round when training).
        notes: JSON-able facts about the run kept in ``state.json`` (``Search.read_notes(run_dir)``
            reads them back), e.g. how a space was generated, so that a command line can
            regenerate it on resume. They do not define the search: a resumed search keeps the
            run's notes and neither needs nor compares them.
        scheduler: partial trainings (:class:`~prednas.search.schedulers.ASHAScheduler`):
            candidates train to the scheduler's first rung and only the promising continue,
            from their checkpoint, to the next; the loop is then asynchronous (a worker never
            waits for a rung to fill) and ``budget`` counts full trainings' worth of steps
            (:mod:`prednas.search.fidelity`). ``None``: every candidate trains fully.
        race: the share of the budget (evaluations and time) kept to race the leaders when
            trainings are noisy: they are trained again on new seeds until the best one's
            noise-aware estimate is separated (:mod:`prednas.search.racing`); the winner is
            always named by that estimate, not by its best single training. 0: no race.
            ``None`` (default): :data:`~prednas.search.defaults.RACE` for a search that trains
            or simulates with prednas's default mutator and filter and no scheduler, else 0.
        simulate: replay real training from ``oracle``'s recorded runs (a benchmark with seeds
            and learning curves, e.g. ``"blocks1d-mnist1d-v2"``): each evaluation draws one
            recorded seed and charges its seconds to a simulated clock, on which ``max_seconds``
            is measured (:mod:`prednas.search.simulate`; pass
            ``evaluator=SimulatedEvaluator(workers=2, ...)`` for more simulated workers). The
            baseline is evaluated as in training mode; candidates are evaluated in this process.
    """

    _parameter_constraints = {
        "budget": [None, Interval(int, 1, None)],
        "max_seconds": [None, Interval(float, 0, None, "neither")],
        "per_round": [None, Interval(int, 1, None)],
        "seed": [Interval(int, 0, None)],
        "max_params": [None, Interval(int, 1, None)],
        "metric": [None, str],
        "device": [DEVICE],  # a typo is an error now, not when the first candidate trains
        "progress": ["boolean"],
        "objectives": [None, SequenceOf(str, min_len=1)],
        "constraints": [None, "dict"],
        "hv_reference": [None, SequenceOf(Interval(float, None, None))],
        "simulate": ["boolean"],
        "race": [None, Interval(float, 0, 1, "left")],
        "param_cap": [None, Interval(float, 0, 10, "right")],
    }

    def __init__(self, space, *, task=None, oracle=None, metric: str | None = None,
                 mutator: Mutator | None = None, filter: Filter | None = None,  # noqa: A002
                 evaluator: Evaluator | None = None, budget: int | None = None,
                 max_seconds: float | None = None, per_round: int | None = None,
                 ensembler: Ensembler | None | bool = None, executor: Executor | None = None,
                 seed: int = 0, run_dir=None, baseline=None, max_params: int | None = None,
                 task_options: dict | None = None, device: str = "auto", progress: bool = False,
                 objectives=None, constraints: dict | None = None, hv_reference=None,
                 notes: dict | None = None, simulate: bool = False, scheduler=None,
                 race: float | None = None, param_cap: float | None = None):
        import spaces
        from prednas import tasks as _tasks
        from prednas.search.evaluators import OracleEvaluator, TrainingEvaluator
        from prednas.search.executors import InProcessExecutor
        from prednas.search.filters import PredictorFilter
        from prednas.search.mutators import MutationMutator
        from prednas.search.schedulers import Scheduler

        validate_params("Search", self._parameter_constraints, {
            "budget": budget, "max_seconds": max_seconds, "per_round": per_round, "seed": seed,
            "max_params": max_params, "metric": metric, "device": device, "progress": progress,
            "objectives": objectives, "constraints": constraints, "hv_reference": hv_reference,
            "simulate": simulate, "race": race, "param_cap": param_cap})
        for fam, obj, base in (("mutator", mutator, Mutator), ("filter", filter, Filter),
                               ("evaluator", evaluator, Evaluator),
                               ("executor", executor, Executor),
                               ("scheduler", scheduler, Scheduler)):
            if obj is not None and not isinstance(obj, base):
                raise InvalidParameterError(
                    f"The {fam!r} parameter of Search must be a {base.__name__} (see "
                    f"prednas.search.list_{fam}s()). Got {obj!r} instead.")
        self.space = spaces.get(space) if isinstance(space, str) else space
        if task is None and oracle is None and evaluator is None:
            raise InvalidParameterError("Search needs exactly one of task= (train candidates) or "
                                        "oracle= (benchmark lookups)")
        if task is not None and oracle is not None:
            raise InvalidParameterError("Search takes task= or oracle=, not both")
        if isinstance(task, _tasks.Task):
            if task_options:
                raise InvalidParameterError("task_options go with a task name, not a Task object")
            self.task = task
            self.task_options = task.options  # None: made by hand, not rebuilt by name
        else:
            from prednas.search.defaults import task_options as _search_options

            self.task_options = (_search_options(task, task_options) if isinstance(task, str)
                                 else dict(task_options or {}))
            self.task = _tasks.get(task, **self.task_options) if task is not None else None
        if self.task is not None:
            self.space.check_input_shape(self.task.input_shape, task=self.task.name)
            self.task.check_splits("Search")  # an empty split: the objective is undefined
        if oracle is not None and isinstance(oracle, str):
            from prednas import benchmarks

            oracle = benchmarks.load(oracle)
        self.oracle = oracle
        if oracle is not None:
            _check_same_space(oracle, self.space)
            if objectives and metric and objectives[0] != metric:
                raise InvalidParameterError(
                    f"Search got metric={metric!r} and objectives starting with "
                    f"{objectives[0]!r}; the first objective is the metric")
            if simulate or getattr(evaluator, "simulated", False):
                from prednas.search.simulate import check_simulable

                check_simulable(oracle)  # before its metrics: say what a simulation lacks
                metric = metric or "val_acc"  # a simulated training's objective
            metric = (objectives[0] if objectives else None) or metric or oracle.default_metric
            if metric != "val_acc" or not (simulate or getattr(evaluator, "simulated", False)):
                oracle._check_metric(metric)  # an unknown metric is an error now, not mid-run
        self.metric = metric
        self.objectives, self.constraints = _check_objectives(
            objectives, constraints, oracle, metric)
        if hv_reference is not None and len(hv_reference) != len(self.objectives):
            raise InvalidParameterError(
                f"The 'hv_reference' parameter of Search must have one value per objective "
                f"({len(self.objectives)}). Got {list(hv_reference)} instead.")
        self.hv_reference = None if hv_reference is None else [float(v) for v in hv_reference]
        self.seed = int(seed)
        self.device = device
        self.progress = progress
        from prednas.search import defaults

        trains = self.task is not None or simulate or getattr(evaluator, "simulated", False)
        if trains and budget is None:  # a search for SEARCH_MINUTES unless told otherwise
            budget, default_seconds = defaults.training_limits(
                None, None if max_seconds is None else max_seconds / 60.0,
                most=None if oracle is None else len(oracle))
            max_seconds = default_seconds if max_seconds is None else max_seconds
        elif budget is None:
            budget = 50
        if oracle is not None and budget > len(oracle):
            raise InvalidParameterError(
                f"The 'budget' parameter of Search must be at most the {len(oracle)} "
                f"architectures of benchmark {oracle.name!r}. Got {budget} instead.")
        self.budget = int(budget)
        self.max_seconds = max_seconds
        if per_round is None:  # training: one candidate per worker, at least two a round
            workers = getattr(evaluator, "workers", None) or getattr(executor, "workers", None)
            per_round = max(2, int(workers or 1)) if trains else 5
        self.per_round = int(per_round)
        self.baseline = (self.space.default_arch() if baseline is True
                         else (self.space.coerce(baseline) if baseline not in (None, False) else None))
        if param_cap is not None:
            max_params = self._cap(param_cap, max_params, trains)
        self.max_params = max_params
        if race is None:  # prednas's measured race when it trains with its defaults
            race = (defaults.RACE if trains and mutator is None and filter is None
                    and scheduler is None else 0.0)
        if mutator is None:
            mutator = (defaults.default_mutator(self.space, self.baseline, max_params, self.task)
                       if trains else MutationMutator())
        if filter is None:
            filter = (defaults.default_filter(self.space, simulated=self.task is None)  # noqa: A001
                      if trains else PredictorFilter())
        self.mutator, self.filter = mutator, filter
        if simulate or getattr(evaluator, "simulated", False):
            evaluator = _simulated_evaluator(oracle, evaluator, executor, max_params)
        elif evaluator is None:
            evaluator = (OracleEvaluator() if oracle is not None
                         else TrainingEvaluator(max_params=max_params, device=device))
        self.evaluator = evaluator
        self.simulated = bool(getattr(evaluator, "simulated", False))
        self.scheduler = scheduler
        from prednas.search.estimates import NoiseAwareEstimate

        self.race = float(race)
        self.estimator = NoiseAwareEstimate()
        if scheduler is not None:
            from prednas.search.fidelity import check_scheduler

            check_scheduler(scheduler, evaluator, oracle)
        self.executor = executor if executor is not None else InProcessExecutor()
        if ensembler is None and not evaluator.is_oracle:
            from prednas.search.ensemblers import ReplicaEnsembler

            ensembler = ReplicaEnsembler()
        self.ensembler = ensembler or None
        self.run_dir = Path(run_dir) if run_dir is not None else None
        if notes is not None:
            if not isinstance(notes, dict):
                raise InvalidParameterError(
                    f"The 'notes' parameter of Search must be a dict or None. Got "
                    f"{type(notes).__name__} instead.")
            try:
                notes = json.loads(json.dumps(notes, allow_nan=False))
            except (TypeError, ValueError) as exc:
                raise InvalidParameterError(
                    f"The 'notes' parameter of Search must hold JSON values only ({exc})") from None
        self.notes = notes
        self._config = self.config()  # refuses a strategy that could not be stored (resumed)
        self._resume_state: dict | None = None
        self._rundir: RunDir | None = None
        self._records: list[Record] = []
        self._param_cache: dict[str, int] = {}
        self._clock = None  # the simulated clock (simulation mode)
        self._t_start: float | None = None  # when this process's run began (perf_counter)

    # -- config / resume ------------------------------------------------------------------------
    def strategies(self) -> dict[str, Any]:
        out = {"mutator": self.mutator, "filter": self.filter, "evaluator": self.evaluator,
               "executor": self.executor, "ensembler": self.ensembler}
        if self.scheduler is not None:  # stored only when used: older runs stay the same
            out["scheduler"] = self.scheduler
        return out

    def config(self) -> dict[str, Any]:
        """Everything that defines the run, as stored in ``state.json``."""
        return {
            "space": self.space.name,
            "space_config": self.space.config(),
            "mode": ("simulate" if self.simulated else
                     "oracle" if self.evaluator.is_oracle else "train"),
            "bench": getattr(self.oracle, "name", None),
            "metric": self.metric,
            "task": getattr(self.task, "name", None),
            "task_options": (None if self.task_options is None
                             else encode_param(self.task_options)),
            "budget": self.budget,
            "max_seconds": self.max_seconds,
            "per_round": self.per_round,
            "baseline": None if self.baseline is None else str(self.baseline),
            "max_params": self.max_params,
            "device": self.device,
            "objectives": list(self.objectives),
            "constraints": dict(self.constraints),
            "hv_reference": self.hv_reference,
            "race": self.race,
            "strategies": {k: (None if v is None else v.describe())
                           for k, v in self.strategies().items()},
        }

    @staticmethod
    def read_notes(run_dir) -> dict | None:
        """The ``notes`` a search was started with (``None`` if none), read without locking the
        run; a directory that is not a search run raises :class:`RunDirectoryError`."""
        _, state, _ = RunDir.open(run_dir, lock=False)
        notes = state.get("notes")
        return notes if isinstance(notes, dict) else None

    @classmethod
    def resume(cls, run_dir, **overrides) -> Search:
        """Rebuild the search saved in ``run_dir``.

        Every strategy is rebuilt from the run directory. ``overrides`` may change only
        :data:`RESUMABLE_OVERRIDES` (budget, wall time, executor, progress bar, device); any other
        keyword must equal what the run recorded, or :class:`RunDirectoryError` says what differs.
        Raises :class:`RunDirectoryError` for a corrupted or foreign directory (changing nothing).
        """
        _, state, _ = RunDir.open(run_dir, lock=False)
        cfg = state["config"]
        from prednas.search.registries import rebuild_strategy

        try:
            import spaces

            space = spaces.restore(cfg["space"], cfg.get("space_config"), overrides.get("space"),
                                   error=RunDirectoryError, where=f"Search.resume({run_dir})",
                                   how="Search.resume(run_dir, space=...)")
            kw: dict[str, Any] = dict(
                budget=cfg["budget"], max_seconds=cfg.get("max_seconds"),
                per_round=cfg["per_round"], seed=state["seed"], baseline=cfg.get("baseline"),
                max_params=cfg.get("max_params"), device=cfg.get("device", "auto"),
                objectives=cfg.get("objectives"), constraints=cfg.get("constraints") or None,
                hv_reference=cfg.get("hv_reference"), race=float(cfg.get("race") or 0.0))
            if cfg["mode"] in ("oracle", "simulate"):
                kw.update(oracle=cfg["bench"], metric=cfg.get("metric"))
            elif cfg.get("task_options") is None and "task" not in overrides:
                raise RunDirectoryError(
                    f"{run_dir}: the run's task {cfg['task']!r} was an in-memory Task object, "
                    "which cannot be rebuilt by name; pass it again: "
                    "Search.resume(run_dir, task=...)")
            else:
                kw.update(task=cfg["task"], task_options=decode_param(cfg.get("task_options")))
            stored = cfg.get("strategies") or {}
            for family in _FAMILIES:
                if family not in overrides:
                    kw[family] = rebuild_strategy(family, stored.get(family))
        except (KeyError, TypeError, ValueError) as exc:
            raise RunDirectoryError(f"{run_dir}: state.json is corrupted ({exc!r})") from None
        if kw.get("ensembler") is None and "ensembler" not in overrides:
            kw["ensembler"] = False
        for key, value in overrides.items():
            if key in RESUMABLE_OVERRIDES or key in ("run_dir", "space", "notes"):
                continue
            recorded = (stored.get(key) if key in _FAMILIES else
                        {"oracle": cfg.get("bench"), "task": cfg.get("task"),
                         "seed": state["seed"]}.get(key, cfg.get(key)))
            if key == "task" and cfg.get("task_options") is not None and not isinstance(value, str):
                given_opts = getattr(value, "options", None)
                if given_opts is not None and encode_param(given_opts) != cfg["task_options"]:
                    raise RunDirectoryError(
                        f"Search.resume: the task's options {given_opts!r} differ from the "
                        f"run's recorded {cfg['task_options']!r}")
            given = _describe_override(key, value)
            if given != recorded:
                raise RunDirectoryError(
                    f"Search.resume: {key} differs from the run's ({_difference(given, recorded)}"
                    f"); a resumed search must be the same search (it may change only "
                    f"{', '.join(RESUMABLE_OVERRIDES)})")
        kw.update({k: v for k, v in overrides.items() if k not in ("run_dir", "space")})
        if "task" in overrides:
            kw.pop("task_options", None)
        kw["run_dir"] = run_dir
        try:
            search = cls(space, **kw)
        except InvalidParameterError as exc:
            raise RunDirectoryError(f"{run_dir}: state.json holds a setting that is not valid "
                                    f"({exc})") from None
        search._resume_state = state
        notes = state.get("notes")
        search.notes = notes if isinstance(notes, dict) else None
        return search

    # -- helpers --------------------------------------------------------------------------------
    def _cap(self, param_cap: float, max_params: int | None, trains: bool) -> int:
        """``max_params`` from ``param_cap``: that share of the baseline's parameters."""
        from prednas.search.defaults import param_count

        if max_params is not None or not trains or self.baseline is None:
            raise InvalidParameterError(
                "Search's param_cap is a share of the baseline's parameters: it needs "
                "baseline= and training (task=) or simulate=True, and no max_params")
        if self.task is not None:
            model = self.space.build(self.baseline, self.task.num_classes, self.task.input_shape)
            base = sum(p.numel() for p in model.parameters())
        else:
            base = param_count(self.space, self.baseline)
        return int(param_cap * base)

    def _count_params(self, arch) -> int:
        key = str(arch)
        if key not in self._param_cache:
            if self.task is None:  # simulation: the table's own count, else the model's
                from prednas.search.evaluators import model_cost

                self._param_cache[key] = int(
                    self.oracle.query(arch, "params") if "params" in self.oracle.metrics
                    else model_cost(self.space, arch, "params"))
            else:
                model = self.space.build(arch, self.task.num_classes, self.task.input_shape)
                self._param_cache[key] = sum(p.numel() for p in model.parameters())
        return self._param_cache[key]

    def _param_counter(self):
        if self.max_params is None or (self.task is None and not self.simulated):
            return None
        return self._count_params

    def context(self) -> SearchContext:
        """The read-only view of this run handed to strategies."""
        return SearchContext(
            space=self.space, task=self.task, oracle=self.oracle, metric=self.metric,
            seed=self.seed, device=self.device, run_dir=self.run_dir, max_params=self.max_params,
            records=lambda: tuple(self._records), evaluate=self._evaluate_extras,
            count_params=self._param_counter() or (
                self._count_params if self.task is not None else None),
            objectives=self.objectives, constraints=self.constraints)

    def _new_state(self) -> dict[str, Any]:
        return {"kind": STATE_KIND, "format": FORMAT_VERSION, "seed": self.seed,
                "config": self._config, "round": 0, "plan": None, "elapsed": 0.0,
                "overhead": [], "phase": "search", "ensemble": None, "done": False,
                "notes": self.notes}

    def _record(self, rd: RunDir, base: dict, result: dict) -> Record:
        rec = dict(base)
        rec.update({k: v for k, v in result.items() if k not in ("arch", "canonical", "kind")})
        rec["query"] = sum(1 for r in self._records if r.kind == base["kind"])
        if self._clock is None and self._t_start is not None:
            rec["elapsed"] = round(self._elapsed(self._t_start), 3)  # when, in the search
        record = Record.from_json(rec)
        rd.append(record.to_json())
        self._records.append(record)
        mirror_study(self, rd, self._records)  # the run's Optuna study (study.log) follows
        return record

    def _base_record(self, arch_str: str, kind: str, rnd: int, slot: int, **extra) -> dict:
        arch = self.space.parse(arch_str)
        return {"arch": arch_str, "canonical": str(self.space.canonical(arch)), "kind": kind,
                "space": self.space.name, "round": rnd, "slot": slot, "seed": self.seed, **extra}

    def _weights_path(self, rd: RunDir, arch_str: str) -> str | None:
        if self.evaluator.is_oracle:
            return None
        rd.weights_dir.mkdir(exist_ok=True)
        return str(rd.weights_dir / f"{_slug(arch_str)}.pt")

    def _evaluate_extras(self, specs: Sequence[Mapping[str, Any]]) -> list[Record]:
        """Evaluate architectures outside the search proper (baseline, replicas) through the
        run's executor, in parallel; each is recorded in ``evaluations.jsonl`` with its ``kind``
        as it finishes, and one already recorded is returned, not redone."""
        rd = self._rundir
        out: list[Record | None] = [None] * len(specs)
        used: dict[str, set[int]] = {}
        jobs = []
        for i, spec in enumerate(specs):
            arch_str, kind, seed = str(spec["arch"]), str(spec["kind"]), int(spec["seed"])
            slot = int(spec["slot"])
            out[i] = next((r for r in self._records if r.kind == kind and r.slot == slot
                           and r.arch == arch_str and r.seed == seed), None)
            if out[i] is not None:
                continue
            taken = used.setdefault(kind, {r.slot for r in self._records if r.kind == kind})
            slot = max([slot] + [s + 1 for s in taken if s >= slot])  # a changed winner: new
            taken.add(slot)                                             # slots, nothing redone
            save = self._weights_path(rd, f"{kind}-{slot}-{arch_str}")
            jobs.append(((i, arch_str, kind, slot, seed, save),
                         (self.evaluator, self.space, arch_str, seed, None, save), {}))
        if self._clock is not None:
            self._clock.start_batch()
        for (i, arch_str, kind, slot, seed, save), result in self.executor.map_unordered(
                _evaluate_job, jobs):
            base = self._base_record(arch_str, kind, -1, slot, weights=save)
            base["seed"] = seed
            self._place(result)
            out[i] = self._record(rd, base, result)
        if self._clock is not None:
            self._clock.end_batch()
        return [r for r in out if r is not None]

    # -- the loop -------------------------------------------------------------------------------
    def run(self) -> SearchResult:
        """Run (or continue) the search to its budget, then ensemble and write the report.

        Every strategy is set up (and so every file it reads is checked) before a new run
        directory is created; the directory is locked for the run's life. An evaluation error
        that the evaluator does not declare as a candidate failure stops the run with its
        traceback; the directory then resumes with ``Search.resume``.
        """
        if self._resume_state is not None:
            rd, state, raw = RunDir.open(self.run_dir)  # locked, re-validated
            try:
                self._records = [Record.from_json(r) for r in raw]
            except (TypeError, ValueError) as exc:
                rd.release()
                raise RunDirectoryError(f"{self.run_dir}: a record is corrupted ({exc})") from None
        else:
            rd, state = None, None
        try:
            if state is not None:
                self._apply_overrides(state)
            finished = bool(state and state.get("done"))
            if not finished:
                ctx = self.context()
                for strat in (self.mutator, self.filter, self.evaluator, self.executor,
                              self.ensembler, self.scheduler):
                    if strat is not None:
                        strat.setup(ctx)
            if rd is None:  # a new run: everything checked, now the directory
                if self.run_dir is None:
                    self.run_dir = Path(tempfile.mkdtemp(prefix="prednas-search-"))
                    log.info("run directory: %s", self.run_dir)
                state = self._new_state()
                rd = RunDir.create(self.run_dir, state)
                self._records = []
            self._rundir = rd
            return self._run(rd, state, finished)
        finally:
            if rd is not None:
                rd.release()
            self.executor.shutdown()

    def _apply_overrides(self, state: dict) -> None:
        """A resumed run takes its new budget or time cap; a finished run given a larger budget
        continues (and its ensemble is rebuilt for the new winner)."""
        cfg = state["config"]
        changed = {k: getattr(self, k) for k in ("budget", "max_seconds", "device")
                   if cfg.get(k) != getattr(self, k)}
        if not changed:
            return
        log.info("resumed with %s (was %s)", changed, {k: cfg.get(k) for k in changed})
        cfg.update(changed)
        n = self._spent()
        if state.get("done") and self.budget > n:
            state.update(done=False, phase="search", ensemble=None)

    def _elapsed(self, t_start: float) -> float:
        """Seconds of the search so far: simulated in simulation mode, else wall time."""
        if self._clock is not None:
            return self._clock.now
        return time.perf_counter() - t_start

    def _charge_decision(self, measured: float) -> None:
        """Simulation: the strategy's own time (measured, or the modelled cost) moves the clock."""
        if self._clock is not None:
            cost = self.evaluator.decision_seconds
            self._clock.charge(measured if cost == "measured" else float(cost))

    def _place(self, result: dict) -> None:
        """Simulation: schedule one evaluation on the simulated workers and stamp its times."""
        if self._clock is not None:
            result["sim_start"], result["sim_end"] = self._clock.place(
                float(result.get("seconds") or 0.0))

    def _run(self, rd: RunDir, state: dict, finished: bool) -> SearchResult:
        t_start = time.perf_counter() - float(state.get("elapsed", 0.0))
        self._t_start = t_start
        if self.simulated:
            from prednas.search.simulate import SimClock

            ends = [float(r.get("sim_end")) for r in self._records
                    if r.kind != "candidate" and r.get("sim_end") is not None]
            self._clock = SimClock(self.evaluator.workers,
                                   max([float(state.get("sim_clock", 0.0)), *ends]))
        bar = self._progress_bar() if self.progress and not finished else None
        try:
            if not finished:
                if self.baseline is not None and (self.simulated or not self.evaluator.is_oracle):
                    if bar is not None:
                        (bar.set_description_str if self.max_seconds is not None
                         else bar.set_postfix_str)("training the baseline")
                    self._evaluate_extras([{"arch": str(self.baseline), "kind": "baseline",
                                            "slot": 0, "seed": self.seed}])
                if self.scheduler is not None:
                    from prednas.search.fidelity import FidelityLoop

                    FidelityLoop(self, rd, state, t_start, lambda: self._after_record(
                        rd, state, bar, t_start)).run()
                else:
                    self._loop(rd, state, t_start, bar)
        finally:
            if bar is not None:
                bar.close()
        from prednas.search import racing

        if not finished:
            racing.race(self, rd, state, t_start)
        best, estimate = racing.winner(self)
        baseline = next((r for r in self._records if r.kind == "baseline"), None)
        if best is not None and not finished:
            from prednas.utils import atomic_write_json

            state["winner"] = best.arch
            rd.write_state(state)
            atomic_write_json(rd.path / "best.json",
                              {**best.to_json(), "estimate": estimate,
                               "baseline": None if baseline is None else baseline.to_json()})
        if (self.ensembler is not None and best is not None and not finished
                and state.get("ensemble") is None):
            state["phase"] = "ensemble"
            rd.write_state(state)
            state["ensemble"] = self.ensembler.build(self.context(), best)
            rd.write_state(state)
        if not finished:
            state["done"] = True
            state["phase"] = "done"
            rd.write_state(state)
        cands = [r for r in self._records if r.kind == "candidate"]
        result = SearchResult(best, cands, rd.path, baseline, state.get("ensemble"),
                              state.get("overhead", []), estimate)
        from prednas.search.report import write_report

        try:
            write_report(self, result)
        except OSError as exc:  # the report must not lose a finished search
            log.warning("could not write report.md: %s", exc)
        mirror_study(self, rd, self._records, state)
        return result

    def _progress_bar(self):
        from tqdm.auto import tqdm

        if self.max_seconds is not None:  # whichever limit is nearer: evaluations or wall time
            return tqdm(total=100, desc="search",
                        bar_format="search {percentage:3.0f}%|{bar}| {desc}")
        return tqdm(total=self.budget, desc="search", unit="eval")

    def _search_budget(self) -> int:
        """The evaluations of the search proper: the budget less the race's share."""
        from prednas.search.racing import is_noisy

        share = self.race if is_noisy(self) else 0.0
        return max(1, math.ceil(self.budget * (1 - share)))

    def _search_seconds(self) -> float:
        """The time of the search proper: ``max_seconds`` less the race's share."""
        from prednas.search.racing import is_noisy

        return float(self.max_seconds) * (1 - (self.race if is_noisy(self) else 0.0))

    def _spent(self) -> float:
        """The budget used: full evaluations (under a scheduler, full trainings' worth of
        steps, partial ones included)."""
        if self.scheduler is not None:
            from prednas.search.fidelity import trained_steps

            return trained_steps(self._records) / self.scheduler.rungs_[-1]
        return sum(1 for r in self._records if r.kind == "candidate")

    def _update_bar(self, bar, t_start: float) -> None:
        if bar is None:
            return
        ok = [r.objective for r in self._records if r.kind == "candidate" and r.ok]
        best = f"best {max(ok):.2f}" if ok else "no result yet"
        done = self._spent()
        what = "full trainings" if self.scheduler is not None else "evaluations"
        if self.max_seconds is not None:
            elapsed = self._elapsed(t_start)
            bar.n = round(100 * min(1.0, max(done / self.budget, elapsed / self.max_seconds)))
            shown = f"{done:.1f}" if self.scheduler is not None else f"{done}"
            bar.set_description_str(f"{shown}/{self.budget} {what}, {_mmss(elapsed)} "
                                    f"of the {_mmss(self.max_seconds)} time cap, {best}")
        else:
            bar.n = round(done, 1) if self.scheduler is not None else done
            bar.set_postfix_str(best)
        bar.refresh()

    def _after_record(self, rd: RunDir, state: dict, bar, t_start: float) -> None:
        """Under a scheduler, after each record: the bar, the front, the study's views."""
        self._update_bar(bar, t_start)
        last = self._records[-1]
        if len(self.objectives) > 1 and last.kind == "candidate":
            self._update_front(rd, state, last.round)
            rd.write_state(state)
        mirror_study(self, rd, self._records, state)

    def _loop(self, rd, state, t_start, bar) -> None:
        def n_done():
            return sum(1 for r in self._records if r.kind == "candidate")

        def update_bar():
            self._update_bar(bar, t_start)

        update_bar()
        while True:
            rnd = int(state["round"])
            plan = state.get("plan")
            if plan is None or plan.get("round") != rnd:
                if n_done() >= self._search_budget():
                    break
                if self.max_seconds is not None and self._elapsed(t_start) > self._search_seconds():
                    log.info("%s budget reached after %d evaluations",
                             "simulated time" if self.simulated else "wall-time", n_done())
                    break
                t0 = time.perf_counter()
                plan = self._plan(rnd)
                plan["overhead"] = time.perf_counter() - t0
                if self._clock is not None:
                    self._charge_decision(plan["overhead"])
                    plan["sim_start"] = state["sim_clock"] = self._clock.now
                state["plan"] = plan
                state["elapsed"] = time.perf_counter() - t_start
                rd.write_state(state)
                if not plan["candidates"]:
                    log.warning("no new candidates could be proposed; stopping")
                    break
            done_recs = sorted((r for r in self._records if r.kind == "candidate" and r.round == rnd),
                               key=lambda r: r.slot)
            done = {r.slot for r in done_recs}
            if self._clock is not None:  # a resumed round replays the placements it had made
                self._clock.now = float(plan.get("sim_start", self._clock.now))
                self._clock.start_batch([float(r.get("sim_end", self._clock.now))
                                         for r in done_recs])
            jobs = []
            for slot, c in enumerate(plan["candidates"]):
                if slot in done:
                    continue
                parent_path = None
                if c.get("parent") and self.evaluator.uses_parent_weights:
                    p = rd.weights_dir / f"{_slug(c['parent'])}.pt"
                    parent_path = str(p) if p.exists() else None
                save = self._weights_path(rd, c["arch"])
                jobs.append(((slot, c), (self.evaluator, self.space, c["arch"], self.seed,
                                         parent_path, save), {}))
            t_eval = time.perf_counter()
            for (slot, c), result in self.executor.map_unordered(_evaluate_job, jobs):
                base = self._base_record(c["arch"], "candidate", rnd, slot,
                                         parent=c.get("parent"), predicted=c.get("predicted"),
                                         predicted_std=c.get("predicted_std"),
                                         **seconds_of(c))
                if result.get("status") == "ok" and not self.evaluator.is_oracle:
                    base["weights"] = self._weights_path(rd, c["arch"])
                self._place(result)
                self._record(rd, base, result)
                update_bar()
            eval_wall = time.perf_counter() - t_eval
            if self._clock is not None:
                self._clock.end_batch()
                state["sim_clock"] = self._clock.now
            state["overhead"].append({"round": rnd, "pool": plan.get("pool", 0),
                                      "seconds": plan.get("overhead", 0.0),
                                      "eval_seconds": eval_wall})
            state["round"] = rnd + 1
            state["plan"] = None
            state["elapsed"] = time.perf_counter() - t_start
            if len(self.objectives) > 1:
                self._update_front(rd, state, rnd)
            rd.write_state(state)
            mirror_study(self, rd, self._records, state)  # the study's note and figures, when due

    def _update_front(self, rd: RunDir, state: dict, rnd: int) -> None:
        """Rewrite ``pareto.jsonl`` (one object per front member) and log the hypervolume."""
        from prednas.search.pareto import feasible, hypervolume, objective_matrix, pareto_front
        from prednas.utils import atomic_write_text

        costs = self.objectives[1:]
        ok = feasible([r for r in self._records if r.kind == "candidate"], self.constraints)
        F = objective_matrix(ok, costs)
        if state.get("hv_reference") is None and len(F):
            state["hv_reference"] = self.hv_reference or self._default_reference(F)
        front = [ok[i] for i in pareto_front(F)] if len(F) else []
        front.sort(key=lambda r: [r.get(c) for c in costs])
        lines = [json.dumps({"arch": r.arch, self.objectives[0]: r.objective,
                             **{c: r.get(c) for c in costs}, "query": r.query}, sort_keys=True)
                 for r in front]
        atomic_write_text(rd.path / "pareto.jsonl", "".join(x + "\n" for x in lines))
        ref = state.get("hv_reference")
        hv = hypervolume(F, [-ref[0], *ref[1:]]) if ref is not None else 0.0
        n = sum(1 for r in self._records if r.kind == "candidate")
        state.setdefault("hypervolume", []).append(
            {"round": rnd, "evaluations": n, "front": len(front), "hypervolume": hv})
        log.info("round %d: %d on the front, hypervolume %.4g", rnd, len(front), hv)

    def _default_reference(self, F: np.ndarray) -> list[float]:
        """0 for the metric; per cost the benchmark's worst value, else twice the worst seen."""
        ref = [0.0]
        for j, c in enumerate(self.objectives[1:], start=1):
            if self.oracle is not None and c in self.oracle.metrics:
                ref.append(float(np.nanmax(self.oracle.values(c))))
            else:
                ref.append(float(2 * np.nanmax(F[:, j])) if np.isfinite(F[:, j]).any() else 1.0)
        return ref

    def _plan(self, rnd: int, fidelity: bool = False, running: Sequence[str] = ()) -> dict:
        """The round's candidates. Under a scheduler (``fidelity``) the plan is made whenever
        the last one is used up, from every record so far: full trainings are the history,
        candidates only partly trained, and those still ``running``, are seen (not proposed
        again)."""
        if fidelity:
            from prednas.search.fidelity import PARTIAL

            cands = [r for r in self._records if r.kind == "candidate"]
            history = History(self.space, cands, also_seen=[
                r.canonical for r in self._records if r.kind == PARTIAL] + [
                str(self.space.canonical(self.space.coerce(a))) for a in running])
            k = self.per_round
        else:
            cands = [r for r in self._records if r.kind == "candidate" and r.round < rnd]
            history = History(self.space, cands)
            k = min(self.per_round, self._search_budget() - len(cands))
        rng = np.random.default_rng([self.seed, rnd])
        counter = self._param_counter()
        pool = self.mutator.propose(self.space, history, rng, max_params=self.max_params,
                                    param_counter=counter)
        chosen = self.filter.select(self.space, pool, history, k, rng) if pool else []
        return {"round": rnd, "pool": len(pool), "candidates": [
            {"arch": str(c.arch), "parent": c.parent, "predicted": _f(c.predicted),
             "predicted_std": _f(c.predicted_std),
             **seconds_of(c.scores)} for c in chosen[:k]]}


def _mmss(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}:{s:02d}"


_TRAIN_COSTS = ("params", "flops", "latency_ms", "latency_batch_ms")
#: benchmark columns that are costs (minimised); params and FLOPs are computed where missing
_COST_COLUMNS = ("params", "flops", "latency_ms", "train_seconds")
_ALIASES = {"latency": "latency_ms"}


def _simulated_evaluator(oracle, evaluator, executor, max_params):
    """The evaluator of a simulated search (``Search(simulate=True)``), checked."""
    from prednas.search.executors import InProcessExecutor
    from prednas.search.simulate import SimulatedEvaluator, check_simulable

    if oracle is None:
        raise InvalidParameterError(
            "Search(simulate=True) needs oracle=, a benchmark with recorded seeds and learning "
            "curves (e.g. 'blocks1d-mnist1d-v2')")
    if executor is not None and not isinstance(executor, InProcessExecutor):
        raise InvalidParameterError(
            f"a simulated search evaluates in this process (its workers are simulated: "
            f"SimulatedEvaluator(workers=N)); got executor {type(executor).__name__}")
    if evaluator is None:
        evaluator = SimulatedEvaluator(max_params=max_params)
    elif not getattr(evaluator, "simulated", False):
        raise InvalidParameterError(
            f"Search(simulate=True) evaluates with a SimulatedEvaluator; got "
            f"{type(evaluator).__name__}")
    check_simulable(oracle, evaluator.steps)
    return evaluator


def _check_objectives(objectives, constraints, oracle, metric):
    """``(objectives, constraints)`` checked against what the mode can measure."""
    from prednas.errors import UnknownNameError

    valid = (list(dict.fromkeys(["params", "flops"] + [c for c in _COST_COLUMNS
                                                        if c in oracle.metrics]))
             if oracle is not None else list(_TRAIN_COSTS))
    if objectives is None:
        objectives = (metric if oracle is not None else "val_acc",)
    objectives = tuple(_ALIASES.get(o, o) for o in objectives)
    constraints = {_ALIASES.get(k, k): v for k, v in (constraints or {}).items()}
    if oracle is None and objectives[0] != "val_acc":
        raise InvalidParameterError(
            f"When training, the first objective is the validation accuracy 'val_acc' that the "
            f"evaluator maximises. Got {objectives[0]!r} instead.")
    for c in objectives[1:]:
        if c not in valid or c == objectives[0]:
            raise UnknownNameError("cost objective", c, [v for v in valid if v != objectives[0]])
    if len(set(objectives)) != len(objectives):
        raise InvalidParameterError(f"objectives repeat a name: {list(objectives)}")
    for k, v in constraints.items():
        if k not in valid:
            raise UnknownNameError("constrained cost", k, valid)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise InvalidParameterError(f"The bound of constraint {k!r} must be a number. Got "
                                        f"{v!r} instead.")
    return objectives, constraints


def _f(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _check_same_space(bench, space) -> None:
    """A benchmark answers only for its own (configured) space."""
    bspace = bench.space
    if bspace.name != space.name or bspace.config() != space.config():
        def named(sp) -> str:  # a configured space says what it is; others by name
            return sp.describe() if sp.config() else repr(sp.name)

        raise InvalidParameterError(
            f"Benchmark {bench.name!r} is over space {named(bspace)}, not {named(space)}")


def _difference(given: Any, recorded: Any, path: str = "") -> str:
    """The first place where two stored descriptions differ, e.g.
    ``params.predictor.params.n_estimators: 30 given, 20 recorded``."""
    if isinstance(given, dict) and isinstance(recorded, dict):
        for k in sorted(set(given) | set(recorded)):
            if given.get(k) != recorded.get(k):
                return _difference(given.get(k), recorded.get(k), f"{path}.{k}" if path else k)
    if (isinstance(given, list) and isinstance(recorded, list) and len(given) == len(recorded)):
        for i, (a, b) in enumerate(zip(given, recorded)):
            if a != b:
                return _difference(a, b, f"{path}[{i}]")
    where = f"{path}: " if path else ""
    return f"{where}{str(given)[:80]} given, {str(recorded)[:80]} recorded"


def _describe_override(key: str, value: Any) -> Any:
    """An override in the form the run directory records it."""
    if key in _FAMILIES:
        return None if value in (None, False) else value.describe()
    if key in ("oracle", "task"):
        return getattr(value, "name", value)
    if key == "baseline":
        return None if value in (None, False) else str(value)
    return encode_param(value)
