"""The defaults of a search, decided once: what ``prednas search`` and ``prednas.Search`` share.

A search that trains candidates (or simulates training) and is given no mutator or filter uses
prednas's measured setting: Model Search's start (the baseline with its widths shrunk to fit the
parameter cap, ``benchmarks/search-mnist1d.md``), 5 parents and 100 mutations a round (in a
``blocks1d`` space :data:`EXPLORE` of them uniform samples), and the predictor filter without
the NB201 proxy table, with the prior learned from the shipped 1-D table in a ``blocks1d`` space
(:data:`PRIOR`), with the space's measured live proxies
(:attr:`spaces.Space.live_proxies`; none in simulation, which has no data to compute them on),
6 survivors and a fit from 6 results; it keeps :data:`RACE` of its budget to race its leaders.
``param_cap`` sets the parameter cap as a share of the baseline's parameters. The command line
passes only what its user gave, so ``prednas search --task T`` and ``prednas.Search(space,
task=T, baseline=True, param_cap=0.6)`` run the same search, for :data:`SEARCH_MINUTES`
(``tests/search/test_defaults.py``), on the same splits (:func:`task_options`).
"""

from __future__ import annotations

import dataclasses

__all__ = ["task_options", "training_limits",
           "defaults_tag", "SEARCH_MINUTES", "TRAINING_BUDGET", "PARAM_CAP",
           "MAX_MINUTES", "RACE", "EXPLORE", "PRIOR", "default_prior", "default_explore",
           "shrunk_start", "live_proxies",
           "warmup_options", "default_mutator", "default_filter", "param_count"]

#: the time a training (or simulated) search searches when given neither a budget nor a time
#: limit, minutes. A time, not a count of candidates: what a candidate costs varies a
#: hundredfold between networks and machines, and 24 candidates (the default until measured)
#: took 30 s on a user's small CNN, where the winner reached the network's accuracy at <= 60% of
#: its parameters in 1 of 3 seeds (``benchmarks/byo-mnist1d.md``); AutoGluon and auto-sklearn
#: default to a time limit too. ``--budget N`` runs a search reproducible from its seed.
SEARCH_MINUTES = 5.0
#: the most candidates a time-limited training search trains (a ceiling the time reaches first)
TRAINING_BUDGET = 1000
#: the command line's parameter cap, a share of the baseline's parameters
PARAM_CAP = 0.6
#: the command line's wall-time guard of a search given a ``--budget``, minutes
MAX_MINUTES = 20.0
#: the share of a training (or simulated) prednas search kept to race the leaders on new seeds
#: (``Search(race=...)``). ``benchmarks/search-blocks1d-simulated.md`` (prednas against
#: prednas-norace on the complete sub-space table, 23-24 seeds, final protocol): +0.21, +0.29,
#: +0.26 and +0.25 points at 2, 5, 10 and 20 simulated minutes, every 90% interval above zero,
#: and 96-100% of picks in the capped top 1% against 54-65%
RACE = 0.2
#: the share of each round's pool that a training (or simulated) prednas search draws uniformly
#: from the space instead of mutating its leaders, for the filter to choose among
#: (``--explore``). With :data:`PRIOR` (``prednas-prior-explore`` in the benchmarks), real
#: training, 6 min, 5 seeds, final protocol (``benchmarks/search-mnist1d.md``): 98.86 against
#: 98.72 for the shrunk start's mutations alone, ahead of every peer
EXPLORE = 0.3
#: the filter's prior in a ``blocks1d`` space (``--prior``): the predictor learned from the
#: shipped 1-D table (transfer; on another task ``benchmarks/transfer-blocks1d.md``)
PRIOR = "table"


def training_limits(budget: int | None, max_minutes: float | None,
                    most: int | None = None) -> tuple[int, float]:
    """A training (or simulated) search's ``(budget, max_seconds)`` from what its user gave:
    neither, :data:`SEARCH_MINUTES` of search (up to :data:`TRAINING_BUDGET` candidates, or
    ``most``: a simulated table's size); a budget alone, that many candidates with the
    :data:`MAX_MINUTES` guard; a time, that time (up to the budget given, else the ceiling)."""
    if max_minutes is None:
        max_minutes = SEARCH_MINUTES if budget is None else MAX_MINUTES
    ceiling = TRAINING_BUDGET if most is None else min(TRAINING_BUDGET, int(most))
    return int(budget or ceiling), 60.0 * float(max_minutes)


def defaults_tag() -> str:
    """The defaults a benchmark of the default search measures, as a name (benchmark scripts
    name their run directories by it, so that a run made under other defaults is never read
    back as one of these)."""
    return f"search{SEARCH_MINUTES:g}min-race{RACE:g}-explore{EXPLORE:g}-prior{PRIOR}"


