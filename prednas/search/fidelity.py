"""Partial trainings in the loop: a scheduler decides how far each candidate trains.

With ``Search(scheduler=ASHAScheduler(...))`` the loop is asynchronous. Whenever a worker is free
(the executor takes the next job only then), the scheduler answers: promote a paused candidate
to its next rung, continuing from its checkpoint, or start a new one at the first rung. New
candidates come from the usual round plan (mutator, then filter), planned again whenever the
last plan is used up. No worker waits for a rung to fill.

Records: a result below the last rung is a ``"partial"`` record (the candidate is paused there,
or stopped for good when never promoted); a result at the last rung is a ``"candidate"`` record,
as in a search without a scheduler, so the winner, the predictor's data and the report read full
trainings only. Every record says its ``rung`` and the ``fidelity`` (steps) it reached, keeps its
learning curve, and says whether it ``continued`` a checkpoint or was ``restarted`` from scratch
(a checkpoint missing or damaged). ``budget`` counts full trainings' worth of steps.

State: each job is written to ``state.json`` before it is handed to a worker and leaves it when
its record is appended, so a run killed at any moment resumes exactly: the scheduler is rebuilt
by replaying the records in order, the jobs that were running are run again from the checkpoint
they started from (checkpoints are named by their steps, so a job never reads one it wrote), and
a candidate paused between rungs stays paused, its checkpoint kept, until it is promoted.
"""

from __future__ import annotations

import heapq
import logging
import math
import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from prednas.errors import InvalidParameterError
from prednas.search.cost import seconds_of

if TYPE_CHECKING:  # pragma: no cover
    from prednas.search.engine import Search
    from prednas.search.rundir import RunDir

__all__ = ["FidelityLoop", "check_scheduler", "PARTIAL"]

log = logging.getLogger(__name__)

#: the kind of a record below the last rung
PARTIAL = "partial"


def check_scheduler(scheduler, evaluator, oracle) -> None:
    """Refuse, before anything runs, a scheduler the evaluator cannot follow: one line that
    names the valid choices."""
    if not getattr(evaluator, "supports_fidelity", False):
        raise InvalidParameterError(
            f"a scheduler needs an evaluator that trains partially (TrainingEvaluator, "
            f"SimulatedEvaluator); {type(evaluator).__name__} evaluates in one go")
    full = evaluator.full_steps(type("C", (), {"oracle": oracle})())
    rungs = list(scheduler.rungs_)
    if full is None:
        raise InvalidParameterError(
            "a scheduler's rungs are steps; the evaluator trains by epochs (give it steps=)")
    if rungs[-1] != full:
        raise InvalidParameterError(
            f"The 'rungs' parameter of {type(scheduler).__name__} must end at the full "
            f"training's {full} steps. Got {rungs} instead.")
    if getattr(evaluator, "simulated", False):
        from prednas.search.simulate import recorded_runs

        points = recorded_runs(oracle).fidelities
        bad = [r for r in rungs if r not in points]
        if bad:
            raise InvalidParameterError(
                f"The 'rungs' parameter of {type(scheduler).__name__} must be steps where the "
                f"table recorded a curve point ({', '.join(map(str, points))}). Got {bad} "
                f"instead.")


