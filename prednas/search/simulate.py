"""Simulation mode: real-training behaviour replayed from a table of recorded runs.

A benchmark built with seeds and learning curves (``blocks1d-mnist1d-v2``) answers each
evaluation as one recorded training would: :class:`SimulatedEvaluator` draws one of the
architecture's recorded seeds (a different one each time the run evaluates it again, until they
run out), answers with that run's curve up to the steps asked, and charges the run's recorded
seconds, pro rata, to a :class:`SimClock` of ``workers`` simulated workers. The clock also
advances by the strategy's own time between evaluations (measured, or a fixed modelled cost per
decision when a run must be exactly reproducible from its seed), so a strategy's overhead costs
what it would cost in a real run, and ``max_seconds`` is simulated time.

>>> search = prednas.Search(space, oracle="blocks1d-mnist1d-v2", simulate=True, max_seconds=360)

Like Syne Tune's simulator backend over tabulated learning curves; the table (its seeds, curves
and timings) is the ground truth, so strategies can be compared over many seeds in minutes.
"""

from __future__ import annotations

import heapq
import math
import zlib
from typing import Any

import numpy as np

from prednas.errors import InvalidParameterError
from prednas.params import Interval, Options
from prednas.search.base import Evaluator
from prednas.search.registries import register_evaluator

__all__ = ["SimulatedEvaluator", "SimClock", "check_simulable", "recorded_runs",
           "measure_time_scale", "NB201_EPOCH_SECONDS"]

#: NAS-Bench-201's modelled cost (our copy has no training times): seconds per CIFAR-10 epoch
#: ``a + b * MFLOPs`` of the cell network (FLOPs as prednas counts them, 2 per multiply-add: a
#: fixed cost for data loading and the optimiser, the rest proportional to the forward FLOPs),
#: about 5 s for the cheapest cell and 26 s for the most expensive; a modelling assumption, not
#: a measurement
NB201_EPOCH_SECONDS = (4.0, 0.05)


class _TableRuns:
    """A table with per-seed runs and learning curves (``blocks1d-mnist1d-v2``)."""

    def __init__(self, bench):
        train = bench.recipe.get("train", {})
        self.name, self.bench = bench.name, bench
        self.total_steps = int(train.get("steps", 0))
        every = int(train.get("curve_every", 0) or self.total_steps)
        self.fidelities = sorted({*range(every, self.total_steps + 1, every), self.total_steps})
        self.cost = "recorded"

    def runs(self, arch_str: str) -> list[dict]:
        return sorted(self.bench.seeds(arch_str), key=lambda r: int(r["seed"]))


class _NB201Runs:
    """NAS-Bench-201 on CIFAR-10 as one recorded run per cell with two fidelities: 12 epochs
    (``cifar10_valid_12ep``; test ``cifar10_test_12ep``) and 200 (our copy has no 200-epoch
    validation accuracy: ``cifar10_test_200ep`` answers both). One value per cell (the published
    figures), so a repeated evaluation returns the same run; seconds from the modelled cost
    :data:`NB201_EPOCH_SECONDS`."""

    def __init__(self, bench):
        self.name, self.bench = bench.name, bench
        self.total_steps, self.fidelities, self.cost = 200, [12, 200], "modelled"
        self._cache: dict[str, list[dict]] = {}

    def runs(self, arch_str: str) -> list[dict]:
        if arch_str not in self._cache:
            from prednas.search.evaluators import model_cost

            space = self.bench.space
            flops = model_cost(space, arch_str, "flops")
            per_epoch = NB201_EPOCH_SECONDS[0] + NB201_EPOCH_SECONDS[1] * flops / 1e6
            q = self.bench.query
            v12, v200 = q(arch_str, "cifar10_valid_12ep"), q(arch_str, "cifar10_test_200ep")
            self._cache[arch_str] = [{
                "seed": 0, "status": "ok", "reason": "", "steps": 200,
                "val_acc": v200, "test_acc": v200, "val_loss": None,
                "params": int(model_cost(space, arch_str, "params")), "flops": int(flops),
                "cpu_seconds": 200 * per_epoch, "train_seconds": 200 * per_epoch,
                "curve": {"step": [12, 200], "val_acc": [v12, v200], "val_loss": [None, None],
                          "test_acc": [q(arch_str, "cifar10_test_12ep"), v200],
                          "cpu": [12 * per_epoch, 200 * per_epoch],
                          "seconds": [12 * per_epoch, 200 * per_epoch]}}]
        return self._cache[arch_str]


