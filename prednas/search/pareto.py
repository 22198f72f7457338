"""Multi-objective search: accuracy against cost (parameters, FLOPs, latency).

A search with ``objectives=("test_acc", "params")`` maximises the first objective and minimises
the others. This module holds what that needs, on top of the moocore library (non-dominated
sorting and hypervolume, maintained by the authors of the reference algorithms):

* :func:`objective_matrix` — the records' objectives as a minimisation matrix;
* :func:`nsga2_order` — NSGA-II's order (Deb et al., 2002): non-dominated rank, then crowding
  distance, used to choose parents and to keep the most promising candidates;
* :func:`hypervolume` and :func:`pareto_front`;
* :class:`NSGA2Mutator` — the NSGA-II baseline: binary-tournament selection on that order from the
  evaluated population, and the space's own mutation as the variation operator (graph
  architectures have no meaningful crossover here). Stateless given the history, so it resumes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from prednas.params import Interval
from prednas.search.base import History, Mutator, Record
from prednas.search.registries import register_mutator

__all__ = ["objective_matrix", "nsga2_order", "crowding_distance", "hypervolume", "pareto_front",
           "NSGA2Mutator", "feasible", "hv_improvement_order"]

log = logging.getLogger(__name__)


def objective_matrix(records: Sequence[Record], costs: Sequence[str]) -> np.ndarray:
    """``(n, 1 + len(costs))``: ``-objective`` then each cost (all minimised); NaN if missing."""
    rows = [[-r.objective] + [float(r.get(c, np.nan)) if r.get(c) is not None else np.nan
                              for c in costs] for r in records]
    return np.asarray(rows, float).reshape(len(records), 1 + len(costs))


def feasible(records: Sequence[Record], constraints: dict[str, float] | None) -> list[Record]:
    """Successful records that meet every ``{cost: upper bound}`` constraint."""
    out = []
    for r in records:
        if not r.ok:
            continue
        if constraints and any(not (float(r.get(k, np.inf)) <= v) for k, v in constraints.items()):
            continue
        out.append(r)
    return out


def crowding_distance(F: np.ndarray) -> np.ndarray:
    """NSGA-II's crowding distance of each point within one front (boundary points: inf)."""
    n, m = F.shape
    d = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for j in range(m):
        order = np.argsort(F[:, j], kind="stable")
        span = F[order[-1], j] - F[order[0], j]
        d[order[0]] = d[order[-1]] = np.inf
        if span > 0:
            d[order[1:-1]] += (F[order[2:], j] - F[order[:-2], j]) / span
    return d


def nsga2_order(F: np.ndarray) -> np.ndarray:
    """Indices ordered by non-dominated rank (moocore), then by decreasing crowding distance;
    ties by index. Rows with NaN go last."""
    import moocore

    F = np.asarray(F, float)
    n = len(F)
    if n == 0:
        return np.zeros(0, int)
    good = np.isfinite(F).all(axis=1)
    rank = np.full(n, np.iinfo(np.int64).max // 2)
    crowd = np.zeros(n)
    idx = np.flatnonzero(good)
    if len(idx):
        r = np.asarray(moocore.pareto_rank(F[idx]), int)
        rank[idx] = r
        for level in np.unique(r):
            members = idx[r == level]
            crowd[members] = crowding_distance(F[members])
    return np.lexsort((np.arange(n), -crowd, rank))


def pareto_front(F: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated rows (NaN rows excluded)."""
    import moocore

    F = np.asarray(F, float)
    good = np.flatnonzero(np.isfinite(F).all(axis=1))
    if not len(good):
        return good
    return good[np.asarray(moocore.is_nondominated(F[good]), bool)]


def hypervolume(F: np.ndarray, ref: Sequence[float]) -> float:
    """Hypervolume dominated by the rows of ``F`` (minimisation) up to ``ref`` (moocore)."""
    import moocore

    F = np.asarray(F, float)
    ref = np.asarray(ref, float)
    F = F[np.isfinite(F).all(axis=1)]
    F = F[(F < ref).all(axis=1)]
    if not len(F):
        return 0.0
    return float(moocore.hypervolume(F, ref=ref))


def hv_improvement_order(F: np.ndarray, observed: np.ndarray, n: int,
                         pool: int = 100) -> np.ndarray:
    """Candidates ordered for a multi-objective search: greedily, the one whose (predicted)
    point adds the most hypervolume to the observed front plus those already picked, ``n``
    times; the rest follow in NSGA-II order. The reference point is 0 for the first (negated
    metric) column and 110% of the largest cost seen, per cost. Only the ``pool`` best candidates
    by NSGA-II order are considered for the greedy picks."""
    F = np.asarray(F, float)
    base = nsga2_order(F)
    obs = np.asarray(observed, float).reshape(-1, F.shape[1])
    obs = obs[np.isfinite(obs).all(axis=1)]
    good = np.isfinite(F).all(axis=1)
    if not good.any() or not len(obs):
        return base
    both = np.vstack([obs, F[good]])
    ref = np.concatenate([[0.0], 1.1 * np.max(both[:, 1:], axis=0)])
    front = obs[pareto_front(obs)] if len(obs) else obs
    current = hypervolume(front, ref)
    pool_idx = [i for i in base[:pool] if good[i]]
    picked: list[int] = []
    for _ in range(min(n, len(pool_idx))):
        gains = [(hypervolume(np.vstack([front, F[i]]), ref) - current, -j, i)
                 for j, i in enumerate(pool_idx) if i not in picked]
        gain, _, best = max(gains)
        if gain <= 0:
            break
        picked.append(best)
        front = np.vstack([front, F[best]])
        current += gain
    rest = [i for i in base if i not in picked]
    return np.asarray(picked + rest, int)


@register_mutator("nsga2")
class NSGA2Mutator(Mutator):
    """NSGA-II through the search loop (the multi-objective baseline).

    The population is the ``population`` best evaluated architectures by NSGA-II's order (rank,
    then crowding); each child is one edit (``space.mutate``) of the winner of a binary tournament
    on that order. Until ``population`` evaluations exist, children are uniform samples.

    Args:
        population: NSGA-II's population size.
        children: candidates proposed per round.
    """

    _parameter_constraints = {"population": [Interval(int, 2, None)],
                              "children": [Interval(int, 1, None)]}

    def __init__(self, population: int = 20, children: int = 1):
        self.population = population
        self.children = children

    def setup(self, context) -> None:
        self.costs_ = tuple(context.objectives[1:])
        self.constraints_ = dict(context.constraints or {})

    def pool_size(self) -> int:
        return self.children

    def propose(self, space, history: History, rng, *, max_params=None, param_counter=None):
        from prednas.search.mutators import _Pool

        pool = _Pool(space, history, max_params, param_counter)
        ok = feasible(history.records, getattr(self, "constraints_", {}))
        order = nsga2_order(objective_matrix(ok, getattr(self, "costs_", ())))
        pop = [ok[i] for i in order[:self.population]]
        position = {id(r): i for i, r in enumerate(pop)}
        tries = 0
        while len(pool.items) < self.children and tries < 100 * self.children:
            tries += 1
            if len(history) < self.population or len(pop) < 2:
                pool.add(space.sample(rng))
                continue
            a, b = rng.choice(len(pop), size=2, replace=False)
            parent = pop[min(a, b, key=lambda i: position[id(pop[i])])]
            pool.add(space.mutate(history.arch(parent), rng), parent=parent.arch)
        return pool.items