def task_options(name: str, options: dict | None) -> dict:
    """A search's options of the task ``name``: MNIST-1D's evaluation splits are those of the
    ground-truth table (:data:`prednas.tasks.mnist1d.SEARCH_SPLITS`) unless given."""
    options = dict(options or {})
    if name == "mnist1d":
        from prednas.tasks.mnist1d import SEARCH_SPLITS

        options = {**SEARCH_SPLITS, **options}
    return options


def param_count(space, arch, task=None) -> int:
    """Parameters of ``arch`` for ``task`` (default: the space's input, 10 classes)."""
    from prednas.search.evaluators import model_cost

    if task is None:
        return int(model_cost(space, arch, "params"))
    return int(model_cost(space, arch, "params", task.input_shape, task.num_classes))


def shrunk_start(space, baseline, max_params, task=None) -> tuple[str, ...]:
    """Where Model Search starts: the baseline with every block at the widest width of the space
    (no wider than the block's own) that fits the parameter cap; ``()`` where the space has no
    block widths (nb201, a network's own space) or nothing fits."""
    blocks = getattr(baseline, "blocks", None)
    widths = getattr(space, "widths", None)
    if max_params is None or not blocks or not widths:
        return ()
    for w in sorted(widths, reverse=True):
        arch = dataclasses.replace(baseline, blocks=tuple(
            dataclasses.replace(b, width=min(w, b.width)) for b in blocks))
        if param_count(space, arch, task) <= max_params:
            return (str(arch),)
    return ()


def live_proxies(space) -> tuple[str, ...]:
    """The space's default live proxies (:attr:`spaces.Space.live_proxies`) that are registered."""
    try:
        import proxies

        names = set(proxies.list_proxies())
    except (ImportError, AttributeError):
        return ()
    return tuple(n for n in space.live_proxies if n in names)


def warmup_options(seconds: float) -> dict:
    """The filter's supernet options: a warm-up capped at ``seconds`` (0: none), with the space's
    measured setting (:data:`prednas.supernet.WARMUP_DEFAULTS`) fitted to the cap."""
    if seconds <= 0:
        return {"supernet": None, "warmup_kwargs": None}
    return {"supernet": "auto", "warmup_kwargs": {"max_seconds": seconds, "progress": False}}


def default_mutator(space, baseline=None, max_params=None, task=None, *, start=None,
                    distribution=None, explore: float | None = None):
    """prednas's mutator when training: Model Search's start (``start``, else the shrunk
    baseline), 5 parents, 100 mutations a round, ``explore`` of each round's pool uniform
    samples of the space instead of mutations (the filter chooses among both; default
    :data:`EXPLORE` in a ``blocks1d`` space, where it was measured, else 0: a space generated
    from a user's network keeps its measured setting, ``benchmarks/byo-mnist1d.md``)."""
    from prednas.search.mutators import MutationMutator

    if start is None:
        start = () if baseline is None else shrunk_start(space, baseline, max_params, task)
    return MutationMutator(parents=5, mutations=100, start=tuple(start),
                           distribution=distribution,
                           explore=default_explore(space) if explore is None else float(explore))


def default_explore(space) -> float:
    """The mutator's default explore share in ``space``: :data:`EXPLORE` in a ``blocks1d``
    space, else 0."""
    return EXPLORE if getattr(space, "name", None) == "blocks1d" else 0.0


def default_prior(space):
    """The filter's default prior in ``space``: :data:`PRIOR` in a ``blocks1d`` space that holds
    enough of the table's architectures to learn it from (:func:`predictors.pretrain.table_prior`),
    else none."""
    if getattr(space, "name", None) != "blocks1d":
        return None
    from predictors.pretrain import MIN_PRIOR_ARCHS, TABLE_PRIOR_BENCH, table_in_space

    held = len(table_in_space(space, TABLE_PRIOR_BENCH)[1])
    return PRIOR if held >= MIN_PRIOR_ARCHS else None


def default_filter(space, *, simulated: bool = False, prior="auto", distribution=None,
                   warmup_seconds: float = 0.0, time_weight: float = 0.0):
    """prednas's filter when training (or simulating): the predictor without the NB201 proxy
    table, the space's live proxies (none in simulation), 6 survivors, fitted from 6 results;
    ``time_weight`` > 0 makes its proposals cost-aware (:class:`PredictorFilter`); ``prior``:
    ``"auto"`` (:func:`default_prior`), ``None`` (none), ``"table"`` or a predictor file."""
    from prednas.search.filters import PredictorFilter

    extra = {} if simulated else warmup_options(warmup_seconds)
    if prior == "auto":
        prior = default_prior(space)
    return PredictorFilter(proxy_table=None, live_proxies=() if simulated else live_proxies(space),
                           survivors=6, min_fit=6, prior=prior, distribution=distribution,
                           time_weight=float(time_weight), **extra)
