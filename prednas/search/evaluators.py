"""Evaluators: the full (expensive) evaluation of one candidate.

- :class:`OracleEvaluator` — a benchmark table lookup (one query).
- :class:`TrainingEvaluator` — a training run with :func:`prednas.train`, optionally starting from
  the parent's weights (weight inheritance) and penalising models above a parameter cap.
"""

from __future__ import annotations

import logging
import math
import os
import time
from typing import Any

from prednas.errors import CandidateError, InvalidParameterError
from prednas.params import HasMethods, Interval
from prednas.search.base import Evaluator
from prednas.search.registries import REGISTRIES, register_evaluator
from prednas.utils import DEFAULT_LATENCY_BATCH

#: the costs a training evaluator measures by timing the trained model
_LATENCY_COSTS = frozenset({"latency_ms", "latency_batch_ms"})

__all__ = ["EVALUATORS", "OracleEvaluator", "TrainingEvaluator", "model_cost", "COMPUTED_COSTS"]

log = logging.getLogger(__name__)

EVALUATORS = REGISTRIES["evaluator"]
_register = register_evaluator


@_register("oracle")
class OracleEvaluator(Evaluator):
    """Looks ``metric`` up in a tabular benchmark; the objective is that value.

    Args:
        benchmark: a benchmark name (``None``: the search's ``oracle``). A benchmark object is
            accepted too; the run directory stores its name.
        metric: the benchmark metric to maximise (``None``: the search's metric).
    """

    is_oracle = True
    _parameter_constraints = {"benchmark": [None, str, HasMethods("query")],
                              "metric": [None, str]}

    def __init__(self, benchmark: Any = None, metric: str | None = None):
        self.benchmark = benchmark
        self.metric = metric

    def setup(self, context) -> None:
        self.bench_ = bench = benchmark_of(self, context)
        self.metric_ = self.metric or context.metric or bench.default_metric
        bench._check_metric(self.metric_)  # unknown metric -> UnknownNameError now, not mid-run
        self.costs_ = list(dict.fromkeys([*context.costs, *context.constraints]))

    def evaluate(self, space, arch, *, seed, parent_state_path=None, save_path=None):
        t = time.perf_counter()
        value = self.bench_.query(arch, self.metric_)
        out = {"status": "ok", "reason": "", "objective": value, "value": value,
               "metric": self.metric_}
        for c in getattr(self, "costs_", ()):
            out[c] = (self.bench_.query(arch, c) if c in self.bench_.metrics
                      else model_cost(space, arch, c))
        out["seconds"] = time.perf_counter() - t
        return out