def recorded_runs(bench):
    """What a simulation replays for ``bench`` (its per-seed runs and fidelities); refuses, with
    one line naming what is missing, a benchmark that has no runs to replay."""
    name = getattr(bench, "name", repr(bench))
    if callable(getattr(bench, "seeds", None)) and getattr(bench, "has_curves", False):
        return _TableRuns(bench)
    if name == "nb201":
        return _NB201Runs(bench)
    raise InvalidParameterError(
        f"simulation needs a benchmark with per-seed runs and learning curves; {name!r} has "
        "none (use blocks1d-mnist1d-v2, built by scripts/build_bench_blocks1d.py, or nb201)")


def check_simulable(bench, steps: int | None = None) -> None:
    """Refuse (one line naming what is missing) a benchmark without the recorded seeds and
    learning curves that simulation needs, or ``steps`` that its runs did not record."""
    src = recorded_runs(bench)
    if steps is not None and steps not in src.fidelities:
        raise InvalidParameterError(
            f"benchmark {src.name!r} recorded runs of {src.total_steps} steps with curve points "
            f"at {', '.join(map(str, src.fidelities))}; cannot simulate {steps} steps")


def measure_time_scale(benchmark: str = "blocks1d-mnist1d-v2", n: int = 48, workers: int = 2,
                       seed: int = 0, max_params: int | None = None) -> dict[str, Any]:
    """How fast this machine trains relative to the table's, measured the way a real search
    trains: a short real random search (``n`` candidates, seed ``seed``, the table's recipe and
    task, ``workers`` processes of one thread each, or in this process for ``0``; a parameter
    cap of ``max_params`` as a capped search has), each candidate's training seconds compared
    with the table's CPU seconds for the same architecture (the mean over its recorded seeds).

    Returns ``{"time_scale": ..., "runs": [...]}``: their seconds here over their table seconds,
    summed (the clock charges sums: a long run weighs what it costs), for
    :class:`SimulatedEvaluator`'s ``time_scale``; and each candidate's ``arch``, ``seed``,
    ``here`` and ``table`` seconds. The search's baseline is left out (its worker's first
    training pays one-time costs). About ``n`` trainings: a minute or two on two cores.

    Why a search and not the table's builder: what the simulator must reproduce is the seconds a
    real search's candidates cost, which include that search's own way of training (no learning
    curve for a full training, its evaluation, its processes): on an Intel Xeon (2 cores) the
    builder's trainings cost 0.633 of the table's seconds, two real searches' candidates 0.52 and
    0.57."""
    import tempfile

    from prednas import benchmarks
    from prednas.errors import check_param

    bench = benchmarks.load(benchmark) if isinstance(benchmark, str) else benchmark
    check_simulable(bench)
    if not isinstance(recorded_runs(bench), _TableRuns):
        raise InvalidParameterError(
            f"benchmark {bench.name!r} has no recorded training times to compare with")
    check_param("measure_time_scale", "n", n, low=1)
    check_param("measure_time_scale", "workers", workers, low=0)
    from prednas.search import PoolExecutor, TrainingEvaluator, random_search

    recipe = bench.recipe
    with tempfile.TemporaryDirectory() as tmp:
        result = random_search(
            bench.space, task=recipe["task"], task_options=recipe["task_options"],
            executor=PoolExecutor(workers=workers) if workers else None, ensembler=False,
            evaluator=TrainingEvaluator(steps=recipe["train"]["steps"], max_params=max_params,
                                        device="cpu"),
            max_params=max_params, budget=n, per_round=max(1, workers), seed=seed,
            run_dir=f"{tmp}/run").run()
    runs = []
    for r in result.records:
        table = [float(x["cpu_seconds"]) for x in bench.seeds(r.arch)
                 if x.get("status") == "ok" and x.get("cpu_seconds")]
        if r.get("kind") == "baseline" or r.get("status") != "ok" or not table:
            continue
        runs.append({"arch": r.arch, "seed": seed, "table": float(np.mean(table)),
                     "here": float(r.get("seconds"))})
    if not runs:
        raise RuntimeError("no candidate of the calibration search trained: "
                           + "; ".join({str(r.get("reason")) for r in result.records})[:300])
    ratio = sum(r["here"] for r in runs) / sum(r["table"] for r in runs)
    return {"time_scale": float(ratio), "runs": runs}


