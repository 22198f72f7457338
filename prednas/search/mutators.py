"""Mutators: where candidate architectures come from.

- :class:`MutationMutator` — prednas' default: many mutations of the best architectures so far.
- :class:`RandomSampler` — uniform samples of the space (random search).
- :class:`TournamentMutator` — regularized evolution (Real et al., AAAI 2019): tournament selection in
  an aging population, one mutation of the winner.
- :class:`GivenMutator` — architectures named in advance, in order (Optuna's ``enqueue_trial``),
  then optionally uniform samples: retraining a shortlist, or warm-starting a search.
"""

from __future__ import annotations

import logging

import numpy as np

from prednas.params import Interval, Options, SequenceOf
from prednas.search.base import Candidate, History, Mutator
from prednas.search.registries import REGISTRIES, register_mutator

__all__ = ["MUTATORS", "MutationMutator", "RandomSampler", "TournamentMutator",
           "ModelSearchMutator", "GivenMutator"]

log = logging.getLogger(__name__)

MUTATORS = REGISTRIES["mutator"]
_register = register_mutator


class _Pool:
    """De-duplicates proposals through ``space.canonical`` and skips evaluated ones."""

    def __init__(self, space, history: History, max_params: int | None = None,
                 param_counter=None):
        self.space, self.history = space, history
        self.keys: set[str] = set()
        self.tried: set = set()
        self.items: list[Candidate] = []
        self.max_params, self.param_counter = max_params, param_counter

    def add(self, arch, parent: str | None = None) -> bool:
        if arch in self.tried:  # cheap exact-duplicate check before the canonical form
            return False
        self.tried.add(arch)
        key = str(self.space.canonical(arch))
        if key in self.keys or key in self.history.seen:
            return False
        self.keys.add(key)
        if self.max_params is not None and self.param_counter is not None:
            if self.param_counter(arch) > self.max_params:
                return False
        self.items.append(Candidate(arch, parent=parent))
        return True


