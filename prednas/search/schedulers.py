"""Schedulers: how far to train each candidate (beside the searcher, which picks candidates).

As in Syne Tune and Ray Tune, a scheduler answers :meth:`Scheduler.suggest` when a worker is free
(start a new candidate at the first rung, or promote a paused one to the next rung) and records
each result a candidate reports at a rung (:meth:`Scheduler.on_result`). It never learns how
candidates are chosen, and the value it ranks by is whatever the loop gives it (the raw partial
accuracy, or a predictor's estimate of the full-training accuracy).

- :class:`ASHAScheduler` — asynchronous successive halving (Li et al., "A System for Massively
  Parallel Hyperparameter Tuning", MLSys 2020), promotion type: a candidate paused at rung ``k``
  is promoted to rung ``k + 1`` as soon as it is in the top ``1 / reduction_factor`` of the results
  recorded at rung ``k`` so far; when no promotion is possible a new candidate starts at rung 0,
  so workers never wait for a rung to fill.
- :class:`FullScheduler` — every candidate trains fully (the loop without early stopping).

The state is a pure function of the results reported so far (in order) and the promotions made,
so a resumed search rebuilds it by replaying its records.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from prednas.errors import InvalidParameterError
from prednas.params import Interval, Options, SequenceOf
from prednas.search.base import Strategy
from prednas.search.registries import REGISTRIES, register_scheduler

SCHEDULERS = REGISTRIES["scheduler"]

__all__ = ["Scheduler", "ASHAScheduler", "FullScheduler", "Decision", "SCHEDULERS"]


@dataclass(frozen=True)
class Decision:
    """What a free worker does next: ``"new"`` (a new candidate, trained to ``steps``) or
    ``"promote"`` (continue ``trial`` from its checkpoint to ``steps``, rung ``rung``)."""

    action: str
    steps: int
    rung: int = 0
    trial: str | None = None


class Scheduler(Strategy):
    """Decides how far each candidate trains. Subclasses implement :meth:`suggest`."""

    family = "scheduler"

    @property
    def rungs_(self) -> tuple[int, ...]:
        raise NotImplementedError

    def suggest(self) -> Decision:  # pragma: no cover - abstract
        raise NotImplementedError

    def on_result(self, trial: str, rung: int, value: float) -> None:
        """Record ``trial``'s ``value`` (higher is better; NaN for a failure, which is never
        promoted) at rung index ``rung``."""


class FullScheduler(Scheduler):
    """Every candidate trains its full ``steps``."""

    _parameter_constraints = {"steps": [Interval(int, 1, None)]}

    def __init__(self, steps: int = 300):
        self.steps = steps

    @property
    def rungs_(self) -> tuple[int, ...]:
        return (self.steps,)

    def suggest(self) -> Decision:
        return Decision("new", self.steps)


@register_scheduler("asha")
class ASHAScheduler(Scheduler):
    """Asynchronous successive halving, promotion type.

    Args:
        rungs: the training steps of each rung, increasing; the last is the full training.
            Each should be a point of the learning curve (simulation answers only there).
        reduction_factor: ``eta``: the top ``1 / eta`` of each rung is promoted (>= 2).
        rank_by: what a rung's results are ranked by in a search: ``"partial"``, the
            validation accuracy reached there; ``"estimate"``, that accuracy combined with the
            filter's prediction of the full training, each weighted by its error on the
            candidates the run has trained fully (the partial accuracy alone until there are 3)
            (:meth:`prednas.search.fidelity.FidelityLoop.value`).
    """

    _parameter_constraints = {"rungs": [SequenceOf(Interval(int, 1, None), min_len=2)],
                              "reduction_factor": [Interval(float, 2, None)],
                              "rank_by": [Options("partial", "estimate")]}

    def __init__(self, rungs: tuple[int, ...] = (50, 100, 300), reduction_factor: float = 3,
                 rank_by: str = "partial"):
        self.rungs = rungs
        self.reduction_factor = reduction_factor
        self.rank_by = rank_by
        self._validate_params()  # the types first: the order below needs a sequence of ints
        self.rungs = tuple(rungs)
        if any(b <= a for a, b in zip(self.rungs, self.rungs[1:])):
            raise InvalidParameterError(
                f"The 'rungs' parameter of ASHAScheduler must be strictly increasing steps "
                f"(e.g. (50, 100, 300)). Got {list(self.rungs)} instead.")
        self.reset()

    @property
    def rungs_(self) -> tuple[int, ...]:
        return self.rungs

    def reset(self) -> None:
        """Forget every result (a resumed search replays its records)."""
        self.results_: list[dict[str, float]] = [{} for _ in self.rungs]
        self.promoted_: list[set[str]] = [set() for _ in self.rungs]

    def on_result(self, trial: str, rung: int, value: float) -> None:
        if not 0 <= rung < len(self.rungs):
            raise InvalidParameterError(
                f"rung {rung} is not one of the scheduler's rungs 0-{len(self.rungs) - 1}")
        v = float(value)
        self.results_[rung][trial] = v if math.isfinite(v) else -math.inf

    def promotable(self, rung: int) -> list[str]:
        """Candidates recorded at ``rung`` that are in its top ``1 / eta`` and not promoted
        yet, best first (failures never)."""
        res = self.results_[rung]
        k = int(len(res) // self.reduction_factor)
        top = sorted(res, key=lambda t: (-res[t], t))[:k]
        return [t for t in top if t not in self.promoted_[rung] and math.isfinite(res[t])]

    def suggest(self) -> Decision:
        for rung in reversed(range(len(self.rungs) - 1)):  # the highest rung first
            ready = self.promotable(rung)
            if ready:
                self.promoted_[rung].add(ready[0])
                return Decision("promote", self.rungs[rung + 1], rung + 1, ready[0])
        return Decision("new", self.rungs[0], 0)

    def mark_promoted(self, trial: str, rung: int) -> None:
        """Replay a promotion from ``rung`` (resume: a promotion planned before the stop)."""
        self.promoted_[rung].add(trial)
