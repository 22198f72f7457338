"""``prednas search``: run (or resume) an architecture search and write a run directory.

With no arguments: the ``blocks1d`` space on MNIST-1D, about five minutes on a 2-core CPU, a
hand-designed baseline trained in the same run, a 60% parameter cap, and a 2-replica ensemble.
With ``--model my_model.py:make_model``: the space of variants of the user's own network
(:func:`spaces.from_model`), that network as the baseline; ``--resume`` regenerates it.
"""

from __future__ import annotations

import logging
import os
import time

from prednas.commands import _model
from prednas.commands._common import add_device, add_seed, add_task

NAME = "search"
_OWNER = "prednas search"
HELP = "search architectures (default: blocks1d on MNIST-1D, ~5 min); --resume continues a run"
ORDER = 30

log = logging.getLogger(__name__)


def add_arguments(p) -> None:
    p.add_argument("--space", default=None,
                   help="search space (default blocks1d; the benchmark's space with --bench)")
    p.add_argument("--model", default=None, metavar="FILE.py:FUNCTION", help=_model.HELP)
    add_task(p, default=None)
    p.add_argument("--bench", default=None,
                   help="search a tabular benchmark instead of training (oracle mode), e.g. nb201")
    p.add_argument("--simulate", action="store_true",
                   help="with --bench blocks1d-mnist1d-v2: replay real training from the table's "
                        "recorded runs (one recorded seed per evaluation, its seconds charged to "
                        "a simulated clock of --workers workers; --max-minutes is simulated "
                        "time), with the same baseline, parameter cap, start and final pick as "
                        "a real run")
    p.add_argument("--decision-seconds", type=float, default=None, metavar="S",
                   help="with --simulate: charge S seconds per decision of the strategy instead "
                        "of its measured time (a run exactly reproducible from its seed)")
    p.add_argument("--time-scale", type=float, default=None, metavar="X",
                   help="with --simulate: charge X times the table's recorded training seconds "
                        "(a machine X times as slow as the table's; "
                        "prednas.search.simulate.measure_time_scale measures this one's)")
    p.add_argument("--metric", default=None,
                   help="benchmark metric to maximise (default: the benchmark's own, e.g. "
                        "cifar10_test_200ep for nb201, test_acc for blocks1d-mnist1d)")
    p.add_argument("--strategy", default="prednas",
                   help="prednas (default), modelsearch (Model Search's unfiltered mutation), "
                        "nsga2 (multi-objective baseline), random, rea, or stnas (the argmax and "
                        "most probable samples of an ST-NAS distribution learned on a supernet; "
                        "with --bench, --task names the data it trains on)")
    p.add_argument("--objectives", default=None, metavar="METRIC,COST[,COST...]",
                   help="multi-objective search: the metric to maximise first (a benchmark "
                        "metric, or val_acc when training), then costs to minimise: params, "
                        "flops, latency_ms (batch 1) and latency_batch_ms (batch "
                        "--latency-batch), measured on the search's device when training, or a "
                        "benchmark's cost column; keeps the Pareto front in pareto.jsonl")
    p.add_argument("--max-latency-ms", type=float, default=None,
                   help="constraint: candidates slower than this at batch 1 do not count")
    p.add_argument("--latency-batch", type=int, default=None, metavar="N",
                   help="the batch of the second latency figure, latency_batch_ms (default 64; "
                        "training only)")
    p.add_argument("--max-latency-batch-ms", type=float, default=None,
                   help="constraint: candidates slower than this at batch --latency-batch do "
                        "not count (training only)")
    p.add_argument("--budget", type=int, default=None,
                   help="fully evaluated candidates (queries with --bench; default 50 there); "
                        "when training, a search reproducible from its seed (default: search "
                        "for --max-minutes)")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="wall time of the search phase when training (simulated time with "
                        "--simulate); default 5, or a 20-minute guard with --budget")
    p.add_argument("--per-round", type=int, default=None, help="evaluations per round")
    p.add_argument("--steps", type=int, default=None,
                   help="training steps per candidate (default 300, the recipe of "
                        "blocks1d-mnist1d; with --simulate, the benchmark's full training: a "
                        "smaller recorded curve point simulates a partial training, e.g. 12 "
                        "epochs of nb201)")
    p.add_argument("--scheduler", choices=("none", "asha"), default="none",
                   help="asha: partial trainings: each candidate trains to the first of "
                        "--rungs, and only the top 1/--reduction-factor of each rung continue, "
                        "from their checkpoint, to the next (asynchronous successive halving; "
                        "--budget then counts full trainings' worth of steps). Default none: "
                        "every candidate trains fully")
    p.add_argument("--rungs", default=None, metavar="STEPS,STEPS,...",
                   help="with --scheduler asha: the steps of each rung, increasing, the last "
                        "the full training (default: a sixth, a third and all of --steps, "
                        "e.g. 50,100,300)")
    p.add_argument("--reduction-factor", type=float, default=None, metavar="ETA",
                   help="with --scheduler asha: promote the top 1/ETA of each rung (default 3)")
    p.add_argument("--rank-by", choices=("partial", "estimate"), default=None,
                   help="with --scheduler asha: rank a rung by the validation accuracy reached "
                        "there (partial, the default) or by that accuracy combined with the "
                        "filter's prediction of the full training (estimate)")
    p.add_argument("--race", type=float, default=None, metavar="SHARE",
                   help="keep this share of the budget (evaluations and time, 0 to 0.9) to "
                        "train the leaders again on new seeds until the best is separated; the "
                        "winner is always named by its noise-aware estimate (its trainings and "
                        "the filter's prediction), never by one lucky training. Default: 0.2 "
                        "for --strategy prednas when training or simulating without "
                        "--scheduler (measured: benchmarks/search-blocks1d-simulated.md), else 0")
    p.add_argument("--time-weight", type=float, default=0.0, metavar="BETA",
                   help="cost-aware proposals (the prednas strategy, training or --simulate): "
                        "rank candidates by the predictor's expected improvement per (predicted "
                        "training second, relative to the pool's median) ** BETA; seconds from "
                        "a model of the 1-D table's times calibrated by the run's trainings. "
                        "Default 0: time does not count")
    p.add_argument("--param-cap", type=float, default=0.6,
                   help="parameter cap as a fraction of the baseline's (default 0.6; 0 = none)")
    p.add_argument("--replicas", type=int, default=2, help="ensemble replicas of the winner (2)")
    p.add_argument("--top-k", type=int, default=1,
                   help="ensemble the replicas of the K best distinct architectures (default 1)")
    p.add_argument("--warmup-seconds", type=float, default=0.0,
                   help="wall-time cap of the supernet warm-up whose scores feed the filter "
                        "(the space's measured setting, its schedule fitted to the cap). "
                        "Default 0: off; on the 1-D benchmark its filter gain is smaller than "
                        "what the same time buys in trainings "
                        "(benchmarks/search-blocks1d-mnist1d-supernet.md)")
    p.add_argument("--prior", default=None, metavar="PREDICTOR_FILE",
                   help="transfer: a predictor saved by 'prednas pretrain' (another benchmark, "
                        "metric or task), or 'table' (one learned from the shipped 1-D table, "
                        "for a blocks1d space), that orders candidates before this search has "
                        "data and is blended in while its data are few; 'none': no prior. "
                        "Default: 'table' when training or simulating in a blocks1d space "
                        "(measured: benchmarks/search-mnist1d.md), else none")
    p.add_argument("--start", action="append", default=None, metavar="ARCH",
                   help="as Model Search starts: evaluate this architecture first (repeatable); "
                        "default for blocks1d: the baseline with its widths shrunk to fit the "
                        "parameter cap (it measured better: benchmarks/search-mnist1d.md)")
    p.add_argument("--explore", type=float, default=None, metavar="SHARE",
                   help="share of each round's candidates drawn uniformly from the space instead "
                        "of mutated from the leaders, for the filter to choose among (--strategy "
                        "prednas, training or --simulate; 0-1; default 0.3 in a blocks1d space, "
                        "measured: benchmarks/search-mnist1d.md; else 0)")
    p.add_argument("--no-start", action="store_true",
                   help="start from uniform samples ranked by the filter instead")
    p.add_argument("--guide", default=None, metavar="DISTRIBUTION_JSON",
                   help="draw mutations from an ST-NAS distribution instead of uniformly (e.g. "
                        "RUN_DIR/stnas/distribution.json of a --strategy stnas run; "
                        "--strategy prednas)")
    p.add_argument("--stnas-feature", default=None, metavar="DISTRIBUTION_JSON",
                   help="the filter's predictor also learns from each candidate's "
                        "log-probability under this ST-NAS distribution (--strategy prednas)")
    p.add_argument("--inherit", action="store_true",
                   help="children start from their parent's trained weights")
    p.add_argument("--executor", choices=("inprocess", "pool", "ray"), default=None,
                   help="where candidates are evaluated: in this process, a local process pool, "
                        "or a Ray cluster (pip install \"prednas[ray]\"); default: a pool when "
                        "--workers > 1; with --resume, replaces the run's executor")
    p.add_argument("--ray-address", default=None, metavar="ADDRESS",
                   help="the Ray cluster to join (auto: the one started on this machine with "
                        "'ray start --head'; host:port or ray://host:port); default: a local "
                        "Ray started for the search")
    p.add_argument("--workers", type=int, default=None,
                   help="evaluate this many candidates at once (pool or ray; default: one per "
                        "CPU core; with a Ray cluster, as many as its resources allow)")
    p.add_argument("--gpus-per-candidate", type=float, default=None, metavar="F",
                   help="with --executor ray: GPUs each evaluation asks Ray for; a fraction "
                        "shares a GPU (0.25: four candidates per GPU). Default: a local Ray on a "
                        "machine with CUDA shares its GPUs among the --workers (GPUs / workers, "
                        "at most 1), else 0 (CPU); with --ray-address, 0 unless given")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: fastest on a small, shared CPU)")
    add_seed(p)
    p.add_argument("--out", default=None, help="run directory (default runs/search-<time>)")
    add_device(p)
    p.add_argument("--resume", default=None, metavar="RUN_DIR",
                   help="continue the search saved in RUN_DIR (other options are ignored, but "
                        "--executor, --ray-address and --workers)")


