"""Evaluators: the full (expensive) evaluation of one candidate.

- :class:`OracleEvaluator` — a benchmark table lookup (one query).
- :class:`TrainingEvaluator` — a training run with :func:`prednas.train`, optionally starting from
  the parent's weights (weight inheritance) and penalising models above a parameter cap.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from prednas.errors import check_param
from prednas.registry import Registry
from prednas.search.base import Evaluator

__all__ = ["EVALUATORS", "OracleEvaluator", "TrainingEvaluator"]

log = logging.getLogger(__name__)

EVALUATORS = Registry("evaluator")


_register = EVALUATORS.register_class


@_register("oracle")
class OracleEvaluator(Evaluator):
    """Looks ``metric`` up in a tabular benchmark; the objective is that value.

    Args:
        benchmark: a :class:`prednas.benchmarks.base.Benchmark` or its name.
        metric: the benchmark metric to maximise.
    """

    is_oracle = True

    def __init__(self, benchmark: Any = "nb201", metric: str = "cifar10_test_200ep"):
        self.benchmark = benchmark
        self.metric = metric

    def _bench(self):
        if isinstance(self.benchmark, str):
            from prednas import benchmarks

            self.benchmark = benchmarks.load(self.benchmark)
        return self.benchmark

    def setup(self, search) -> None:
        bench = self._bench()
        bench._check_metric(self.metric)  # unknown metric -> UnknownNameError now, not mid-run

    def evaluate(self, space, arch, *, seed, parent_state_path=None, save_path=None):
        t = time.perf_counter()
        value = self._bench().query(arch, self.metric)
        return {"status": "ok", "reason": "", "objective": value, "value": value,
                "metric": self.metric, "seconds": time.perf_counter() - t}

    def describe(self):
        d = super().describe()
        d["params"]["benchmark"] = getattr(self.benchmark, "name", self.benchmark)
        return d


@_register("train")
class TrainingEvaluator(Evaluator):
    """Trains the candidate with :func:`prednas.train`; the objective is validation accuracy.

    Candidates with more than ``max_params`` parameters keep their accuracy in the record but get the
    objective ``val_acc - over_penalty * (params / max_params - 1) * 100``, so the search favours
    accuracy under the cap. A diverged or out-of-memory run is recorded with its reason.

    Args:
        task: a :class:`prednas.tasks.Task` (or name).
        steps: optimiser steps per candidate (``epochs`` when ``steps`` is None).
        epochs: passes over the training split.
        batch_size, lr: the recipe.
        inherit: start from the parent's trained weights where names and shapes match.
        max_params: parameter cap (None: none).
        over_penalty: objective points lost per 1% over the cap.
        max_seconds: stop one training early after this wall time.
        device: ``"auto"`` uses CUDA when present.
    """

    def __init__(self, task: Any = "mnist1d", steps: int | None = 600, epochs: int | None = None,
                 batch_size: int = 128, lr: float = 3e-3, inherit: bool = False,
                 max_params: int | None = None, over_penalty: float = 0.2,
                 max_seconds: float | None = None, device: str = "auto"):
        self.task = task
        self.steps = steps
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.inherit = inherit
        self.max_params = max_params
        self.over_penalty = over_penalty
        self.max_seconds = max_seconds
        self.device = device

    def setup(self, search) -> None:
        if self.steps is not None:
            check_param(type(self).__name__, "steps", self.steps, low=1)
        if self.max_params is not None:
            check_param(type(self).__name__, "max_params", self.max_params, low=1)

    def objective(self, val_acc: float, params: int) -> float:
        if not math.isfinite(val_acc):
            return math.nan
        if self.max_params is not None and params > self.max_params:
            return val_acc - self.over_penalty * 100.0 * (params / self.max_params - 1.0)
        return val_acc

    def evaluate(self, space, arch, *, seed, parent_state_path=None, save_path=None):
        import torch

        from prednas import tasks
        from prednas.training import train

        task = tasks.get(self.task)
        parent_state = None
        if self.inherit and parent_state_path:
            try:
                parent_state = torch.load(parent_state_path, map_location="cpu", weights_only=True)
            except (OSError, RuntimeError) as exc:
                log.warning("could not read parent weights %s: %s", parent_state_path, exc)
        try:
            rec = train(space, arch, task, steps=self.steps, epochs=self.epochs,
                        batch_size=self.batch_size, lr=self.lr, seed=seed, device=self.device,
                        parent_state=parent_state, max_seconds=self.max_seconds,
                        keep_model=save_path is not None)
        except (RuntimeError, MemoryError) as exc:  # CPU OOM and friends: record, go on
            kind = "oom" if isinstance(exc, MemoryError) or "memory" in str(exc).lower() else "error"
            return {"status": kind, "reason": f"{type(exc).__name__}: {exc}"[:500],
                    "objective": math.nan, "seconds": 0.0}
        d = rec.to_dict()
        d.pop("loss_curve", None)
        d.pop("arch", None)
        d["objective"] = self.objective(rec.val_acc, rec.params) if rec.ok else math.nan
        d["seconds"] = rec.wall_time
        if save_path is not None and rec.model is not None:
            torch.save(rec.model.state_dict(), save_path)
        return d

    def describe(self):
        d = super().describe()
        d["params"]["task"] = getattr(self.task, "name", self.task)
        return d
