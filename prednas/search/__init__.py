"""The search engine: :class:`Search` with pluggable strategies, and its baselines.

>>> import prednas
>>> result = prednas.Search("nb201", oracle="nb201", budget=50, seed=0).run()
>>> result.best.arch, result.best.objective

Strategy families (abstract bases in :mod:`prednas.search.base`): mutators (where candidates come
from), filters (cheap staged scoring), evaluators (training or benchmark lookup), executors (where
evaluations run) and ensemblers. :func:`random_search` and :func:`regularized_evolution` build the
baselines in the same loop.
"""

from __future__ import annotations

from prednas.search.base import (
    Candidate,
    Ensembler,
    Evaluator,
    Executor,
    Filter,
    History,
    Mutator,
    Record,
    SearchContext,
    Strategy,
    register_storable,
)
from prednas.search.engine import Search, SearchResult
from prednas.search.ensemblers import ENSEMBLERS, ReplicaEnsembler
from prednas.search.evaluators import EVALUATORS, OracleEvaluator, TrainingEvaluator
from prednas.search.executors import EXECUTORS, InProcessExecutor, PoolExecutor, RayExecutor
from prednas.search.filters import FILTERS, NoFilter, PredictorFilter, default_predictor
from prednas.search.mutators import (
    MUTATORS,
    GivenMutator,
    ModelSearchMutator,
    MutationMutator,
    RandomSampler,
    TournamentMutator,
)
from prednas.search.pareto import NSGA2Mutator
from prednas.search.registries import (
    create_ensembler,
    create_evaluator,
    create_executor,
    create_filter,
    create_mutator,
    create_scheduler,
    list_ensemblers,
    list_evaluators,
    list_executors,
    list_filters,
    list_mutators,
    list_schedulers,
    register_ensembler,
    register_evaluator,
    register_executor,
    register_filter,
    register_mutator,
    register_scheduler,
)
from prednas.search.schedulers import ASHAScheduler, Scheduler
from prednas.search.simulate import SimClock, SimulatedEvaluator
from prednas.search.stnas import STNASMutator

__all__ = ["Search", "SearchResult", "Strategy", "Mutator", "Filter", "Evaluator", "Executor",
           "Ensembler", "Candidate", "History", "Record", "SearchContext", "register_storable",
           "MutationMutator", "RandomSampler", "TournamentMutator", "ModelSearchMutator",
           "GivenMutator",
           "STNASMutator",
           "PredictorFilter", "NoFilter", "default_predictor",
           "OracleEvaluator", "TrainingEvaluator", "SimulatedEvaluator", "SimClock",
           "InProcessExecutor", "PoolExecutor",
           "RayExecutor", "ReplicaEnsembler", "MUTATORS", "FILTERS", "EVALUATORS", "EXECUTORS",
           "ENSEMBLERS", "random_search", "regularized_evolution", "model_search", "nsga2",
           "NSGA2Mutator", "STRATEGIES",
           "register_mutator", "register_filter", "register_evaluator", "register_executor",
           "register_ensembler", "list_mutators", "list_filters", "list_evaluators",
           "list_executors", "list_ensemblers", "create_mutator", "create_filter",
           "create_evaluator", "create_executor", "create_ensembler", "Scheduler",
           "ASHAScheduler", "register_scheduler", "list_schedulers", "create_scheduler"]

#: the named search strategies of the CLI and the benchmark script
STRATEGIES = ("prednas", "modelsearch", "nsga2", "random", "rea")


def random_search(space, **kwargs) -> Search:
    """Random search through the same loop: uniform samples, no filter, one per round."""
    if kwargs.get("per_round") is None:
        kwargs["per_round"] = 1
    return Search(space, mutator=RandomSampler(samples=kwargs["per_round"]), filter=NoFilter(),
                  **kwargs)


def regularized_evolution(space, population: int = 20, sample_size: int = 5, **kwargs) -> Search:
    """Regularized evolution (REA, Real et al. 2019) through the same loop."""
    if kwargs.get("per_round") is None:
        kwargs["per_round"] = 1
    return Search(space, mutator=TournamentMutator(population, sample_size,
                                                   children=kwargs["per_round"]),
                  filter=NoFilter(), **kwargs)


def model_search(space, parents: int = 5, **kwargs) -> Search:
    """Model Search's own loop (Google's Model Search) through the same engine: each candidate is
    one edit (add a block, remove one, reset a block parameter) of one of the ``parents`` best
    architectures so far, with no filter; every proposal is trained."""
    if kwargs.get("per_round") is None:
        kwargs["per_round"] = 2 if kwargs.get("oracle") is None else 5
    return Search(space, mutator=ModelSearchMutator(parents=parents,
                                                    children=kwargs["per_round"]),
                  filter=NoFilter(), **kwargs)


def nsga2(space, population: int = 20, **kwargs) -> Search:
    """The NSGA-II baseline of a multi-objective search (``objectives=...``) through the same
    engine: NSGA-II selection (non-dominated rank, crowding) with the space's mutation, no
    filter."""
    if kwargs.get("per_round") is None:
        kwargs["per_round"] = 1
    return Search(space, mutator=NSGA2Mutator(population=population,
                                              children=kwargs["per_round"]),
                  filter=NoFilter(), **kwargs)
