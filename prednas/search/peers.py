"""The peers practitioners run, on the simulated clock, through one evaluation function.

Syne Tune's simulator backend, for prednas's tables: :class:`SimulatedTraining` is the one
evaluation function (trial ``k`` of an architecture replays one recorded run, the ``k``-th drawn
from the run's seed, as :class:`~prednas.search.simulate.SimulatedEvaluator` draws them; a trial
continued to a later rung continues the same run), and :func:`simulate_method` runs a method on
``workers`` simulated workers as a discrete-event simulation: every learning-curve checkpoint a
running trial passes is an event in time order, so a pruner or scheduler decides with what other
trials had reported by then, and the method's own time (measured, or a fixed cost per decision)
advances the clock like the trainings do.

Methods (each ``Method.name``): ``random`` (uniform samples, full training), ``asha`` (uniform
samples under :class:`~prednas.search.schedulers.ASHAScheduler`, promotions continue from the
checkpoint), ``tpe`` (Optuna's TPE on a define-by-run encoding: depth, then op and width per
block), ``tpe-hyperband`` (the same with Optuna's ``HyperbandPruner``, the curve's checkpoints as
intermediate values). A method's pick is its best validation accuracy among full trainings.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from prednas.errors import InvalidParameterError, check_param
from prednas.search.simulate import recorded_runs

__all__ = ["SimulatedTraining", "RealTraining", "Trial", "simulate_method", "train_method",
           "PEERS", "RandomMethod", "ASHAMethod", "TPEMethod", "suggest_blocks1d", "incumbents",
           "trial_incumbents"]


@dataclass
class Trial:
    """One candidate's training in a simulation: its recorded run and how far it got."""

    key: int
    arch: str
    run: dict
    steps: int = 0
    status: str = "running"  # running, paused, stopped, done, failed, rejected
    values: dict[int, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    #: the simulated machine's speed relative to the table's (recorded seconds times this)
    time_scale: float = 1.0

    def point(self, step: int) -> tuple[float, float]:
        """``(validation accuracy, seconds)`` of the run at ``step`` (the full training's own
        validation accuracy and seconds at its last step), seconds times ``time_scale``."""
        c = self.run.get("curve", {})
        steps = c.get("step", [])
        if step >= int(self.run.get("steps", 0)) and self.run.get("status") == "ok":
            return float(self.run["val_acc"]), self.time_scale * float(
                self.run.get("cpu_seconds", self.run["train_seconds"]))
        i = steps.index(step)
        return float(c["val_acc"][i]), self.time_scale * float(
            c["cpu"][i] if "cpu" in c else c["seconds"][i])


class SimulatedTraining:
    """The evaluation function every simulated method calls."""

    def __init__(self, bench, seed: int = 0, max_params: int | None = None,
                 time_scale: float = 1.0):
        self.bench, self.seed, self.max_params = bench, int(seed), max_params
        self.time_scale = float(time_scale)
        self.src = recorded_runs(bench)
        self.total_steps = self.src.total_steps
        self.fidelities = list(self.src.fidelities)
        self._draws: Counter = Counter()
        self._keys = itertools.count()

    def params(self, arch: str) -> float:
        runs = self.src.runs(arch)
        return float(runs[0].get("params") or 0) if runs else math.nan

    def start(self, arch: str) -> Trial:
        """A new trial of ``arch``: the next recorded seed not yet drawn for it (then with
        replacement)."""
        arch = str(self.bench.space.coerce(arch))
        runs = self.src.runs(arch)
        k = self._draws[arch]
        self._draws[arch] += 1
        h = zlib.crc32(arch.encode())
        if k < len(runs):
            run = runs[int(np.random.default_rng([self.seed, h]).permutation(len(runs))[k])]
        else:
            run = runs[int(np.random.default_rng([self.seed, h, k]).integers(len(runs)))]
        return Trial(next(self._keys), arch, run, time_scale=self.time_scale)

    def checkpoints(self, trial: Trial, stop: int) -> list[int]:
        """The curve points a trial passes from where it is to ``stop`` (the run's own failure
        ends them early)."""
        c = trial.run.get("curve", {}).get("step", [])
        pts = [s for s in self.fidelities if trial.steps < s <= stop]
        if trial.run.get("status") != "ok":
            pts = [s for s in pts if s in c]
        return pts


class Method:
    """A search method in the event simulation: ``next_job`` when a worker is free, ``on_point``
    at each checkpoint a running trial passes (``False`` stops it), ``on_end`` when a job ends."""

    name = ""

    def setup(self, sim: SimulatedTraining, rng: np.random.Generator) -> None:
        self.sim, self.rng = sim, rng
        self.seen: set[str] = set()

    def next_job(self) -> tuple[Trial, int] | None:
        """The trial to run (new, or a paused one) and the step to train it to."""
        raise NotImplementedError

    def on_point(self, trial: Trial, step: int, value: float) -> bool:
        return True

    def on_end(self, trial: Trial) -> None:
        pass

    def _sample(self) -> str | None:
        """A uniform architecture of the space not tried before and within the cap."""
        space = self.sim.bench.space
        for _ in range(1000):
            a = str(space.canonical(space.sample(self.rng)))
            if a in self.seen:
                continue
            self.seen.add(a)
            if self.sim.max_params is None or self.sim.params(a) <= self.sim.max_params:
                return a
        return None


class RandomMethod(Method):
    name = "random"

    def next_job(self):
        a = self._sample()
        return None if a is None else (self.sim.start(a), self.sim.total_steps)


class ASHAMethod(Method):
    """Random search under asynchronous successive halving (promotion type)."""

    name = "asha"

    def __init__(self, rungs: tuple[int, ...] = (50, 100, 300), reduction_factor: float = 3):
        from prednas.search.schedulers import ASHAScheduler

        self.scheduler = ASHAScheduler(rungs, reduction_factor)
        self.trials: dict[str, Trial] = {}

    def setup(self, sim, rng):
        super().setup(sim, rng)
        bad = [r for r in self.scheduler.rungs if r not in sim.fidelities]
        if bad:
            raise InvalidParameterError(
                f"ASHA rungs {bad} are not curve points of the table "
                f"({', '.join(map(str, sim.fidelities))})")

    def next_job(self):
        d = self.scheduler.suggest()
        if d.action == "promote":
            t = self.trials[str(d.trial)]
            t.extra["rung"] = d.rung
            return t, d.steps
        a = self._sample()
        if a is None:
            return None
        t = self.sim.start(a)
        t.extra["rung"] = 0
        self.trials[str(t.key)] = t
        return t, d.steps

    def on_end(self, trial):
        value = trial.values.get(trial.steps, math.nan) if trial.status != "failed" else math.nan
        self.scheduler.on_result(str(trial.key), trial.extra["rung"], value)


def suggest_blocks1d(trial, space) -> str:
    """Optuna's define-by-run encoding of a ``blocks1d`` space: depth, then op and width per
    block (the parameter names of :meth:`spaces.Blocks1DSpace.to_optuna`)."""
    depth = trial.suggest_int("depth", space.min_blocks, space.max_blocks)
    return "|".join(f"{trial.suggest_categorical(f'op_{i}', list(space.ops))}:"
                    f"{trial.suggest_categorical(f'width_{i}', list(space.widths))}"
                    for i in range(1, depth + 1))


class TPEMethod(Method):
    """Optuna's TPE (ask/tell), optionally with its HyperbandPruner on the curve's checkpoints.

    The parameter cap is a constraint, as Optuna handles one (constrained TPE,
    ``Trial.set_constraint``): an architecture over the cap is told at once, without training or
    cost, with the worst value and its excess over the cap, so TPE learns where the cap lies
    instead of asking for such architectures again and again."""

    def __init__(self, hyperband: bool = False, min_resource: int = 25,
                 reduction_factor: int = 3):
        self.hyperband, self.min_resource = hyperband, min_resource
        self.reduction_factor = reduction_factor
        self.name = "tpe-hyperband" if hyperband else "tpe"

    def setup(self, sim, rng):
        import optuna

        super().setup(sim, rng)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        pruner = (optuna.pruners.HyperbandPruner(self.min_resource, sim.total_steps,
                                                 self.reduction_factor)
                  if self.hyperband else optuna.pruners.NopPruner())
        # a fixed study name: Hyperband's bracket of a trial hashes it (reproducible runs)
        self.study = optuna.create_study(
            direction="maximize", pruner=pruner, study_name=f"prednas-{self.name}",
            sampler=optuna.samplers.TPESampler(seed=int(rng.integers(2 ** 31))))
        self.otrials: dict[int, Any] = {}

    def next_job(self):

        space, cap = self.sim.bench.space, self.sim.max_params
        for _ in range(1000):
            ot = self.study.ask()
            arch = str(space.canonical(space.coerce(suggest_blocks1d(ot, space))))
            over = 0.0 if cap is None else self.sim.params(arch) / cap - 1.0
            ot.set_constraint("over_cap", over)  # feasible at <= 0
            if over > 0:  # over the cap: told at once, no training, no cost
                self.study.tell(ot, 0.0)
                continue
            t = self.sim.start(arch)
            self.otrials[t.key] = ot
            return t, self.sim.total_steps
        return None

    def on_point(self, trial, step, value):
        if not self.hyperband or step >= self.sim.total_steps:
            return True
        ot = self.otrials[trial.key]
        ot.report(value, step)
        return not ot.should_prune()

    def on_end(self, trial):
        import optuna

        ot = self.otrials.pop(trial.key)
        if trial.status == "done":
            self.study.tell(ot, trial.values[trial.steps])
        elif trial.status == "stopped":
            self.study.tell(ot, state=optuna.trial.TrialState.PRUNED)
        else:
            self.study.tell(ot, state=optuna.trial.TrialState.FAIL)


#: the peers by name (constructors)
PEERS = {"random": RandomMethod, "asha": ASHAMethod, "tpe": TPEMethod,
         "tpe-hyperband": lambda **kw: TPEMethod(hyperband=True, **kw)}


def simulate_method(method: Method, bench, *, seed: int = 0, workers: int = 2,
                    max_seconds: float = 360.0, max_params: int | None = None,
                    decision_seconds: float | str = "measured", time_scale: float = 1.0) -> dict:
    """Run ``method`` on ``workers`` simulated workers for ``max_seconds`` of simulated time
    (recorded seconds times ``time_scale``, as :class:`~prednas.search.SimulatedEvaluator`'s).

    Returns ``{"pick": arch, "pick_val": val_acc, "trials": [...], "seconds": simulated end,
    "evaluations": full trainings, "jobs": jobs started}``; the pick is the best validation
    accuracy among full trainings.
    """
    check_param("simulate_method", "time_scale", time_scale, kind=float, low=0, low_open=True,
                high=1000)
    sim = SimulatedTraining(bench, seed, max_params, time_scale)
    method.setup(sim, np.random.default_rng([seed, 7]))
    now = 0.0
    events: list[tuple[float, int, int]] = []  # (time, order, trial key)
    running: dict[int, tuple[Trial, int, float, list[int]]] = {}  # key -> trial, stop, t0, pts
    free, order, jobs = workers, itertools.count(), 0
    trials: dict[int, Trial] = {}

    def charge(t0: float) -> None:
        nonlocal now
        now += (time.perf_counter() - t0 if decision_seconds == "measured"
                else float(decision_seconds))

    def launch() -> bool:
        nonlocal free, jobs
        t0 = time.perf_counter()
        job = method.next_job()
        charge(t0)
        if job is None:
            return False
        trial, stop = job
        trials[trial.key] = trial
        pts = sim.checkpoints(trial, stop)
        base = trial.point(trial.steps)[1] if trial.steps else 0.0
        trial.status = "running"
        trial.extra.setdefault("jobs", []).append([now, None])
        running[trial.key] = (trial, stop, now - base, pts)
        free -= 1
        jobs += 1
        if pts:
            heapq.heappush(events, (now - base + trial.point(pts[0])[1], next(order), trial.key))
        else:  # a recorded failure before any checkpoint: it costs its recorded time
            heapq.heappush(events, (now + trial.time_scale * float(
                trial.run.get("cpu_seconds", 0.0)), next(order), trial.key))
        return True

    while True:
        while free > 0 and now < max_seconds:
            if not launch():
                break
        if not events:
            break
        t_event, _, key = heapq.heappop(events)
        now = max(now, t_event)
        trial, stop, t_start, pts = running[key]
        if not pts:  # a failure that recorded no point
            trial.status = "failed"
            end = True
        else:
            step = pts.pop(0)
            value, _ = trial.point(step)
            trial.steps, trial.values[step] = step, value
            t0 = time.perf_counter()
            go_on = method.on_point(trial, step, value)
            charge(t0)
            failed = trial.run.get("status") != "ok" and not pts and step < sim.total_steps
            end = failed or not go_on or not pts
            if failed:
                trial.status = "failed"
            elif not go_on:
                trial.status = "stopped"
            elif not pts:
                trial.status = "done" if step >= sim.total_steps else "paused"
            else:
                heapq.heappush(events, (t_start + trial.point(pts[0])[1], next(order), key))
        if end:
            del running[key]
            trial.extra["jobs"][-1][1] = now
            free += 1
            t0 = time.perf_counter()
            method.on_end(trial)
            charge(t0)
            if now >= max_seconds:  # the budget is spent: let the running trials finish
                continue
    full = [t for t in trials.values() if t.status == "done"]
    best = max(full, key=lambda t: t.values[t.steps], default=None)
    return {"pick": None if best is None else best.arch,
            "pick_val": None if best is None else best.values[best.steps],
            "evaluations": len(full), "jobs": jobs, "seconds": now,
            "trials": [{"arch": t.arch, "steps": t.steps, "status": t.status,
                        "value": t.values.get(t.steps) if t.steps else None,
                        "table_seed": t.run.get("seed"), "jobs": t.extra.get("jobs", [])}
                       for t in trials.values()]}


class RealTraining:
    """What a peer sees of real training (the wall-clock counterpart of
    :class:`SimulatedTraining`): candidates of ``space`` trained on ``task`` by the search's
    own :class:`~prednas.search.evaluators.TrainingEvaluator`, paused at ``points`` (the steps
    where a method may stop a trial: ASHA's rungs, Hyperband's) and continued from checkpoints."""

    def __init__(self, space, task, *, steps: int, points, max_params: int | None):
        from types import SimpleNamespace

        self.bench = SimpleNamespace(space=space, name=f"{space.name} on {task.name}")
        self.space, self.task, self.max_params = space, task, max_params
        self.total_steps = int(steps)
        self.fidelities = sorted({*(int(p) for p in points or ()), self.total_steps})
        self._keys = itertools.count()
        self._params: dict[str, int] = {}

    def params(self, arch: str) -> float:
        if arch not in self._params:
            from prednas.search.evaluators import model_cost

            self._params[arch] = int(model_cost(self.space, arch, "params",
                                                self.task.input_shape, self.task.num_classes))
        return float(self._params[arch])

    def start(self, arch: str) -> Trial:
        return Trial(next(self._keys), str(self.space.coerce(arch)), {"status": "ok"})

    def checkpoints(self, trial: Trial, stop: int) -> list[int]:
        return [s for s in self.fidelities if trial.steps < s <= stop]


def train_method(method: Method, space, task, *, run_dir, seed: int = 0, workers: int = 2,
                 max_seconds: float = 360.0, max_params: int | None = None, steps: int = 300,
                 points=(), device: str = "cpu") -> dict:
    """Run ``method`` with real training on ``workers`` processes for ``max_seconds`` of wall
    time (then the running trials finish), through the same evaluation function as the engine.

    A job trains one trial from where it paused to its next point (a checkpoint under
    ``run_dir``); there the method decides (``on_point``) whether it goes on. Returns what
    :func:`simulate_method` returns, times in wall seconds.
    """
    from collections import deque
    from pathlib import Path
    from types import SimpleNamespace

    from prednas.search.engine import _evaluate_job
    from prednas.search.evaluators import TrainingEvaluator
    from prednas.search.executors import InProcessExecutor, PoolExecutor

    sim = RealTraining(space, task, steps=steps, points=points, max_params=max_params)
    method.setup(sim, np.random.default_rng([seed, 7]))
    evaluator = TrainingEvaluator(steps=steps, max_params=max_params, device=device)
    evaluator.setup(SimpleNamespace(task=task, costs=(), constraints={}, space=space))
    ckpt = Path(run_dir)
    ckpt.mkdir(parents=True, exist_ok=True)
    executor = PoolExecutor(workers=workers) if workers > 1 else InProcessExecutor()
    t0 = time.perf_counter()
    trials: dict[int, Trial] = {}
    stops: dict[int, int] = {}
    ready: deque = deque()  # (trial, next point): trials that go on after a point
    jobs = 0

    def job(trial: Trial, point: int):
        kw = {"fidelity": point}
        if point < steps:
            kw["checkpoint"] = str(ckpt / f"{trial.key}-{point}.ckpt")
        if trial.steps:
            kw["resume"] = str(ckpt / f"{trial.key}-{trial.steps}.ckpt")
        trial.extra.setdefault("jobs", []).append([time.perf_counter() - t0, None])
        return trial.key, (evaluator, space, trial.arch, seed, None, None), kw

    def source():
        nonlocal jobs
        while True:
            if ready:
                yield job(*ready.popleft())
            elif time.perf_counter() - t0 < max_seconds:
                got = method.next_job()
                if got is None:
                    return
                trial, stop = got
                trials[trial.key], stops[trial.key] = trial, stop
                trial.status = "running"
                jobs += 1
                yield job(trial, sim.checkpoints(trial, stop)[0])
            else:
                return

    try:
        while True:
            for key, result in executor.map_unordered(_evaluate_job, source()):
                trial = trials[key]
                trial.extra["jobs"][-1][1] = time.perf_counter() - t0
                point = int(result.get("fidelity") or 0)
                if result.get("status") != "ok":
                    trial.status = "failed"
                    method.on_end(trial)
                    continue
                trial.steps, trial.values[point] = point, float(result["objective"])
                if point >= steps:
                    trial.extra["test_acc"] = result.get("test_acc")
                go_on = point >= steps or method.on_point(trial, point, trial.values[point])
                if not go_on:
                    trial.status = "stopped"
                elif point >= stops[key]:
                    trial.status = "done" if point >= steps else "paused"
                else:
                    ready.append((trial, sim.checkpoints(trial, stops[key])[0]))
                    continue
                method.on_end(trial)
            if not ready:  # continuations found after the source had ended: run them too
                break
    finally:
        executor.shutdown()
    full = [t for t in trials.values() if t.status == "done"]
    best = max(full, key=lambda t: t.values[t.steps], default=None)
    return {"pick": None if best is None else best.arch,
            "pick_val": None if best is None else best.values[best.steps],
            "evaluations": len(full), "jobs": jobs, "seconds": time.perf_counter() - t0,
            "trials": [{"arch": t.arch, "steps": t.steps, "status": t.status,
                        "value": t.values.get(t.steps) if t.steps else None,
                        "jobs": t.extra.get("jobs", [])} for t in trials.values()]}


def incumbents(done) -> list[tuple[float, str]]:
    """``(end time, arch)`` each time the best value among finished full trainings changed;
    ``done``: ``(end time, value, arch)`` of each (a search's records, a peer's trials)."""
    out: list[tuple[float, str]] = []
    best = -math.inf
    for end, value, arch in sorted(done):
        if value > best:
            best = value
            if not out or out[-1][1] != arch:
                out.append((round(float(end), 2), str(arch)))
    return out


def trial_incumbents(trials) -> list[tuple[float, str]]:
    """:func:`incumbents` of the ``trials`` that :func:`simulate_method` or
    :func:`train_method` returns (those trained fully)."""
    return incumbents([(t["jobs"][-1][1], t["value"], t["arch"]) for t in trials
                       if t["status"] == "done" and t.get("value") is not None])