class SimClock:
    """A simulated wall clock with ``workers`` workers (list scheduling: a job starts when a
    worker is free, in the order it is submitted).

    ``now`` is the time at which the next decision is made; :meth:`charge` advances it by the
    strategy's own time; :meth:`start_batch` begins a batch of jobs at ``now`` and :meth:`place`
    schedules one job, returning its ``(start, end)``; :meth:`end_batch` waits for all of them.
    """

    def __init__(self, workers: int = 1, now: float = 0.0):
        self.workers = int(workers)
        self.now = float(now)
        self._free: list[float] = []

    def charge(self, seconds: float) -> None:
        self.now += max(0.0, float(seconds))

    def start_batch(self, done_ends: list[float] | None = None) -> None:
        """Begin a batch at ``now``; ``done_ends`` are the end times of jobs of this batch that
        were already placed (a resumed batch replays them)."""
        self._free = [self.now] * self.workers
        heapq.heapify(self._free)
        for end in done_ends or ():
            heapq.heapreplace(self._free, float(end))

    def place(self, seconds: float) -> tuple[float, float]:
        start = self._free[0]
        end = start + max(0.0, float(seconds))
        heapq.heapreplace(self._free, end)
        return start, end

    def end_batch(self) -> None:
        if self._free:
            self.now = max(self.now, max(self._free))
        self._free = []


