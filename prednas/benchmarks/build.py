"""Build a tabular benchmark by training architectures: resumable, parallel, append-only.

A build is a list of jobs ``(arch, seed, part)`` trained with one fixed recipe. Every finished job
becomes one line of ``records.jsonl`` (written by the parent process as results arrive, fsynced);
``meta.json`` holds the recipe, the space configuration and the machine. Killed at any moment
(``kill -9`` included), a build loses at most the jobs in flight: run it again and it skips every
job already recorded. A training that diverges or fails is recorded with its reason, never dropped.

>>> from prednas.benchmarks.build import BuildSpec, build
>>> spec = BuildSpec(space=space, recipe=recipe, jobs=[("conv3:16", 0, "sub")])
>>> build(spec, "bench-dir", workers=2)
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import platform
import socket
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prednas.errors import InvalidParameterError, PredNASError, RunDirectoryError
from prednas.utils import JsonlLog, atomic_write_json

__all__ = ["BuildSpec", "build", "machine_name", "machine_summary",
           "train_job", "RECORDS", "META"]

log = logging.getLogger(__name__)

RECORDS = "records.jsonl"
META = "meta.json"


@dataclass
class BuildSpec:
    """What to build.

    Args:
        space: the (configured) space the table covers.
        recipe: ``{"task": name, "task_options": {...}, "train": {...}}`` such that
            ``prednas.train(space, arch, prednas.tasks.get(task, **task_options), seed=seed,
            **train)`` is one job.
        jobs: ``(arch string, seed, part)`` in the order to run them; ``part`` names the group
            (e.g. ``"sub"`` for the enumerated sub-space, ``"full"`` for samples of the full space).
        spaces_by_part: a space per part when parts differ (default: ``space`` for every part).
        latency_repeats: timed forward passes at batch 1 (after 5 warm-up passes).
        name: the benchmark's name, written to ``meta.json``.
        version: the table's version, written to ``meta.json``.
        command: the command line that builds it, written to ``meta.json``.
    """

    space: Any
    recipe: dict
    jobs: Sequence[tuple[str, int, str]]
    spaces_by_part: dict[str, Any] = field(default_factory=dict)
    latency_repeats: int = 30
    name: str = ""
    command: str = ""
    version: int = 1

    def space_for(self, part: str):
        return self.spaces_by_part.get(part, self.space)

    def meta(self) -> dict:
        parts = {p: {"space": s.name, "config": s.config()} for p, s in self.spaces_by_part.items()}
        return {"kind": "prednas-benchmark-build", "format": 1, "name": self.name,
                "space": self.space.name, "space_config": self.space.config(), "parts": parts,
                "recipe": self.recipe, "latency": {"batch": 1, "warmup": 5,
                                                   "repeats": self.latency_repeats,
                                                   "statistic": "median", "threads": 1},
                "command": self.command, "version": self.version}


def machine_name() -> str:
    """The processor's model name (``/proc/cpuinfo``), else ``platform.processor()``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_summary(load: bool = False) -> str:
    """Processor, logical CPUs, OS and Python (and the load average, with ``load``), for the
    header of a benchmark file."""
    text = (f"{machine_name()}, {os.cpu_count()} logical CPUs; {platform.system()} "
            f"{platform.release()}; Python {platform.python_version()}")
    if load and hasattr(os, "getloadavg"):
        text += "; load average at start " + ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return text


def runs_by_machine(rows, earlier: str = "not recorded") -> str:
    """Which processors a benchmark's runs ran on, for its header: ``"Intel Xeon: 40 runs;
    not recorded: 773 runs"``. Each run records ``cpu`` (:func:`machine_name`) as it is
    appended; ``earlier`` names the runs from before runs recorded it."""
    from collections import Counter

    counts = Counter(r.get("cpu") or earlier for r in rows)
    return "; ".join(f"{name}: {n} run{'s' if n != 1 else ''}" for name, n in counts.most_common())


def train_job(space_name: str, space_config: dict, arch: str, seed: int, recipe: dict,
              latency_repeats: int = 30) -> dict:
    """One job (runs in a worker): train, then time the trained model. Never raises for a bad
    candidate: a failure is returned as a record with ``status`` and ``reason``."""
    import math

    import spaces
    from prednas import tasks
    from prednas.training import measure_latency, train

    t0 = time.perf_counter()
    space = spaces.get(space_name, **space_config) if space_config else spaces.get(space_name)
    task = tasks.get(recipe["task"], **recipe.get("task_options", {}))
    out: dict[str, Any] = {"arch": arch, "seed": seed}
    try:
        rec = train(space, arch, task, seed=seed, keep_model=True, **recipe.get("train", {}))
    except (RuntimeError, ValueError, MemoryError, PredNASError) as exc:  # the candidate's failure
        out.update(status="failed", reason=f"{type(exc).__name__}: {exc}"[:500],
                   train_seconds=time.perf_counter() - t0)
        return out
    out.update(status=rec.status, reason=rec.reason, val_acc=rec.val_acc, test_acc=rec.test_acc,
               val_loss=rec.val_loss, params=rec.params, flops=rec.flops, steps=rec.steps,
               train_seconds=rec.wall_time, device=rec.device)
    if rec.curve:  # a recipe with curve_every: the learning curve and what recording it cost
        out.update(curve=rec.curve, curve_seconds=round(rec.curve_seconds, 4),
                   eval_seconds=round(rec.eval_seconds, 4), cpu_seconds=round(rec.cpu_time, 4))
    out["latency_ms"] = math.nan
    if rec.ok and rec.model is not None:
        try:
            out["latency_ms"] = measure_latency(rec.model, task.input_shape, latency_repeats)
        except RuntimeError as exc:
            out["reason"] = f"latency not measured: {exc}"[:500]
    return out


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _key(arch: str, seed: int, part: str) -> tuple[str, int, str]:
    return (arch, int(seed), part)


