"""The search engine: :class:`Search` with pluggable strategies, and its baselines.

>>> import prednas
>>> result = prednas.Search("nb201", oracle="nb201", budget=50, seed=0).run()
>>> result.best["arch"], result.best["objective"]

Strategy families (abstract bases in :mod:`prednas.search.base`): mutators (where candidates come
from), filters (cheap staged scoring), evaluators (training or benchmark lookup), executors (where
evaluations run) and ensemblers. :func:`random_search` and :func:`regularized_evolution` build the
baselines in the same loop.
"""

from __future__ import annotations

from prednas.search.base import (Candidate, Ensembler, Evaluator, Executor, Filter, History,
                                 Mutator, Strategy)
from prednas.search.engine import Search, SearchResult
from prednas.search.ensemblers import ENSEMBLERS, ReplicaEnsembler
from prednas.search.evaluators import EVALUATORS, OracleEvaluator, TrainingEvaluator
from prednas.search.executors import EXECUTORS, InProcessExecutor, PoolExecutor
from prednas.search.filters import FILTERS, NoFilter, PredictorFilter, default_predictor
from prednas.search.mutators import MUTATORS, MutationMutator, RandomSampler, TournamentMutator

__all__ = ["Search", "SearchResult", "Strategy", "Mutator", "Filter", "Evaluator", "Executor",
           "Ensembler", "Candidate", "History", "MutationMutator", "RandomSampler",
           "TournamentMutator", "PredictorFilter", "NoFilter", "default_predictor",
           "OracleEvaluator", "TrainingEvaluator", "InProcessExecutor", "PoolExecutor",
           "ReplicaEnsembler", "MUTATORS", "FILTERS", "EVALUATORS", "EXECUTORS", "ENSEMBLERS",
           "random_search", "regularized_evolution", "STRATEGIES"]

#: the named search strategies of the CLI and the benchmark script
STRATEGIES = ("prednas", "random", "rea")


def random_search(space, **kwargs) -> Search:
    """Random search through the same loop: uniform samples, no filter, one per round."""
    kwargs.setdefault("per_round", 1)
    return Search(space, mutator=RandomSampler(samples=kwargs["per_round"]), filter=NoFilter(),
                  **kwargs)


def regularized_evolution(space, population: int = 20, sample_size: int = 5, **kwargs) -> Search:
    """Regularized evolution (REA, Real et al. 2019) through the same loop."""
    kwargs.setdefault("per_round", 1)
    return Search(space, mutator=TournamentMutator(population, sample_size,
                                                   children=kwargs["per_round"]),
                  filter=NoFilter(), **kwargs)