@_register("mutation")
class MutationMutator(Mutator):
    """Mutations of the ``parents`` best architectures evaluated so far.

    Each candidate is one to ``max_edits`` random edits (``space.mutate``) away from a parent drawn
    with probability decreasing in its rank. Before anything is evaluated (round 0) the pool is
    ``mutations`` uniform samples of the space, so that the filter's proxies choose the start, or,
    as Model Search starts, the ``start`` architectures alone (e.g. a good hand-designed network
    shrunk to fit the parameter cap).

    Args:
        parents: how many of the best architectures are mutated.
        mutations: how many distinct candidates to propose per round.
        max_edits: largest number of consecutive edits per candidate.
        explore: share of the pool filled with uniform samples of the space instead of mutations
            (lets the filter jump out of a local optimum).
        max_tries: give up after ``max_tries * mutations`` draws (small or exhausted spaces); every
            ``mutations`` draws the largest number of edits grows by one.
        start: architecture strings proposed (alone) before anything is evaluated.
        distribution: path of an ST-NAS architecture distribution (``distribution.json``, from
            :func:`prednas.stnas.train` with a ``run_dir``, or ``ArchDistribution.save``): each
            edit is drawn from the space's edits in proportion to the child's probability under
            it (:meth:`prednas.stnas.ArchDistribution.mutate`) instead of uniformly.
    """

    _parameter_constraints = {"start": [SequenceOf(str)],
                              "distribution": [None, str],
                              "parents": [Interval(int, 1, None)],
                              "mutations": [Interval(int, 1, None)],
                              "max_edits": [Interval(int, 1, None)],
                              "explore": [Interval(float, 0, 1)],
                              "max_tries": [Interval(int, 1, None)]}

    def __init__(self, parents: int = 10, mutations: int = 1000, max_edits: int = 2,
                 explore: float = 0.0, max_tries: int = 20, start: tuple[str, ...] = (),
                 distribution: str | None = None):
        self.distribution = distribution
        self.parents = parents
        self.mutations = mutations
        self.max_edits = max_edits
        self.explore = explore
        self.max_tries = max_tries
        self.start = start

    def pool_size(self) -> int:
        return self.mutations

    def setup(self, context) -> None:
        for a in self.start:  # an architecture outside the space is an error now, not mid-run
            context.space.parse(a)
        self.guide_ = None
        if self.distribution is not None:  # a missing or foreign file is an error now
            from prednas.stnas import ArchDistribution

            self.guide_ = ArchDistribution.load(self.distribution, context.space)
        self.costs_ = tuple(context.costs)
        self.constraints_ = dict(context.constraints)

    def _best(self, history) -> list:
        """The parents: the best by objective, or by NSGA-II's order in a multi-objective run."""
        costs = getattr(self, "costs_", ())
        if not costs:
            return history.top(self.parents)
        from prednas.search.pareto import feasible, nsga2_order, objective_matrix

        ok = feasible(history.records, getattr(self, "constraints_", {}))
        return [ok[i] for i in nsga2_order(objective_matrix(ok, costs))[:self.parents]]

    def propose(self, space, history, rng, *, max_params=None, param_counter=None):
        pool = _Pool(space, history, max_params, param_counter)
        top = self._best(history)
        tries = 0
        limit = self.max_tries * self.mutations
        if not top and self.start and not len(history):
            for a in self.start:
                pool.add(space.parse(a))
            if pool.items:
                return pool.items
        if not top:
            while len(pool.items) < self.mutations and tries < limit:
                pool.add(space.sample(rng))
                tries += 1
            return pool.items
        parents = [history.arch(r) for r in top]
        weights = 1.0 / np.arange(1, len(parents) + 1)
        weights /= weights.sum()
        cum = np.cumsum(weights)
        edits = self.max_edits
        n_random = int(round(self.explore * self.mutations))
        while len(pool.items) < n_random and tries < limit:
            pool.add(space.sample(rng))
            tries += 1
        while len(pool.items) < self.mutations and tries < limit:
            i = min(int(np.searchsorted(cum, rng.random(), side="right")), len(parents) - 1)
            child = parents[i]
            guide = getattr(self, "guide_", None)
            for _ in range(int(rng.integers(1, edits + 1))):
                child = space.mutate(child, rng) if guide is None else guide.mutate(child, rng)
            pool.add(child, parent=top[i].arch)
            tries += 1
            if tries % self.mutations == 0:  # neighbourhood exhausted: reach further
                edits += 1
        return pool.items


@_register("random")
class RandomSampler(Mutator):
    """Uniform samples of the space, not yet evaluated (random search when paired with no filter).

    Args:
        samples: how many distinct candidates to propose per round.
    """

    _parameter_constraints = {"samples": [Interval(int, 1, None)]}

    def __init__(self, samples: int = 1):
        self.samples = samples

    def pool_size(self) -> int:
        return self.samples

    def propose(self, space, history, rng, *, max_params=None, param_counter=None):
        pool = _Pool(space, history, max_params, param_counter)
        tries = 0
        while len(pool.items) < self.samples and tries < 100 * self.samples:
            pool.add(space.sample(rng))
            tries += 1
        return pool.items


@_register("rea")
class TournamentMutator(Mutator):
    """Regularized evolution: the population is the ``population`` most recent evaluations;
    ``sample_size`` of them are drawn at random and the best is mutated once. Until the population is
    full, candidates are uniform samples.

    Args:
        population: size of the aging population (oldest members die first).
        sample_size: tournament size.
        children: candidates proposed per round.
    """

    _parameter_constraints = {"population": [Interval(int, 1, None)],
                              "sample_size": [Interval(int, 1, None)],
                              "children": [Interval(int, 1, None)]}

    def __init__(self, population: int = 20, sample_size: int = 5, children: int = 1):
        self.population = population
        self.sample_size = sample_size
        self.children = children

    def pool_size(self) -> int:
        return self.children

    def propose(self, space, history, rng, *, max_params=None, param_counter=None):
        pool = _Pool(space, history, max_params, param_counter)
        alive = [r for r in history.last(self.population) if r.ok]
        tries = 0
        while len(pool.items) < self.children and tries < 100 * self.children:
            tries += 1
            if len(history) < self.population or not alive:
                pool.add(space.sample(rng))
                continue
            idx = rng.choice(len(alive), size=min(self.sample_size, len(alive)), replace=False)
            best = max((alive[int(i)] for i in idx), key=lambda r: r.objective)
            pool.add(space.mutate(history.arch(best), rng), parent=best.arch)
        return pool.items