@_register("train")
class TrainingEvaluator(Evaluator):
    """Trains the candidate with :func:`prednas.train`; the objective is validation accuracy.

    Candidates with more than ``max_params`` parameters keep their accuracy in the record but get the
    objective ``val_acc - over_penalty * (params / max_params - 1) * 100``, so the search favours
    accuracy under the cap. A diverged or out-of-memory run, or a shape error from a candidate
    network that cannot take its input, is recorded with its reason; any other error stops the
    search (it is a bug, not a bad candidate).

    Args:
        task: a task name (``None``: the search's task, the usual case).
        steps: optimiser steps per candidate (``epochs`` when ``steps`` is None). 300 ranks
            ``blocks1d`` architectures as well as 600 at half the cost
            (``benchmarks/recipe-blocks1d.md``) and is the recipe of ``blocks1d-mnist1d``.
        epochs: passes over the training split.
        batch_size, lr, weight_decay: the recipe (AdamW, one-cycle schedule).
        dropout: dropout rate passed to ``space.build(..., dropout=)`` (``None``: the space's
            default; only for spaces whose ``build`` takes ``dropout``, e.g. ``blocks1d``).
        inherit: start from the parent's trained weights where names and shapes match.
        max_params: parameter cap (None: none).
        over_penalty: objective points lost per 1% over the cap.
        max_seconds: stop one training early after this wall time.
        device: ``"auto"`` uses CUDA when present.
        latency_batch: the batch of the second latency figure, ``latency_batch_ms`` (the first,
            ``latency_ms``, is at batch 1). Both are measured on the search's device (median of
            30 passes after 5 warm-up) when the search names either as a cost or constraint.
    """

    failures = (CandidateError, MemoryError)
    _parameter_constraints = {"task": [None, str],
                              "steps": [None, Interval(int, 1, None)],
                              "epochs": [None, Interval(int, 1, None)],
                              "batch_size": [Interval(int, 1, None)],
                              "lr": [Interval(float, 0, None, "neither")],
                              "weight_decay": [Interval(float, 0, None)],
                              "dropout": [None, Interval(float, 0, 1, "left")],
                              "inherit": ["boolean"],
                              "max_params": [None, Interval(int, 1, None)],
                              "over_penalty": [Interval(float, 0, None)],
                              "max_seconds": [None, Interval(float, 0, None, "neither")],
                              "device": [str],
                              "latency_batch": [Interval(int, 1, None)]}

    def __init__(self, task: Any = None, steps: int | None = 300, epochs: int | None = None,
                 batch_size: int = 128, lr: float = 3e-3, inherit: bool = False,
                 max_params: int | None = None, over_penalty: float = 0.2,
                 max_seconds: float | None = None, device: str = "auto",
                 weight_decay: float = 1e-4, dropout: float | None = None,
                 latency_batch: int = DEFAULT_LATENCY_BATCH):
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
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.latency_batch = latency_batch

    supports_fidelity = True

    @property
    def uses_parent_weights(self) -> bool:  # type: ignore[override]
        return bool(self.inherit)

    def full_steps(self, context=None) -> int | None:
        return None if self.steps is None else int(self.steps)

    def setup(self, context) -> None:
        from prednas import tasks

        task = self.task if self.task is not None else context.task
        if task is None:
            raise InvalidParameterError("TrainingEvaluator needs a task: Search(task=...)")
        self.task_ = tasks.get(task)
        self.latency_ = bool(_LATENCY_COSTS & {*context.costs, *context.constraints})
        if self.dropout is not None:
            import inspect

            if "dropout" not in inspect.signature(context.space.build).parameters:
                raise InvalidParameterError(
                    f"The 'dropout' parameter of TrainingEvaluator needs a space whose build "
                    f"takes dropout=; space {context.space.name!r} does not (use dropout=None)")

    def objective(self, val_acc: float, params: float) -> float:
        return capped_objective(val_acc, params, self.max_params, self.over_penalty)

    def evaluate(self, space, arch, *, seed, parent_state_path=None, save_path=None,
                 fidelity=None, checkpoint=None, resume=None):
        """Train ``arch``; with ``fidelity`` (fewer steps than the recipe's), pause there and
        save what continuing needs to ``checkpoint``; with ``resume``, continue that paused
        training (a missing or unreadable checkpoint: train from scratch, and the result's
        ``restarted`` says why). The result's ``fidelity`` is the steps reached."""
        import torch

        from prednas.errors import IncompatibleArtifactError
        from prednas.training import train

        task = self.task_
        parent_state = None
        if self.inherit and parent_state_path and resume is None:
            try:
                parent_state = torch.load(parent_state_path, map_location="cpu", weights_only=True)
            except (OSError, RuntimeError) as exc:
                log.warning("could not read parent weights %s: %s", parent_state_path, exc)
        partial = fidelity is not None and self.steps is not None and fidelity < self.steps
        latency = getattr(self, "latency_", False) and not partial
        restarted = None
        if resume is not None and not os.path.exists(resume):
            restarted, resume = f"checkpoint {resume} is missing", None

        def run(resume_from):
            return train(space, arch, task, steps=self.steps, epochs=self.epochs,
                         batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay,
                         seed=seed, device=self.device,
                         build_kwargs=None if self.dropout is None else {"dropout": self.dropout},
                         parent_state=parent_state, max_seconds=self.max_seconds,
                         keep_model=(save_path is not None or latency) and not partial,
                         curve_every=self.steps if fidelity is not None else None,
                         stop_at=fidelity if partial else None,
                         checkpoint=checkpoint if partial else None, resume=resume_from)

        try:
            try:
                rec = run(resume)
            except IncompatibleArtifactError as exc:  # damaged: the training starts again
                restarted, resume = str(exc)[:300], None
                rec = run(None)
        except RuntimeError as exc:
            status = _candidate_failure(exc)
            if status is None:
                raise  # a bug, not a bad candidate: stop the search and show it
            raise CandidateError(f"{type(exc).__name__}: {exc}"[:500], status=status) from exc
        if restarted:
            log.warning("%s: %s; trained from scratch", arch, restarted)
        d = rec.to_dict()
        d.pop("loss_curve", None)
        d.pop("arch", None)
        d["objective"] = self.objective(rec.val_acc, rec.params) if rec.ok else math.nan
        d["seconds"] = rec.wall_time
        if fidelity is not None:
            d["fidelity"] = int(rec.steps)
            d["continued"] = resume is not None and restarted is None
            d["restarted"] = restarted
        if latency and rec.model is not None:
            from prednas.benchmarks.build import machine_name
            from prednas.training import measure_latency
            from prednas.utils import resolve_device

            dev = resolve_device(self.device)
            d["latency_ms"] = measure_latency(rec.model, task.input_shape, device=str(dev))
            d["latency_batch_ms"] = measure_latency(rec.model, task.input_shape, device=str(dev),
                                                    batch=self.latency_batch)
            d["latency_batch"] = self.latency_batch
            d["latency_device"] = (machine_name() if dev.type == "cpu"
                                   else torch.cuda.get_device_name(dev))
        if save_path is not None and rec.model is not None:
            torch.save(rec.model.state_dict(), save_path)
        return d