@register_evaluator("simulate")
class SimulatedEvaluator(Evaluator):
    """Answers an evaluation with one recorded training of the architecture (simulation mode).

    The objective is the drawn run's validation accuracy (as :class:`TrainingEvaluator`'s is,
    with the same penalty above ``max_params``); at fewer steps than the table's recipe it is the
    run's curve point (validation accuracy on the curve's fixed subset), a real lower fidelity.
    Each record says it was simulated, which table seed answered (``table_seed``), whether the
    seeds had run out (``seed_reused``), and the seconds charged (``seconds``).

    Args:
        benchmark: a benchmark name (``None``: the search's ``oracle``).
        steps: training steps to simulate (``None``: the table's full recipe).
        workers: simulated workers evaluating candidates at once.
        decision_seconds: ``"measured"`` charges the strategy's measured time to the clock;
            a number charges that many seconds per decision (a round's planning, one
            scheduling decision), so that a run is exactly reproducible from its seed.
        max_params: parameter cap; candidates above it are penalised like in training mode.
        over_penalty: objective points lost per 1% over the cap.
        seconds: ``"cpu"`` charges each run's CPU seconds (one thread: the time on an idle core,
            robust to what else ran during the build), ``"wall"`` its wall seconds.
        time_scale: recorded seconds are multiplied by this before they are charged: the
            speed of the machine to simulate relative to the table's (0.75: a machine that trains
            in three quarters of the table's time; :func:`measure_time_scale` measures this
            one's). The strategy's own time is measured here and never scaled.
    """

    is_oracle = True
    simulated = True
    _parameter_constraints = {"benchmark": [None, str],
                              "steps": [None, Interval(int, 1, None)],
                              "workers": [Interval(int, 1, None)],
                              "decision_seconds": [Options("measured"),
                                                   Interval(float, 0, None)],
                              "max_params": [None, Interval(int, 1, None)],
                              "over_penalty": [Interval(float, 0, None)],
                              "seconds": [Options("cpu", "wall")],
                              "time_scale": [Interval(float, 0, 1000, closed="right")]}

    def __init__(self, benchmark: str | None = None, steps: int | None = None, workers: int = 1,
                 decision_seconds: str | float = "measured", max_params: int | None = None,
                 over_penalty: float = 0.2, seconds: str = "cpu", time_scale: float = 1.0):
        self.benchmark = benchmark
        self.steps = steps
        self.workers = workers
        self.decision_seconds = decision_seconds
        self.max_params = max_params
        self.over_penalty = over_penalty
        self.seconds = seconds
        self.time_scale = time_scale

    def setup(self, context) -> None:
        from prednas.search.evaluators import benchmark_of

        bench = benchmark_of(self, context)
        check_simulable(bench, self.steps)
        self.bench_ = bench
        self.runs_ = recorded_runs(bench)
        self.total_steps_ = self.runs_.total_steps
        self.steps_ = self.steps or self.total_steps_
        self.context_ = context
        self.run_seed_ = int(context.seed)

    # -- which recorded run answers ----------------------------------------------------------
    def draw(self, arch_str: str, k: int) -> tuple[dict, bool]:
        """The ``k``-th evaluation (0-based) of ``arch_str`` in this run: a seed not drawn before
        while any is left (a permutation of the recorded runs, from the run's seed), then draws
        with replacement. Returns the run's record and whether it had been drawn before."""
        runs = self.runs_.runs(arch_str)
        if not runs:
            raise InvalidParameterError(f"benchmark {self.bench_.name!r} has no run of {arch_str}")
        key = zlib.crc32(arch_str.encode())
        perm = np.random.default_rng([self.run_seed_, key]).permutation(len(runs))
        if k < len(runs):
            return runs[int(perm[k])], False
        j = int(np.random.default_rng([self.run_seed_, key, k]).integers(len(runs)))
        return runs[j], True

    def _times_evaluated(self, canonical: str) -> int:
        """Trainings of ``canonical`` begun so far in the run (a continued one is not new)."""
        return sum(1 for r in self.context_.get_records(kind=None)
                   if r.canonical == canonical and not r.get("continued"))

    def objective(self, val_acc: float, params: float) -> float:
        from prednas.search.evaluators import capped_objective

        return capped_objective(val_acc, params, self.max_params, self.over_penalty)

    supports_fidelity = True

    def full_steps(self, context=None) -> int | None:
        if self.steps is not None:
            return int(self.steps)
        bench = getattr(self, "bench_", None) or getattr(context, "oracle", None)
        return None if bench is None else int(recorded_runs(bench).total_steps)

    def _answer(self, run: dict, steps: int) -> dict[str, Any]:
        """The recorded ``run`` at ``steps``: its cumulative seconds, metrics and curve so far."""
        curve = run.get("curve") or {}
        sec_key, curve_key = ("cpu_seconds", "cpu") if self.seconds == "cpu" else (
            "train_seconds", "seconds")
        if steps >= self.total_steps_ and run.get("steps", 0) >= self.total_steps_:
            return {"cut": len(curve.get("step", ())), "steps": self.total_steps_,
                    "charged": float(run.get(sec_key, run.get("train_seconds", 0.0))),
                    "val_acc": float(run.get("val_acc", math.nan)),
                    "val_loss": run.get("val_loss"),
                    "test_acc": float(run.get("test_acc", math.nan))}
        steps_rec = list(curve.get("step", ()))
        cut = next((i + 1 for i, s in enumerate(steps_rec) if s >= steps), 0)
        if cut == 0 or steps_rec[cut - 1] != steps:  # a run that stopped earlier
            cut = len(steps_rec)
        return {"cut": cut, "steps": int(steps_rec[cut - 1]) if cut else 0,
                "charged": float(curve[curve_key][cut - 1]) if cut else 0.0,
                "val_acc": float(curve["val_acc"][cut - 1]) if cut else math.nan,
                "val_loss": curve["val_loss"][cut - 1] if cut else None,
                "test_acc": (float(curve["test_acc"][cut - 1]) if cut and "test_acc" in curve
                             else math.nan)}

    def _continued(self, arch_str: str, resume) -> tuple[dict | None, str | None]:
        """The paused run that ``resume`` (a checkpoint this evaluator wrote) continues, or
        ``(None, why not)``."""
        import json

        try:
            with open(resume, encoding="utf-8") as f:
                ck = json.load(f)
            if not isinstance(ck, dict) or ck.get("arch") != arch_str:
                raise ValueError("not this architecture's checkpoint")
            runs = [r for r in self.runs_.runs(arch_str) if int(r["seed"]) == int(ck["seed"])]
            if not runs:
                raise ValueError(f"the table has no seed {ck['seed']!r} of it")
            return {**runs[0], "_reused": bool(ck.get("seed_reused")),
                    "_from": float(ck["charged"])}, None
        except FileNotFoundError:
            return None, f"checkpoint {resume} is missing"
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return None, f"checkpoint {resume} cannot be read ({exc})"[:300]

    def evaluate(self, space, arch, *, seed, parent_state_path=None, save_path=None,
                 fidelity=None, checkpoint=None, resume=None):
        """One recorded training at ``fidelity`` steps (``None``: the evaluator's ``steps``).
        ``resume`` continues the run a checkpoint paused (the same table seed; only the seconds
        after the pause are charged); ``checkpoint`` is where a paused run says which it was."""
        arch_str = str(self.bench_.space.coerce(arch))
        canonical = str(space.canonical(space.coerce(arch)))
        target = int(fidelity) if fidelity is not None else self.steps_
        run, restarted, since = None, None, 0.0
        if resume is not None:
            run, restarted = self._continued(arch_str, resume)
        if run is not None:
            reused, since = run["_reused"], run["_from"]
        else:
            run, reused = self.draw(arch_str, self._times_evaluated(canonical))
        curve = run.get("curve") or {}
        a = self._answer(run, target)
        out: dict[str, Any] = {"simulated": True, "table_seed": int(run["seed"]),
                               "seed_reused": reused, "fidelity": a["steps"],
                               "params": run.get("params"), "flops": run.get("flops"),
                               "latency_ms": run.get("latency_ms"),
                               "curve": {k2: list(v[:a["cut"]]) for k2, v in curve.items()},
                               "seconds": self.time_scale * max(0.0, a["charged"] - since),
                               "steps": a["steps"]}
        if fidelity is not None:
            out["continued"] = resume is not None and restarted is None
            out["restarted"] = restarted
        if run.get("status") != "ok" or a["steps"] < target:  # the recorded failure, charged too
            status = run.get("status") if run.get("status") != "ok" else "failed"
            out.update(status=status or "failed", objective=math.nan,
                       reason=f"recorded run (table seed {run['seed']}) {status}: "
                              f"{run.get('reason', '')} (simulated)"[:500])
            return out
        if checkpoint is not None and a["steps"] < self.total_steps_:
            from prednas.utils import atomic_write_json

            atomic_write_json(checkpoint, {"arch": arch_str, "seed": int(run["seed"]),
                                           "seed_reused": bool(reused), "steps": a["steps"],
                                           "charged": a["charged"]})
        out.update(status="ok", reason="", val_acc=a["val_acc"], val_loss=a["val_loss"],
                   test_acc=a["test_acc"],
                   objective=self.objective(a["val_acc"], float(run.get("params") or 0)))
        return out