def build(spec: BuildSpec, out_dir: str | os.PathLike, *, workers: int | None = None,
          threads_per_worker: int = 1, limit: int | None = None,
          max_seconds: float | None = None, progress: bool = True,
          on_record: Callable[[dict], None] | None = None) -> list[dict]:
    """Run every job of ``spec`` not yet recorded in ``out_dir``; returns all records.

    Args:
        spec: what to build.
        out_dir: holds ``records.jsonl`` and ``meta.json``; a build there with another recipe or
            space is refused (a table has one recipe).
        workers: worker processes (default: every core). ``0`` runs in this process.
        threads_per_worker: torch threads in each worker.
        limit: stop after this many new jobs (for slices of a long build).
        max_seconds: submit no new job after this wall time; jobs in flight finish.
        progress: show a progress bar.
        on_record: called with each new record after it is written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = spec.meta()
    meta_path = out / META
    if meta_path.exists():
        import json

        old = json.loads(meta_path.read_text())
        for key in ("space", "space_config", "parts", "recipe"):
            if old.get(key) != meta.get(key):
                raise RunDirectoryError(
                    f"{out} holds a build with another {key} ({old.get(key)!r}, this build: "
                    f"{meta.get(key)!r}); choose another directory")
        meta["machines"] = old.get("machines", [])
    else:
        meta["machines"] = []
    host = {"host": socket.gethostname(), "cpu": machine_name(), "cores": os.cpu_count()}
    if host not in meta["machines"]:
        meta["machines"].append(host)
    atomic_write_json(meta_path, meta)

    logfile = JsonlLog(out / RECORDS)
    records = logfile.read()
    done = {_key(r["arch"], r["seed"], r.get("part", "")) for r in records}
    todo = [j for j in spec.jobs if _key(*j) not in done]
    seen: set = set()
    todo = [j for j in todo if not (_key(*j) in seen or seen.add(_key(*j)))]
    log.info("%d of %d jobs recorded; %d to run%s", len(spec.jobs) - len(todo), len(spec.jobs),
             len(todo), "" if limit is None else f" (this time at most {limit})")
    n_left = len(todo)
    if limit is not None:
        todo = todo[:limit]
    if workers is None:
        workers = os.cpu_count() or 1
    if workers < 0:
        raise InvalidParameterError(f"The 'workers' parameter of build must be >= 0. Got {workers}")
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(spec.jobs), initial=len(spec.jobs) - n_left, unit="arch",
                   desc=spec.name or "build", smoothing=0.05)
    start = time.perf_counter()

    def args_of(job):
        arch, seed, part = job
        sp = spec.space_for(part)
        return (sp.name, sp.config(), arch, int(seed), spec.recipe, spec.latency_repeats)

    def finish(job, result: dict) -> None:
        arch, seed, part = job
        rec = {"arch": arch, "seed": int(seed), "part": part, **result,
               "host": host["host"], "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        logfile.append(rec)
        records.append(rec)
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(f"{arch[:40]} {result.get('test_acc', float('nan')):.1f}%")
        if on_record is not None:
            on_record(rec)

    def out_of_time() -> bool:
        return max_seconds is not None and time.perf_counter() - start > max_seconds

    try:
        if workers == 0:
            for job in todo:
                if out_of_time():
                    break
                finish(job, train_job(*args_of(job)))
            return records
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(threads_per_worker,)) as pool:
            queue = list(reversed(todo))
            pending: dict = {}
            while queue or pending:
                while queue and len(pending) < 2 * workers and not out_of_time():
                    job = queue.pop()
                    pending[pool.submit(train_job, *args_of(job))] = job
                if not pending:
                    break
                ready, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for fut in ready:
                    job = pending.pop(fut)
                    # a candidate's own failure comes back as a record; anything else (a bug, a
                    # worker killed) stops the build, and a re-run redoes only the unrecorded jobs
                    finish(job, fut.result())
    finally:
        if bar is not None:
            bar.close()
    return records