class FidelityLoop:
    """The asynchronous loop of a search with a scheduler (see the module's docstring)."""

    def __init__(self, search: Search, rd: RunDir, state: dict, t_start: float, on_record):
        self.s, self.rd, self.state, self.t_start = search, rd, state, t_start
        self.on_record = on_record
        self.scheduler = search.scheduler
        self.rungs = list(self.scheduler.rungs_)
        self.full = self.rungs[-1]
        fs = state.setdefault("fidelity", {"inflight": {}, "next_job": 0})
        self.inflight: dict[str, dict] = fs["inflight"]  # job id (str: JSON keys) -> job
        self._replay()

    # -- state ------------------------------------------------------------------------------------
    def _replay(self) -> None:
        """The scheduler's state from the records (in order) and the jobs still running."""
        self.scheduler.reset()
        for i, r in enumerate(self.s._records):
            if r.kind in (PARTIAL, "candidate") and r.get("rung") is not None:
                rung = int(r.get("rung"))
                self.scheduler.on_result(r.arch, rung, self.value(r, self.s._records[:i]))
                if r.get("from_steps") in self.rungs[:-1]:
                    self.scheduler.mark_promoted(r.arch, self.rungs.index(r.get("from_steps")))
        for job in self.inflight.values():
            if job["from_steps"]:
                self.scheduler.mark_promoted(job["arch"], self.rungs.index(job["from_steps"]))

    def value(self, record, before=None) -> float:
        """What the scheduler ranks a rung's results by, from ``record`` and the records that
        came ``before`` it: the objective at the rung (``rank_by="partial"``), or
        (``"estimate"``) that objective moved to the full training's scale (the mean gap
        between the rung and the full training over candidates that reached both) and combined
        with the filter's prediction, each weighted by the inverse of its squared error on
        those candidates; the partial objective alone until 3 candidates reached both."""
        if not record.ok:
            return float("nan")
        x = float(record.objective)
        if getattr(self.scheduler, "rank_by", "partial") != "estimate":
            return x
        before = self.s._records if before is None else before
        rung = int(record.get("rung") or 0)
        full = {r.arch: r for r in before if r.kind == "candidate" and r.ok}
        at = {r.arch: r for r in before if r.ok and r.get("rung") == rung and r.arch in full}
        if rung == len(self.rungs) - 1 or len(at) < 3:
            return x
        gaps = np.array([full[a].objective - at[a].objective for a in at], float)
        shifted = x + float(gaps.mean())
        var_partial = max(float(gaps.var(ddof=1)), 1e-6)
        pairs = [(full[a].objective, full[a].predicted) for a in full
                 if full[a].predicted is not None and math.isfinite(full[a].predicted)]
        p = record.predicted
        if p is None or not math.isfinite(p) or len(pairs) < 3:
            return shifted
        var_pred = max(float(np.mean([(y - q) ** 2 for y, q in pairs])), 1e-6)
        return (shifted / var_partial + p / var_pred) / (1 / var_partial + 1 / var_pred)

    def steps_used(self) -> int:
        """Training steps spent and committed: finished jobs and those running."""
        return trained_steps(self.s._records) + sum(j["steps"] - j["from_steps"]
                                                    for j in self.inflight.values())

    def full_trainings(self) -> float:
        """The budget used, in full trainings' worth of steps (what ``budget`` counts)."""
        return self.steps_used() / self.full

    def _ckpt(self, arch: str, steps: int) -> str:
        self.rd.weights_dir.mkdir(exist_ok=True)
        ext = "json" if self.s.simulated else "ckpt"
        return str(self.rd.weights_dir / f"{_slug_of(arch)}-{steps}.{ext}")

    # -- deciding jobs ----------------------------------------------------------------------------
    def _exhausted(self) -> bool:
        s = self.s
        if self.steps_used() >= s._search_budget() * self.full:
            return True
        if s.max_seconds is not None and s._elapsed(self.t_start) > s._search_seconds():
            log.info("%s budget reached", "simulated time" if s.simulated else "wall-time")
            return True
        return False

    def _new_candidate(self) -> dict | None:
        """The next candidate of the round plan (a new plan when it is used up)."""
        state, s = self.state, self.s
        plan = state.get("plan")
        if plan is None or plan["next"] >= len(plan["candidates"]):
            rnd = int(state["round"]) + (plan is not None)
            t0 = time.perf_counter()
            plan = s._plan(rnd, fidelity=True,
                           running=[j["arch"] for j in self.inflight.values()])
            plan["overhead"], plan["next"] = time.perf_counter() - t0, 0
            state["round"], state["plan"] = rnd, plan
            state["overhead"].append({"round": rnd, "pool": plan.get("pool", 0),
                                      "seconds": plan.get("overhead", 0.0)})
            if not plan["candidates"]:
                log.warning("no new candidates could be proposed; stopping")
                return None
        c = plan["candidates"][plan["next"]]
        slot = plan["next"]
        plan["next"] += 1
        return {"arch": c["arch"], "round": plan["round"], "slot": slot, "parent": c.get("parent"),
                "predicted": c.get("predicted"), "predicted_std": c.get("predicted_std"),
                **seconds_of(c)}

    def _next_job(self) -> dict | None:
        decision = self.scheduler.suggest()
        if decision.action == "promote":
            first = next(r for r in self.s._records
                         if r.arch == decision.trial and r.get("rung") == 0)
            job = {"arch": decision.trial, "round": first.round, "slot": first.slot,
                   "parent": first.parent, "predicted": first.predicted,
                   "predicted_std": first.predicted_std, **seconds_of(first.metrics)}
        else:
            job = self._new_candidate()
            if job is None:
                return None
        prev = self.rungs[decision.rung - 1] if decision.rung > 0 else 0
        jid = int(self.state["fidelity"]["next_job"])
        self.state["fidelity"]["next_job"] = jid + 1
        job.update(id=jid, rung=decision.rung, steps=decision.steps, from_steps=prev)
        return job

    def _finishing_job(self) -> dict | None:
        """When the budget ran out before any candidate trained fully: the best candidate of
        the highest rung reached, continued to the full training (what the search hands over
        must be fully trained); ``None`` when one already is."""
        recs = [r for r in self.s._records if r.kind in (PARTIAL, "candidate")
                and r.get("rung") is not None]
        if any(r.ok and r.kind == "candidate" for r in recs):
            return None
        paused = [r for r in recs if r.ok and r.kind == PARTIAL and not any(
            x.arch == r.arch and int(x.get("from_steps") or 0) >= int(r.get("fidelity"))
            for x in recs)]
        if not paused:
            return None
        best = max(paused, key=lambda r: (int(r.get("rung")), self.value(r), -r.query))
        jid = int(self.state["fidelity"]["next_job"])
        self.state["fidelity"]["next_job"] = jid + 1
        self.scheduler.mark_promoted(best.arch, int(best.get("rung")))
        return {"arch": best.arch, "round": best.round, "slot": best.slot, "parent": best.parent,
                "predicted": best.predicted, "predicted_std": best.predicted_std, "id": jid,
                "rung": len(self.rungs) - 1, "steps": self.full,
                "from_steps": int(best.get("fidelity")), "finishing": True}

    def _job_args(self, job: dict) -> tuple[str, tuple, dict]:
        s = self.s
        kw: dict[str, Any] = {"fidelity": job["steps"]}
        if job["steps"] < self.full:
            kw["checkpoint"] = self._ckpt(job["arch"], job["steps"])
        if job["from_steps"]:
            kw["resume"] = self._ckpt(job["arch"], job["from_steps"])
        parent_path = None
        if job.get("parent") and s.evaluator.uses_parent_weights and not job["from_steps"]:
            p = self.rd.weights_dir / f"{_slug_of(job['parent'])}.pt"
            parent_path = str(p) if p.exists() else None
        save = s._weights_path(self.rd, job["arch"]) if job["steps"] >= self.full else None
        return str(job["id"]), (s.evaluator, s.space, job["arch"], s.seed, parent_path, save), kw

    def _jobs(self) -> Iterator[tuple[str, tuple, dict]]:
        """The job source the executor pulls from when a worker is free: the jobs that were
        running when the run stopped first, then the scheduler's decisions."""
        for jid in sorted(self.inflight, key=int):
            yield self._job_args(self.inflight[jid])
        while not self._exhausted():
            t0 = time.perf_counter()
            job = self._next_job()
            self.s._charge_decision(time.perf_counter() - t0)
            if job is None:
                return
            self.state["elapsed"] = time.perf_counter() - self.t_start
            yield from self._start(job)

    def _save(self) -> None:
        if self.s._clock is not None:
            self.state["sim_clock"] = self.s._clock.now
        self.rd.write_state(self.state)

    # -- running ----------------------------------------------------------------------------------
    def _simulated(self, fn, jobs) -> Iterator[tuple[str, dict]]:
        """A discrete-event run of the simulated workers: a job starts when a worker is free
        (the clock then), its result is yielded at its end time, in time order."""
        clock, workers = self.s._clock, self.s.evaluator.workers
        running: list = []
        source = iter(jobs)
        for n in range(10**12):
            while len(running) < workers:
                job = next(source, None)
                if job is None:
                    break
                key, args, kw = job
                result = fn(*args, **kw)
                start = float(self.inflight[key].get("sim_start", clock.now))
                end = start + float(result.get("seconds") or 0.0)
                result["sim_start"], result["sim_end"] = start, end
                heapq.heappush(running, (end, n, key, result))
            if not running:
                return
            end, _, key, result = heapq.heappop(running)
            clock.now = max(clock.now, end)
            yield key, result

    def _stream(self, jobs):
        from prednas.search.engine import _evaluate_job

        if self.s._clock is not None:
            return self._simulated(_evaluate_job, jobs)
        return self.s.executor.map_unordered(_evaluate_job, jobs)

    def _start(self, job: dict) -> Iterator[tuple[str, tuple, dict]]:
        if self.s._clock is not None:
            job["sim_start"] = self.s._clock.now
        self.inflight[str(job["id"])] = job
        self._save()
        yield self._job_args(job)

    def run(self) -> None:
        self._consume(self._stream(self._jobs()))
        finishing = self._finishing_job()
        if finishing is not None:
            log.info("the budget ran out before a full training: %s continues to %d steps",
                     finishing["arch"], self.full)
            self._consume(self._stream(self._start(finishing)))
        self.state["plan"] = None
        self.state["round"] = int(self.state["round"]) + 1
        self._save()

    def _consume(self, stream) -> None:
        s = self.s
        for key, result in stream:
            job = self.inflight[key]
            last = job["steps"] >= self.full
            base = s._base_record(job["arch"], "candidate" if last else PARTIAL, job["round"],
                                  job["slot"], parent=job.get("parent"),
                                  predicted=job.get("predicted"),
                                  predicted_std=job.get("predicted_std"),
                                  rung=job["rung"], from_steps=job["from_steps"], job=job["id"],
                                  **seconds_of(job))
            if last and result.get("status") == "ok" and not s.evaluator.is_oracle:
                base["weights"] = s._weights_path(self.rd, job["arch"])
            if result.get("restarted"):  # trained from scratch: all its steps were spent
                base["from_steps"] = 0
            result.setdefault("fidelity", job["steps"])
            record = s._record(self.rd, base, result)
            del self.inflight[key]
            self.scheduler.on_result(record.arch, job["rung"],
                                     self.value(record, self.s._records[:-1]))
            self.state["elapsed"] = time.perf_counter() - self.t_start
            self._save()
            if job["from_steps"]:  # its successor (or final weights) is on disk now
                _remove(self._ckpt(job["arch"], job["from_steps"]))
            self.on_record()


def trained_steps(records) -> int:
    """Training steps the records of a scheduled search spent (a continued job counts only the
    steps after its checkpoint)."""
    return sum(int(r.get("fidelity") or 0) - int(r.get("from_steps") or 0) for r in records
               if r.kind in (PARTIAL, "candidate") and r.get("rung") is not None)


def _slug_of(arch: str) -> str:
    from prednas.search.engine import _slug

    return _slug(arch)


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass
