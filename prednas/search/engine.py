"""The search loop: propose, filter, evaluate the few, learn, repeat — resumable at any moment."""

from __future__ import annotations

import hashlib
import logging
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from prednas.errors import InvalidParameterError, PredNASError, RunDirectoryError
from prednas.search.base import Ensembler, Evaluator, Executor, Filter, History, Mutator
from prednas.search.rundir import FORMAT_VERSION, STATE_KIND, RunDir

__all__ = ["Search", "SearchResult"]

log = logging.getLogger(__name__)


@dataclass
class SearchResult:
    """What a search produced. ``records`` are the candidate evaluations in completion order."""

    best: dict | None
    records: list[dict]
    run_dir: Path
    baseline: dict | None = None
    ensemble: dict | None = None
    overhead: list[dict] = field(default_factory=list)

    @property
    def best_arch(self) -> str | None:
        return None if self.best is None else self.best["arch"]

    def best_so_far(self, key: str = "objective") -> np.ndarray:
        """Best ``key`` after each evaluation, in the order evaluations were made."""
        vals = np.array([r.get(key, math.nan) if r["status"] == "ok" else math.nan
                         for r in sorted(self.records, key=lambda r: r["query"])], float)
        return np.fmax.accumulate(np.where(np.isfinite(vals), vals, -np.inf)) if len(vals) else vals


def _slug(arch_str: str) -> str:
    return hashlib.sha1(arch_str.encode()).hexdigest()[:16]


def _evaluate_job(evaluator: Evaluator, space, arch_str: str, seed: int, parent_state_path,
                  save_path) -> dict:
    """Runs in the executor (maybe another process): evaluation failures become records."""
    arch = space.parse(arch_str)
    try:
        return evaluator.evaluate(space, arch, seed=seed, parent_state_path=parent_state_path,
                                  save_path=save_path)
    except PredNASError:
        raise
    except Exception as exc:  # noqa: BLE001 - one broken candidate must not end the search
        log.exception("evaluation of %s failed", arch_str)
        return {"status": "error", "reason": f"{type(exc).__name__}: {exc}"[:500],
                "objective": math.nan, "seconds": 0.0}


class Search:
    """Predictor-guided architecture search (and its baselines, through the same loop).

    Each round takes the best candidates so far, asks the ``mutator`` for many new distinct
    architectures, lets the ``filter`` score them cheaply in stages and keep ``per_round`` of them,
    evaluates those fully with the ``evaluator`` through the ``executor`` (records are appended to
    ``evaluations.jsonl`` as they complete), then the next round's predictor is refitted on every
    result so far. Every round's randomness is derived from ``(seed, round)`` and every round's plan
    is saved in ``state.json`` before evaluation, so a resumed run ends exactly where an
    uninterrupted one would (up to wall-time budgets and nondeterministic training on GPU).

    Args:
        space: a :class:`spaces.Space` or its name.
        task: a task (or name) for real training; exclusive with ``oracle``.
        oracle: a tabular benchmark (or name, e.g. ``"nb201"``): each evaluation is one query.
        metric: the oracle's metric to maximise.
        mutator, filter, evaluator, executor, ensembler: strategies (defaults: mutations of the
            best, the staged predictor filter, training or lookup, in-process, replica ensemble in
            training mode / none in oracle mode). Use :func:`random_search` / :func:`regularized_evolution`
            for the baselines.
        budget: number of full evaluations (queries in oracle mode).
        max_seconds: optional wall-time budget for the search phase (training mode).
        per_round: full evaluations per round.
        seed: seed of everything random in the run.
        run_dir: directory of the run (a new temporary directory when None).
        baseline: an architecture (or ``True`` for ``space.default_arch()``) trained in the same run
            with the same recipe, for the report.
        max_params: parameter cap; candidates above it are not proposed (training mode).
        device: device for training, proxies and warm-up.
        progress: show a progress bar with the best objective so far.
    """

    def __init__(self, space, *, task=None, oracle=None, metric: str = "cifar10_test_200ep",
                 mutator: Mutator | None = None, filter: Filter | None = None,  # noqa: A002
                 evaluator: Evaluator | None = None, budget: int | None = None,
                 max_seconds: float | None = None, per_round: int | None = None,
                 ensembler: Ensembler | None | bool = None, executor: Executor | None = None,
                 seed: int = 0, run_dir=None, baseline=None, max_params: int | None = None,
                 task_options: dict | None = None, device: str = "auto", progress: bool = False):
        import spaces

        from prednas import tasks as _tasks
        from prednas.search.evaluators import OracleEvaluator, TrainingEvaluator
        from prednas.search.executors import InProcessExecutor
        from prednas.search.filters import PredictorFilter
        from prednas.search.mutators import MutationMutator

        self.space = spaces.get(space) if isinstance(space, str) else space
        if (task is None) == (oracle is None) and evaluator is None:
            raise InvalidParameterError("Search needs exactly one of task= (train candidates) or "
                                        "oracle= (benchmark lookups)")
        if task is not None and oracle is not None:
            raise InvalidParameterError("Search takes task= or oracle=, not both")
        self.task_options = dict(task_options or {})
        self.task = _tasks.get(task, **self.task_options) if task is not None else None
        if oracle is not None and isinstance(oracle, str):
            from prednas import benchmarks

            oracle = benchmarks.load(oracle)
        self.oracle = oracle
        if oracle is not None and getattr(oracle, "space", self.space).name != self.space.name:
            raise InvalidParameterError(
                f"Benchmark {oracle.name!r} is over space {oracle.space.name!r}, not "
                f"{self.space.name!r}")
        self.metric = metric
        self.seed = int(seed)
        self.device = device
        self.progress = progress
        if budget is None:
            budget = 50 if oracle is not None else 20
        if not isinstance(budget, (int, np.integer)) or isinstance(budget, bool) or budget < 1:
            raise InvalidParameterError(
                f"The 'budget' parameter of Search must be an int in [1, inf). Got {budget!r} "
                "instead.")
        if oracle is not None and budget > len(oracle):
            raise InvalidParameterError(
                f"The 'budget' parameter of Search must be at most the {len(oracle)} "
                f"architectures of benchmark {oracle.name!r}. Got {budget} instead.")
        self.budget = int(budget)
        if max_seconds is not None and not max_seconds > 0:
            raise InvalidParameterError(
                f"The 'max_seconds' parameter of Search must be > 0. Got {max_seconds!r} instead.")
        self.max_seconds = max_seconds
        self.per_round = int(per_round) if per_round is not None else (2 if oracle is None else 5)
        if self.per_round < 1:
            raise InvalidParameterError(
                f"The 'per_round' parameter of Search must be an int in [1, inf). Got "
                f"{per_round!r} instead.")
        self.baseline = (self.space.default_arch() if baseline is True
                         else (self.space.coerce(baseline) if baseline not in (None, False) else None))
        self.max_params = max_params
        self.mutator = mutator if mutator is not None else MutationMutator()
        self.filter = filter if filter is not None else PredictorFilter()
        if evaluator is None:
            evaluator = (OracleEvaluator(oracle, metric) if oracle is not None
                         else TrainingEvaluator(self.task, max_params=max_params, device=device))
        self.evaluator = evaluator
        self.executor = executor if executor is not None else InProcessExecutor()
        if ensembler is None and not evaluator.is_oracle:
            from prednas.search.ensemblers import ReplicaEnsembler

            ensembler = ReplicaEnsembler()
        self.ensembler = ensembler or None
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self._resume_state: dict | None = None
        self._resume_records: list[dict] | None = None
        self._rundir: RunDir | None = None
        self._param_cache: dict[str, int] = {}

    # -- config / resume ------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {
            "space": self.space.name,
            "mode": "oracle" if self.evaluator.is_oracle else "train",
            "bench": getattr(self.oracle, "name", None),
            "metric": self.metric if self.oracle is not None else None,
            "task": getattr(self.task, "name", None),
            "task_options": self.task_options,
            "budget": self.budget,
            "max_seconds": self.max_seconds,
            "per_round": self.per_round,
            "baseline": None if self.baseline is None else str(self.baseline),
            "max_params": self.max_params,
            "device": self.device,
            "strategies": {k: (None if v is None else v.describe()) for k, v in (
                ("mutator", self.mutator), ("filter", self.filter), ("evaluator", self.evaluator),
                ("executor", self.executor), ("ensembler", self.ensembler))},
        }

    @classmethod
    def resume(cls, run_dir, **overrides) -> Search:
        """Rebuild the search saved in ``run_dir``; strategies saved by registry name are rebuilt
        with their saved scalar parameters, others must be passed again as ``overrides``.
        Raises :class:`RunDirectoryError` for a corrupted or foreign directory (changing nothing).
        """
        _, state, records = RunDir.open(run_dir)
        cfg = state["config"]
        try:
            kw: dict[str, Any] = dict(
                budget=cfg["budget"], max_seconds=cfg.get("max_seconds"),
                per_round=cfg["per_round"], seed=state["seed"], baseline=cfg.get("baseline"),
                max_params=cfg.get("max_params"), device=cfg.get("device", "auto"))
            if cfg["mode"] == "oracle":
                kw.update(oracle=cfg["bench"], metric=cfg["metric"])
            else:
                kw.update(task=cfg["task"], task_options=cfg.get("task_options") or {})
            strategies = cfg.get("strategies") or {}
        except (KeyError, TypeError) as exc:
            raise RunDirectoryError(f"{run_dir}: state.json is corrupted ({exc!r})") from None
        for family, desc in strategies.items():
            if family in overrides:
                continue
            kw[family] = _rebuild(family, desc, cfg, overrides)
        if "task" in overrides:
            kw.pop("task_options", None)
        kw.update(overrides)
        kw["run_dir"] = run_dir
        if kw.get("ensembler") is None and strategies.get("ensembler") is None:
            kw["ensembler"] = False
        search = cls(cfg["space"], **kw)
        if search.config()["space"] != cfg["space"]:
            raise RunDirectoryError(f"{run_dir} holds a search over space {cfg['space']!r}")
        search._resume_state, search._resume_records = state, records
        return search

    # -- helpers --------------------------------------------------------------------------------
    def _count_params(self, arch) -> int:
        key = str(arch)
        if key not in self._param_cache:
            model = self.space.build(arch, self.task.num_classes, self.task.input_shape)
            self._param_cache[key] = sum(p.numel() for p in model.parameters())
        return self._param_cache[key]

    def _new_state(self) -> dict[str, Any]:
        return {"kind": STATE_KIND, "format": FORMAT_VERSION, "seed": self.seed,
                "config": self.config(), "round": 0, "plan": None, "elapsed": 0.0,
                "overhead": [], "phase": "search", "ensemble": None, "done": False}

    def _open(self) -> tuple[RunDir, dict, list[dict]]:
        if self._resume_state is not None:
            return RunDir.open(self.run_dir)  # re-validated: it may have changed since
        if self.run_dir is None:
            self.run_dir = Path(tempfile.mkdtemp(prefix="prednas-search-"))
            log.info("run directory: %s", self.run_dir)
        state = self._new_state()
        return RunDir.create(self.run_dir, state), state, []

    def _record(self, rd: RunDir, records: list[dict], base: dict, result: dict) -> dict:
        rec = dict(base)
        rec.update({k: v for k, v in result.items() if k not in ("arch", "canonical", "kind")})
        rec["query"] = sum(1 for r in records if r["kind"] == base["kind"])
        records.append(rec)
        rd.append(rec)
        return rec

    def _base_record(self, arch_str: str, kind: str, rnd: int, slot: int, **extra) -> dict:
        arch = self.space.parse(arch_str)
        return {"arch": arch_str, "canonical": str(self.space.canonical(arch)), "kind": kind,
                "space": self.space.name, "round": rnd, "slot": slot, "seed": self.seed, **extra}

    def _weights_path(self, rd: RunDir, arch_str: str) -> str | None:
        if self.evaluator.is_oracle:
            return None
        rd.weights_dir.mkdir(exist_ok=True)
        return str(rd.weights_dir / f"{_slug(arch_str)}.pt")

    def evaluate_extra(self, arch_str: str, kind: str, slot: int, seed: int) -> dict:
        """Evaluate one architecture outside the search proper (baseline, replicas), recorded in
        ``evaluations.jsonl`` with ``kind``; an already recorded one is returned, not redone."""
        rd, records = self._rd, self._records
        for r in records:
            if r["kind"] == kind and r["slot"] == slot:
                return r
        save = self._weights_path(rd, f"{kind}-{slot}-{arch_str}")
        result = _evaluate_job(self.evaluator, self.space, arch_str, seed, None, save)
        base = self._base_record(arch_str, kind, -1, slot, weights=save)
        base["seed"] = seed
        return self._record(rd, records, base, result)

    # -- the loop -------------------------------------------------------------------------------
    def run(self) -> SearchResult:
        """Run (or continue) the search to its budget, then ensemble and write the report."""
        rd, state, records = self._open()
        self._rd, self._records, self._state = rd, records, state
        finished = bool(state.get("done"))
        if not finished:
            for strat in (self.filter, self.evaluator):
                strat.setup(self)
        t_start = time.perf_counter() - float(state.get("elapsed", 0.0))
        bar = None
        if self.progress and not finished:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.budget, desc="search", unit="eval")
        try:
            if not finished:
                if self.baseline is not None and not self.evaluator.is_oracle:
                    if bar is not None:
                        bar.set_postfix_str("training the baseline")
                    self.evaluate_extra(str(self.baseline), "baseline", 0, self.seed)
                self._loop(rd, state, records, t_start, bar)
        finally:
            if bar is not None:
                bar.close()
            self.executor.shutdown()
        cands = [r for r in records if r["kind"] == "candidate"]
        best = History(self.space, cands).top(1)
        best = best[0] if best else None
        baseline = next((r for r in records if r["kind"] == "baseline"), None)
        if best is not None and not finished:
            from prednas.utils import atomic_write_json

            atomic_write_json(rd.path / "best.json", {**best, "baseline": baseline})
        if (self.ensembler is not None and best is not None and not finished
                and state.get("ensemble") is None):
            state["phase"] = "ensemble"
            rd.write_state(state)
            state["ensemble"] = self.ensembler.build(self, best)
            rd.write_state(state)
        if not finished:
            state["done"] = True
            state["phase"] = "done"
            rd.write_state(state)
        result = SearchResult(best, cands, rd.path, baseline, state.get("ensemble"),
                              state.get("overhead", []))
        try:
            from prednas.search.report import write_report

            write_report(self, result)
        except Exception as exc:  # noqa: BLE001 - the report must not lose a finished search
            log.warning("could not write report.md: %s", exc)
        return result

    def _loop(self, rd, state, records, t_start, bar) -> None:
        def n_done():
            return sum(1 for r in records if r["kind"] == "candidate")

        def update_bar():
            if bar is not None:
                bar.n = n_done()
                ok = [r["objective"] for r in records
                      if r["kind"] == "candidate" and r["status"] == "ok"]
                best = max(ok) if ok else math.nan
                bar.set_postfix_str(f"best {best:.2f}")
                bar.refresh()

        update_bar()
        while True:
            rnd = int(state["round"])
            plan = state.get("plan")
            if plan is None or plan.get("round") != rnd:
                if n_done() >= self.budget:
                    break
                if self.max_seconds is not None and time.perf_counter() - t_start > self.max_seconds:
                    log.info("wall-time budget reached after %d evaluations", n_done())
                    break
                t0 = time.perf_counter()
                plan = self._plan(rnd, records)
                plan["overhead"] = time.perf_counter() - t0
                state["plan"] = plan
                state["elapsed"] = time.perf_counter() - t_start
                rd.write_state(state)
                if not plan["candidates"]:
                    log.warning("no new candidates could be proposed; stopping")
                    break
            done = {r["slot"] for r in records if r["kind"] == "candidate" and r["round"] == rnd}
            jobs = []
            for slot, c in enumerate(plan["candidates"]):
                if slot in done:
                    continue
                parent_path = None
                if c.get("parent") and getattr(self.evaluator, "inherit", False):
                    p = rd.weights_dir / f"{_slug(c['parent'])}.pt"
                    parent_path = str(p) if p.exists() else None
                save = self._weights_path(rd, c["arch"])
                jobs.append(((slot, c), (self.evaluator, self.space, c["arch"], self.seed,
                                         parent_path, save), {}))
            t_eval = time.perf_counter()
            for (slot, c), result in self.executor.map_unordered(_evaluate_job, jobs):
                base = self._base_record(c["arch"], "candidate", rnd, slot,
                                         parent=c.get("parent"), predicted=c.get("predicted"),
                                         predicted_std=c.get("predicted_std"))
                self._record(rd, records, base, result)
                update_bar()
            eval_wall = time.perf_counter() - t_eval
            state["overhead"].append({"round": rnd, "pool": plan.get("pool", 0),
                                      "seconds": plan.get("overhead", 0.0),
                                      "eval_seconds": eval_wall})
            state["round"] = rnd + 1
            state["plan"] = None
            state["elapsed"] = time.perf_counter() - t_start
            rd.write_state(state)

    def _plan(self, rnd: int, records: list[dict]) -> dict:
        cands = [r for r in records if r["kind"] == "candidate" and r["round"] < rnd]
        history = History(self.space, cands)
        rng = np.random.default_rng([self.seed, rnd])
        k = min(self.per_round, self.budget - len(cands))
        counter = (self._count_params if self.max_params is not None and self.task is not None
                   else None)
        pool = self.mutator.propose(self.space, history, rng, max_params=self.max_params,
                                    param_counter=counter)
        chosen = self.filter.select(self.space, pool, history, k, rng) if pool else []
        return {"round": rnd, "pool": len(pool), "candidates": [
            {"arch": str(c.arch), "parent": c.parent, "predicted": _f(c.predicted),
             "predicted_std": _f(c.predicted_std)} for c in chosen[:k]]}


def _f(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _rebuild(family: str, desc: dict | None, cfg: dict, overrides: dict):
    if desc is None:
        return None
    from prednas.search import ensemblers, evaluators, executors, filters, mutators

    reg = {"mutator": mutators.MUTATORS, "filter": filters.FILTERS,
           "evaluator": evaluators.EVALUATORS, "executor": executors.EXECUTORS,
           "ensembler": ensemblers.ENSEMBLERS}[family]
    name = desc.get("name")
    if name not in reg:
        raise RunDirectoryError(
            f"the run's {family} {name!r} is not a registered strategy; pass it again to "
            f"Search.resume({family}=...)")
    cls = reg.get(name)
    params = {k: v for k, v in (desc.get("params") or {}).items()
              if not (isinstance(v, str) and v.startswith("<"))}
    if family == "evaluator":
        if name == "oracle":
            params["benchmark"] = cfg.get("bench")
        else:
            params.pop("task", None)
            params["task"] = overrides.get("task") or _task_from(cfg)
    try:
        return cls(**params)
    except TypeError as exc:
        raise RunDirectoryError(f"cannot rebuild the run's {family} {name!r}: {exc}") from None


def _task_from(cfg):
    from prednas import tasks

    return tasks.get(cfg["task"], **(cfg.get("task_options") or {}))