@_register("modelsearch")
class ModelSearchMutator(Mutator):
    """Model Search's mutation (Google's Model Search, the phase after its random start): a parent
    drawn uniformly from the ``parents`` best architectures so far, changed by exactly one edit of
    the space (``space.mutate``: add a block, remove one, or reset one block parameter). Until
    ``parents`` evaluations exist, candidates are uniform samples of the space, and so are the
    children still missing when the best architectures' one-edit neighbourhoods are used up (a
    small, finite space), so that the search goes on to its budget.

    Args:
        parents: how many of the best architectures may be mutated.
        children: candidates proposed per round (every one is evaluated: no filter).
    """

    _parameter_constraints = {"parents": [Interval(int, 1, None)],
                              "children": [Interval(int, 1, None)]}

    def __init__(self, parents: int = 5, children: int = 1):
        self.parents = parents
        self.children = children

    def pool_size(self) -> int:
        return self.children

    def propose(self, space, history, rng, *, max_params=None, param_counter=None):
        pool = _Pool(space, history, max_params, param_counter)
        top = history.top(self.parents)
        tries = 0
        while len(pool.items) < self.children and tries < 100 * self.children:
            tries += 1
            if len(history) < self.parents or not top:
                pool.add(space.sample(rng))
                continue
            parent = top[int(rng.integers(len(top)))]
            pool.add(space.mutate(history.arch(parent), rng), parent=parent.arch)
        while len(pool.items) < self.children and tries < 200 * self.children:
            tries += 1  # the neighbourhoods are used up: new ground, as at the start
            pool.add(space.sample(rng))
        return pool.items


@_register("given")
class GivenMutator(Mutator):
    """Architectures given in advance, proposed in their order until each has been evaluated; then
    (``then="random"``) uniform samples of the space, or (``then=None``) nothing, which ends the
    search.

    With ``filter=NoFilter()`` and ``budget=len(archs)`` a search evaluates exactly the given
    architectures, each a recorded, resumable evaluation (what :class:`prednas.Pipeline` does to
    retrain a shortlist). Duplicates (through ``space.canonical``) are proposed once; like every
    mutator's proposals, architectures above the search's ``max_params`` are dropped.

    Args:
        archs: architecture strings of the search's space.
        then: ``"random"``: uniform samples once the given architectures are used up; ``None``:
            nothing more.
        samples: uniform samples proposed per round after the given architectures.
    """

    _parameter_constraints = {"archs": [SequenceOf(str)], "then": [None, Options("random")],
                              "samples": [Interval(int, 1, None)]}

    def __init__(self, archs: list[str] | tuple[str, ...] = (), then: str | None = "random",
                 samples: int = 1):
        self.archs = archs
        self.then = then
        self.samples = samples

    def setup(self, context) -> None:
        for a in self.archs:  # an unknown architecture is an error now, not mid-run
            context.space.parse(a)

    def pool_size(self) -> int:
        return max(len(self.archs), self.samples)

    def propose(self, space, history, rng, *, max_params=None, param_counter=None):
        pool = _Pool(space, history, max_params, param_counter)
        for a in self.archs:
            pool.add(space.parse(a))
        if pool.items or self.then is None:
            return pool.items
        tries = 0
        while len(pool.items) < self.samples and tries < 100 * self.samples:
            pool.add(space.sample(rng))
            tries += 1
        return pool.items


# registers "stnas" (its module imports torch only when a search sets it up)
from prednas.search import stnas as _stnas  # noqa: E402,F401