def _limits(args, most: int | None = None) -> tuple[int, float]:
    """``(budget, max_seconds)`` of a training or simulated search (checked)."""
    from prednas.errors import check_param
    from prednas.search import defaults

    if args.max_minutes is not None:
        check_param(_OWNER, "--max-minutes", args.max_minutes, kind=(float, int), low=0,
                    low_open=True)
    return defaults.training_limits(args.budget, args.max_minutes, most)


def _build(args):
    import spaces
    from prednas import search as S
    from prednas.errors import InvalidParameterError, UnknownNameError, check_param
    from prednas.search import defaults

    if args.strategy not in S.STRATEGIES + ("stnas",):
        raise UnknownNameError("strategy", args.strategy, S.STRATEGIES + ("stnas",))
    if args.model and (args.space or args.bench):
        raise InvalidParameterError("give --model (variants of your network) or --space / "
                                    "--bench, not both")
    if (args.bench and (args.task or args.task_opt or args.task_path)
            and args.strategy not in ("stnas", "prednas")):
        raise InvalidParameterError(
            f"--strategy {args.strategy} with --bench does not use a task: give --task (train "
            "candidates) or --bench (benchmark lookups), not both (beside --bench, --task feeds "
            "the prednas filter's live proxies and warm-up, or the stnas supernet)")
    if args.bench and (args.task_opt or args.task_path) and not args.task:
        raise InvalidParameterError("--task-opt and --task-path go with --task")
    if args.scheduler != "none" and args.bench and not args.simulate:
        raise InvalidParameterError(f"--scheduler {args.scheduler} trains candidates partially: "
                                    "it goes with training or --simulate, not benchmark lookups")
    if args.budget is not None:
        check_param(_OWNER, "--budget", args.budget, low=1)
    if args.per_round is not None:  # 0 would silently mean the default below
        check_param(_OWNER, "--per-round", args.per_round, low=1)
    check_param(_OWNER, "--warmup-seconds", args.warmup_seconds, kind=(float, int), low=0)
    if args.explore is not None:
        check_param(_OWNER, "--explore", args.explore, kind=(float, int), low=0, high=1)
    for flag, value, what in (("--guide", args.guide, "its mutations"),
                              ("--explore", args.explore, "its mutator's pool"),
                              ("--stnas-feature", args.stnas_feature, "its filter")):
        if value is not None and args.strategy != "prednas":
            raise InvalidParameterError(f"{flag} goes with --strategy prednas ({what}), not "
                                        f"--strategy {args.strategy}")
    executor = _executor(args)  # first: a missing optional extra is reported before any work
    if args.prior == "table" and (args.model or not str(
            args.space or args.bench or "blocks1d").startswith("blocks1d")):
        raise InvalidParameterError(
            "--prior table is learned from the 1-D table's architectures: it goes with a "
            "blocks1d space (not --model or another --space/--bench)")
    if args.prior and args.prior not in ("table", "none") and not os.path.isfile(args.prior):
        from prednas.errors import DataNotFoundError

        raise DataNotFoundError(f"--prior {args.prior!r}: no such predictor file (write one with "
                                "'prednas pretrain ... --out FILE', or say --prior table)")
    out = args.out or f"runs/search-{time.strftime('%Y%m%d-%H%M%S')}"
    if args.model and isinstance(executor, S.PoolExecutor):
        # spawned workers cannot import the user's module: fork them, or stay in this process
        executor = (S.PoolExecutor(workers=args.workers, start_method="fork")
                    if _model.fork_ok() else None)
    if args.race is not None:
        check_param(_OWNER, "--race", args.race, kind=(float, int), low=0, high=0.9)
    check_param(_OWNER, "--time-weight", args.time_weight, kind=(float, int), low=0, high=10)
    if args.time_weight and (args.strategy != "prednas" or (args.bench and not args.simulate)):
        raise InvalidParameterError(
            "--time-weight ranks the prednas filter's proposals by their training time: it goes "
            "with --strategy prednas, training or --simulate (a lookup trains nothing)")
    if args.race and args.bench and not args.simulate:
        raise InvalidParameterError("--race trains the leaders again: it goes with training or "
                                    "--simulate, not benchmark lookups (a table has no noise)")
    common = dict(budget=args.budget, seed=args.seed, run_dir=out, executor=executor,
                  device=args.device, progress=True, per_round=args.per_round, race=args.race)
    if args.objectives:
        common["objectives"] = [o.strip() for o in args.objectives.split(",") if o.strip()]
    constraints = {}
    for flag, cost in (("--max-latency-ms", "latency_ms"),
                       ("--max-latency-batch-ms", "latency_batch_ms")):
        bound = getattr(args, flag[2:].replace("-", "_"))
        if bound is not None:
            check_param(_OWNER, flag, bound, kind=(float, int), low=0, low_open=True)
            constraints[cost] = float(bound)
    if constraints:
        common["constraints"] = constraints
    if args.latency_batch is not None:
        check_param(_OWNER, "--latency-batch", args.latency_batch, low=1)
        if args.bench:
            raise InvalidParameterError("--latency-batch goes with training (--task); a "
                                        "benchmark's latency column is what it measured")
    if args.simulate or args.decision_seconds is not None or args.time_scale is not None:
        return _simulated(args, executor, common)
    if args.bench:
        from prednas import benchmarks

        bench = benchmarks.load(args.bench)
        space = spaces.get(args.space) if args.space else bench.space
        common.update(oracle=bench, metric=args.metric)
        if args.objectives and args.metric is None:
            common.pop("metric")
        if args.strategy == "stnas":  # the supernet trains on --task, the benchmark answers
            from prednas.commands._common import task_options

            best: dict = {}
            if space.name == "nb201":  # the best measured setting (benchmarks/stnas-nb201.md):
                from prednas.supernet import warmup_defaults  # prednas.warmup's own warm-up,

                w = warmup_defaults(space)  # then 1,000 steps at alpha lr 0.05
                best = {"warmup_steps": w["steps"], "sampling": w["sampling"],
                        "paths_per_step": w["paths_per_step"], "fraction": w["fraction"],
                        "resolution": w["resolution"], "supernet": w["supernet"],
                        "search_steps": 1000}
            mut = S.STNASMutator(samples=max(10, args.per_round or 5), task=args.task,
                                 task_options=task_options(args) if args.task else None, **best)
            return S.Search(space, mutator=mut, filter=S.NoFilter(), **common)
        if args.strategy == "prednas":
            flt_kw: dict = {"prior": args.prior} if args.prior not in (None, "none") else {}
            if args.stnas_feature:
                flt_kw["distribution"] = args.stnas_feature
            if args.task:  # the task feeds the filter's live proxies and its warm-up
                from prednas.commands._common import task_options
                from prednas.search.defaults import live_proxies, warmup_options

                flt_kw.update(task=args.task, task_options=task_options(args),
                              live_proxies=live_proxies(space),
                              **warmup_options(args.warmup_seconds))
            if flt_kw:
                common["filter"] = S.PredictorFilter(**flt_kw)
            if args.guide:
                common["mutator"] = S.MutationMutator(distribution=args.guide)
            return S.Search(space, **common)
    else:
        from prednas import tasks
        from prednas.commands._common import task_options

        args.task = args.task or "mnist1d"
        opts = defaults.task_options(args.task, task_options(args))  # the table's splits
        task = tasks.get(args.task, **opts)
        if args.model:
            space = _model.space_from_spec(args.model, task)
            common["notes"] = {"model": _model.model_notes(args.model, space)}
            print(space.describe())
        else:
            space = spaces.get(args.space or "blocks1d")
        baseline = space.default_arch()
        max_params = None
        if args.param_cap:
            check_param(_OWNER, "--param-cap", args.param_cap, kind=(float, int), low=0,
                        low_open=True, high=10)
            model = space.build(baseline, task.num_classes, task.input_shape)
            max_params = int(args.param_cap * sum(p.numel() for p in model.parameters()))
        args.steps = 300 if args.steps is None else args.steps
        check_param(_OWNER, "--steps", args.steps, low=1)
        check_param(_OWNER, "--top-k", args.top_k, low=1)
        check_param(_OWNER, "--replicas", args.replicas, low=0)
        budget, max_seconds = _limits(args)
        evaluator = S.TrainingEvaluator(steps=args.steps, inherit=args.inherit,
                                        max_params=max_params, device=args.device,
                                        **({} if args.latency_batch is None else
                                           {"latency_batch": args.latency_batch}))
        common.update(task=args.task, task_options=opts, scheduler=_scheduler(args, args.steps),
                      evaluator=evaluator, baseline=baseline, max_params=max_params,
                      max_seconds=max_seconds,
                      ensembler=(S.ReplicaEnsembler(args.replicas, top_k=args.top_k)
                                 if args.replicas else False))
        common["budget"] = budget
        common["per_round"] = args.per_round or max(2, args.workers or 1)
        if args.strategy == "stnas":
            mut = S.STNASMutator(samples=max(10, common["per_round"]))
            return S.Search(space, mutator=mut, filter=S.NoFilter(), **common)
        if args.strategy == "prednas":
            common["race"] = _race(args, common["scheduler"])
            flt = defaults.default_filter(space, prior=_prior(args),
                                          distribution=args.stnas_feature,
                                          warmup_seconds=args.warmup_seconds,
                                          time_weight=args.time_weight)
            return S.Search(space, mutator=_mutator(args, space, baseline, max_params, task),
                            filter=flt, **common)
    return _baseline_strategy(args, space, common)