def capped_objective(val_acc: float, params: float, max_params: int | None,
                     over_penalty: float) -> float:
    """Validation accuracy, less ``over_penalty`` points per 1% of parameters above
    ``max_params`` (NaN for a failed training)."""
    if not math.isfinite(val_acc):
        return math.nan
    if max_params is not None and params > max_params:
        return val_acc - over_penalty * 100.0 * (params / max_params - 1.0)
    return val_acc


def benchmark_of(evaluator, context):
    """The evaluator's ``benchmark`` (a name is loaded), else the search's oracle."""
    bench = evaluator.benchmark if evaluator.benchmark is not None else context.oracle
    if bench is None:
        raise InvalidParameterError(
            f"{type(evaluator).__name__} needs a benchmark: Search(oracle=...)")
    if isinstance(bench, str):
        from prednas import benchmarks

        bench = benchmarks.load(bench)
    return bench


#: how torch words a shape error from a network that cannot take its input (an invalid candidate)
_SHAPE_ERRORS = ("shapes cannot be multiplied", "size mismatch", "must match the size of tensor",
                 "expected input", "channels, but got")


def _candidate_failure(exc: RuntimeError) -> str | None:
    """``"oom"`` or ``"invalid"`` when a training's ``RuntimeError`` is the candidate's own
    failure (out of memory; a shape error from a network that cannot take its input), else
    ``None``: a bug, which stops the search."""
    text = str(exc).lower()
    if "memory" in text:  # "CUDA out of memory", "can't allocate memory", ...
        return "oom"
    if any(p in text for p in _SHAPE_ERRORS):
        return "invalid"
    return None


_COSTS: dict[tuple, float] = {}


#: costs that are computed exactly from the architecture (no training, no prediction)
COMPUTED_COSTS = ("params", "flops")


def model_cost(space, arch, cost: str, input_shape=None, num_classes: int = 10) -> float:
    """``params`` or ``flops`` of ``arch`` (built on the meta device: shapes only) for
    ``input_shape`` (default: the space's) and ``num_classes``; cached per process by the space's
    cost key."""
    import torch

    from prednas.training import count_flops

    shape = tuple(input_shape or space.default_input_shape)
    key = (space.name, repr(space.config()), space.cost_key(arch), cost, shape, num_classes)
    if key not in _COSTS:
        with torch.device("meta"):  # shapes only: no memory, no initialisation
            model = space.build(space.coerce(arch), num_classes, shape)
        _COSTS[key] = (float(sum(p.numel() for p in model.parameters())) if cost == "params"
                       else float(count_flops(model, shape, device="meta")))
    return _COSTS[key]
