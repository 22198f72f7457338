"""Ray plumbing of :class:`prednas.search.executors.RayExecutor` (imported only when one runs).

Each job is one Ray task. Large arguments (the evaluator, which holds the task's tensors or the
benchmark table, and the space) are put in the object store once per :func:`map_unordered` call
and passed by reference; small ones (strings, numbers, paths) travel with the task.

Failures are sorted in two kinds:

- the job's own exception (a bug in an evaluator, raised by ``fn``) comes back as a
  ``RayTaskError``; it is unwrapped and re-raised as the original exception, with the worker's
  traceback attached as a note, and never retried;
- an infrastructure failure (the worker process died, the node died, the result was lost). Ray
  retries a task whose worker dies (its ``max_retries``); what still fails after that comes back
  here, and the job is submitted again at most ``max_retries`` times more, unless it is a
  ``WorkerCrashedError`` (Ray spent its retries on it: a candidate that keeps killing its worker,
  e.g. the kernel's out-of-memory killer, stops the run rather than looping).

Each key is yielded exactly once: a job has at most one task in flight, and it is yielded only
when that task's result has been fetched.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import ray
from ray import exceptions as rex

__all__ = ["connect", "map_unordered", "cancel", "unwrap_task_error", "is_infrastructure_error"]

log = logging.getLogger(__name__)

#: argument types sent with each task rather than put in the object store
_INLINE = (type(None), bool, int, float, str, bytes, os.PathLike)

#: infrastructure failures that Ray already retried (``max_retries``) before reporting them
_RETRIED_BY_RAY = (rex.WorkerCrashedError, rex.OutOfMemoryError)


def _call(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """The Ray task: ``fn(*args, **kwargs)`` (object references among them already resolved)."""
    return fn(*args, **kwargs)


_REMOTE: Any = None


def _remote():
    global _REMOTE
    if _REMOTE is None:
        _REMOTE = ray.remote(_call)
    return _REMOTE


def connect(address: str | None, *, num_cpus: float | None,
            object_store_memory: int | None) -> bool:
    """Connect this process to Ray; returns True when it called ``ray.init`` (so it disconnects).

    ``address=None`` starts a local Ray (unless ``$RAY_ADDRESS`` names a cluster, Ray's own
    convention); ``"auto"``, ``"host:port"`` or ``"ray://host:port"`` join a running cluster. A
    process already connected keeps its connection.
    """
    if ray.is_initialized():
        return False
    kw: dict[str, Any] = {"address": address, "include_dashboard": False,
                          "log_to_driver": True}
    if address is None and not os.environ.get("RAY_ADDRESS"):
        kw.update(num_cpus=None if num_cpus is None else max(1, round(num_cpus)),
                  object_store_memory=object_store_memory)
    log.info("connecting to Ray (%s)", address or "a new local instance")
    ray.init(**kw)
    return True


def cluster_gpus() -> float:
    """GPUs the connected Ray cluster has now (0 without any)."""
    return float(ray.cluster_resources().get("GPU", 0.0))


def is_infrastructure_error(exc: BaseException) -> bool:
    """True for a failure of Ray or of a machine, not of the job's code."""
    if isinstance(exc, rex.TaskCancelledError):
        return False
    if isinstance(exc, rex.RayTaskError):
        cause = getattr(exc, "cause", None)
        return isinstance(cause, rex.RayError) and is_infrastructure_error(cause)
    return isinstance(exc, rex.RayError)


def unwrap_task_error(exc: BaseException) -> BaseException:
    """The job's own exception inside a ``RayTaskError`` (its type unchanged), with the worker's
    traceback as a note; ``exc`` itself when it cannot be unwrapped."""
    if not isinstance(exc, rex.RayTaskError):
        return exc
    cause = getattr(exc, "cause", None)
    if not isinstance(cause, BaseException) or isinstance(cause, rex.RayError):
        return exc
    if hasattr(cause, "add_note"):  # Python 3.11+
        cause.add_note(f"(raised in a Ray worker)\n{exc}")
    return cause


def _ship(value: Any, shared: dict[int, tuple[Any, Any]]) -> Any:
    """``value`` itself when small, else its object reference (one ``ray.put`` per object)."""
    if isinstance(value, _INLINE):
        return value
    entry = shared.get(id(value))
    if entry is None:
        entry = shared[id(value)] = (value, ray.put(value))  # keeps value alive: its id stays
    return entry[1]


def map_unordered(fn: Callable[..., Any], jobs: Iterable[tuple[Any, tuple, dict]], *,
                  num_cpus: float, num_gpus: float, max_retries: int,
                  max_in_flight: int | None, pending: dict) -> Iterator[tuple[Any, Any]]:
    """Run each job as a Ray task; yield ``(key, result)`` as each completes, each key once.

    ``jobs`` may be a lazy iterator: a job is taken from it only when fewer than
    ``max_in_flight`` tasks are running (``None``: the cluster's CPUs over ``num_cpus``), so a
    caller can decide each job when a worker frees up (an asynchronous scheduler).

    ``pending`` (object reference -> job index) is the caller's, so that it can cancel what is
    still running when it shuts down.
    """
    remote = _remote().options(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=max_retries,
                               retry_exceptions=False)
    source = iter(jobs)
    taken: list[tuple[Any, tuple, dict]] = []  # the jobs taken from ``source`` so far
    shared: dict[int, tuple[Any, Any]] = {}
    resubmitted: list[int] = []
    waiting: deque[int] = deque()
    if max_in_flight is None:  # a lazy source is asked for a job only when a worker is free
        max_in_flight = max(1, int(ray.cluster_resources().get("CPU", 1) // max(num_cpus, 1e-9)))

    def fill() -> None:
        while len(pending) < max_in_flight:
            if not waiting:
                job = next(source, None)
                if job is None:
                    return
                taken.append(job)
                resubmitted.append(0)
                waiting.append(len(taken) - 1)
            i = waiting.popleft()
            _, args, kwargs = taken[i]
            ref = remote.remote(fn, *[_ship(a, shared) for a in args],
                                **{k: _ship(v, shared) for k, v in kwargs.items()})
            pending[ref] = i

    try:
        fill()
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                i = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as exc:  # sorted below: the job's own error or Ray's
                    if not is_infrastructure_error(exc):
                        raise unwrap_task_error(exc) from None
                    if isinstance(exc, _RETRIED_BY_RAY) or resubmitted[i] >= max_retries:
                        log.error("job %r failed after its retries: %s", taken[i][0], exc)
                        raise
                    resubmitted[i] += 1
                    log.warning("job %r lost to an infrastructure failure (%s); submitting it "
                                "again (%d of %d)", taken[i][0], type(exc).__name__,
                                resubmitted[i], max_retries)
                    waiting.appendleft(i)
                else:
                    yield taken[i][0], result
                fill()
    finally:
        cancel(pending)


def cancel(pending: dict) -> None:
    """Cancel the tasks still in ``pending`` (a job stopped early: interrupt, error)."""
    refs = list(pending)
    pending.clear()
    if not refs or not ray.is_initialized():
        return
    for ref in refs:
        try:
            ray.cancel(ref)
        except Exception as exc:  # already finished or its worker gone: nothing to cancel
            log.debug("could not cancel a Ray task: %s", exc)