def _prior(args):
    """The filter's prior from ``--prior``: the default's (``"auto"``), none, or as given."""
    return "auto" if args.prior is None else None if args.prior == "none" else args.prior


def _mutator(args, space, baseline, max_params, task):
    """prednas's mutator: Model Search's start (``--start``, else the shrunk baseline)."""
    from prednas.search.defaults import default_mutator

    start = (tuple(str(space.coerce(a)) for a in args.start) if args.start
             else () if args.no_start else None)
    return default_mutator(space, baseline, max_params, task, start=start,
                           distribution=args.guide, explore=args.explore)


def _simulated(args, executor, common):
    """``--simulate``: the training-mode search (baseline, cap, start, final pick) replayed from
    a benchmark's recorded runs on a simulated clock."""
    from prednas import benchmarks
    from prednas import search as S
    from prednas.errors import InvalidParameterError, check_param
    from prednas.search import defaults
    from prednas.search.simulate import check_simulable

    if not args.simulate:
        flag = "--decision-seconds" if args.decision_seconds is not None else "--time-scale"
        raise InvalidParameterError(f"{flag} goes with --simulate")
    if not args.bench:
        raise InvalidParameterError("--simulate needs --bench, a benchmark with recorded seeds "
                                    "and learning curves (blocks1d-mnist1d-v2)")
    if args.task or args.task_opt or args.task_path or args.model:
        raise InvalidParameterError("--simulate replays the benchmark's own training; it takes "
                                    "no --task, --task-opt, --task-path or --model")
    if args.executor not in (None, "inprocess") or args.ray_address is not None:
        raise InvalidParameterError("--simulate evaluates in this process; its --workers are "
                                    "simulated (no --executor or --ray-address)")
    if args.objectives or args.strategy in ("stnas", "nsga2"):
        raise InvalidParameterError(f"--simulate runs single-objective searches (--strategy "
                                    f"prednas, modelsearch, random or rea); got "
                                    f"{args.strategy}{' with --objectives' if args.objectives else ''}")
    if args.decision_seconds is not None:
        check_param(_OWNER, "--decision-seconds", args.decision_seconds, kind=(float, int), low=0)
    if args.time_scale is not None:
        check_param(_OWNER, "--time-scale", args.time_scale, kind=(float, int), low=0,
                    low_open=True, high=1000)
    bench = benchmarks.load(args.bench)
    check_simulable(bench, args.steps)
    space = bench.space
    baseline = space.default_arch()
    max_params = None
    if args.param_cap:
        check_param(_OWNER, "--param-cap", args.param_cap, kind=(float, int), low=0,
                    low_open=True, high=10)
        max_params = int(args.param_cap * defaults.param_count(space, baseline))
    budget, max_seconds = _limits(args, most=len(bench))
    workers = args.workers or max(1, min(os.cpu_count() or 1, 8))
    evaluator = S.SimulatedEvaluator(
        steps=args.steps, workers=workers, max_params=max_params,
        decision_seconds="measured" if args.decision_seconds is None else float(args.decision_seconds),
        time_scale=1.0 if args.time_scale is None else float(args.time_scale))
    from prednas.search.simulate import recorded_runs

    common.update(oracle=bench, simulate=True, evaluator=evaluator, baseline=baseline,
                  scheduler=_scheduler(args, args.steps or recorded_runs(bench).total_steps),
                  max_params=max_params, max_seconds=max_seconds, executor=None,
                  budget=budget, per_round=args.per_round or max(2, workers))
    common.pop("metric", None)
    if args.strategy == "prednas":
        common["race"] = _race(args, common["scheduler"])
        return S.Search(space, mutator=_mutator(args, space, baseline, max_params, None),
                        filter=defaults.default_filter(space, simulated=True, prior=_prior(args),
                                                       time_weight=args.time_weight),
                        **common)
    return _baseline_strategy(args, space, common)


def _race(args, scheduler) -> float:
    """prednas's race share: ``--race``, else the library's default when every candidate trains
    fully (:data:`prednas.search.defaults.RACE`; none under a scheduler), as
    ``prednas.Search`` decides it."""
    from prednas.search import defaults

    if args.race is not None:
        return float(args.race)
    return defaults.RACE if scheduler is None else 0.0


def _scheduler(args, steps: int | None):
    """The scheduler of ``--scheduler`` (``None``: every candidate trains fully), checked."""
    from prednas import search as S
    from prednas.errors import InvalidParameterError

    if args.scheduler == "none":
        if args.rungs is not None or args.reduction_factor is not None or args.rank_by:
            raise InvalidParameterError("--rungs, --reduction-factor and --rank-by go with "
                                        "--scheduler asha")
        return None
    if args.rungs is not None:
        try:
            rungs = tuple(int(x) for x in args.rungs.split(","))
        except ValueError:
            raise InvalidParameterError(
                f"--rungs must be steps separated by commas, e.g. 50,100,300. Got "
                f"{args.rungs!r} instead.") from None
    elif steps is None:
        raise InvalidParameterError("--scheduler asha needs --rungs here (the training has no "
                                    "steps to derive them from)")
    else:
        rungs = (max(1, steps // 6), max(2, steps // 3), steps)
    kw: dict = {} if args.reduction_factor is None else {"reduction_factor": args.reduction_factor}
    if args.rank_by:
        kw["rank_by"] = args.rank_by
    return S.ASHAScheduler(rungs=rungs, **kw)


def _baseline_strategy(args, space, common):
    from prednas import search as S

    if args.strategy == "random":
        return S.random_search(space, **common)
    if args.strategy == "modelsearch":
        return S.model_search(space, **common)
    if args.strategy == "nsga2":
        return S.nsga2(space, **common)
    return S.regularized_evolution(space, **common)


def _executor(args):
    """The executor the options ask for (``None``: the search's default, in this process);
    ``args.workers`` is set to the number of candidates evaluated at once."""
    from prednas import search as S
    from prednas.errors import InvalidParameterError, check_param

    kind = args.executor
    if args.ray_address is not None:
        if kind not in (None, "ray"):
            raise InvalidParameterError(f"--ray-address goes with --executor ray, not {kind}")
        kind = "ray"
    if args.workers is not None:
        check_param(_OWNER, "--workers", args.workers, low=1)
    gpus = getattr(args, "gpus_per_candidate", None)
    if gpus is not None:
        check_param(_OWNER, "--gpus-per-candidate", gpus, kind=(float, int), low=0)
        if kind != "ray":
            raise InvalidParameterError(
                f"--gpus-per-candidate goes with --executor ray (Ray's GPU shares), not "
                f"{kind or 'the default executor'}; the pool and in-process executors use the "
                "GPU given by --device")
    if kind == "ray":  # a cluster decides how many run at once unless --workers says
        if args.workers is None and args.ray_address is None:
            args.workers = os.cpu_count() or 1
        if gpus is None:
            gpus = _default_gpu_share(args)
        elif gpus > 0 and args.ray_address is None:
            import torch

            if not torch.cuda.is_available():  # a local Ray has the GPUs torch sees here
                raise InvalidParameterError(
                    f"--gpus-per-candidate {gpus:g}: this machine has no CUDA GPU for the local "
                    "Ray; use --gpus-per-candidate 0 (train on the CPU) or join a cluster with "
                    "GPUs (--ray-address)")
        return S.RayExecutor(address=args.ray_address, workers=args.workers,
                             num_gpus=float(gpus))
    if args.workers is None:  # training: one worker per core; lookups: in this process
        cores = max(1, min(os.cpu_count() or 1, 8))
        args.workers = cores if kind == "pool" or not (kind or args.bench) else 1
    if kind == "inprocess" or (kind is None and args.workers == 1):
        return S.InProcessExecutor() if kind else None
    return S.PoolExecutor(workers=args.workers)


def _default_gpu_share(args) -> float:
    """A local Ray on a machine with CUDA (and a device that allows it) shares the GPUs among the
    candidates evaluated at once; lookups, a CPU device or a cluster (whose nodes this machine
    cannot see) ask for none."""
    if args.ray_address is not None or args.bench or getattr(args, "device", "auto") == "cpu":
        return 0.0
    import torch

    if not torch.cuda.is_available():
        return 0.0
    return min(1.0, torch.cuda.device_count() / max(1, args.workers or 1))


def _in_process():
    from prednas.search import InProcessExecutor

    return InProcessExecutor()


def _resume(run_dir, overrides):
    """``Search.resume``, with the space regenerated from the run's ``--model`` network."""
    from prednas.search import Search

    space = _model.space_of_run(run_dir)
    if space is not None:
        overrides["space"] = space
    return Search.resume(run_dir, progress=True, **overrides)


def run(args) -> int:
    import torch

    from prednas.errors import check_param

    check_param(_OWNER, "--threads", args.threads, low=0)  # 0: torch's own default
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    if args.resume:
        overrides = {}
        if args.executor or args.ray_address is not None or args.workers is not None:
            overrides["executor"] = _executor(args) or _in_process()
        search = _resume(args.resume, overrides)
    else:
        search = _build(args)
    print(f"run directory: {search.run_dir}")
    try:
        result = search.run()
    except KeyboardInterrupt:
        print(f"\ninterrupted; continue with: prednas search --resume {search.run_dir}")
        return 130
    best = result.best
    if best is None:
        print("no candidate was evaluated successfully")
        return 1
    if search.constraints:
        from prednas.search.pareto import feasible

        if not feasible(result.records, search.constraints):
            bounds = ", ".join(f"{k} <= {v:g}" for k, v in search.constraints.items())
            print(f"no candidate met the constraints ({bounds}): pareto.jsonl is empty, and "
                  "the best below (and its ensemble) ignore them")
    if search.evaluator.is_oracle:
        print(f"best: {best.arch}  {search.metric} {best.objective:.4f} "
              f"(query {best.query + 1} of {len(result.records)})")
    else:
        print(f"best: {best.arch}  val {best.get('val_acc', float('nan')):.2f}%  test "
              f"{best.get('test_acc', float('nan')):.2f}%  params {best.get('params', 0):,}")
        if result.baseline is not None and result.baseline.ok:
            b = result.baseline
            print(f"baseline: {b.arch}  test {b.get('test_acc'):.2f}%  params "
                  f"{b.get('params'):,}")
        if result.ensemble and result.ensemble.get("path"):
            e = result.ensemble
            print(f"ensemble of {len(e['archs'])}: test {e['test_acc']:.2f}% "
                  f"({e['gain']:+.2f} over the single model) -> {e['path']}")
        elif result.ensemble and result.ensemble.get("status") == "failed":
            print(f"ensemble: not built ({result.ensemble.get('reason')})")
    print(f"report: {result.run_dir / 'report.md'}")
    return 0
