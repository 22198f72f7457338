"""Executors: where evaluations run. Results are yielded as they complete.

The interface is one method, :meth:`Executor.map_unordered`; a distributed engine (Ray, Dask)
plugs in by implementing it. :class:`RayExecutor` runs evaluations on a Ray cluster (the optional
extra ``pip install "prednas[ray]"``); Ray is imported only when one is made.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from prednas._parent_watch import pool_initializer
from prednas.errors import InvalidParameterError
from prednas.params import Interval, Options
from prednas.search.base import Executor
from prednas.search.registries import REGISTRIES, register_executor

__all__ = ["EXECUTORS", "InProcessExecutor", "PoolExecutor", "RayExecutor"]

log = logging.getLogger(__name__)

EXECUTORS = REGISTRIES["executor"]
_register = register_executor


@_register("inprocess")
class InProcessExecutor(Executor):
    """Runs jobs one after the other in this process, in order."""

    def map_unordered(self, fn, jobs) -> Iterator:
        for key, args, kwargs in jobs:
            yield key, fn(*args, **kwargs)


def _limit_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


@_register("pool")
class PoolExecutor(Executor):
    """A local process pool: several candidates train at once; results come back as they finish.

    Workers die with the process that owns the pool (within a second of a ``kill -9`` of it:
    :func:`prednas._parent_watch.die_with_parent`), so a killed search leaves nothing training.

    Args:
        workers: number of worker processes.
        threads_per_worker: torch intra-op threads in each worker.
        start_method: ``"spawn"`` (safe with torch) or ``"fork"``.
    """

    _parameter_constraints = {"workers": [Interval(int, 1, None)],
                              "threads_per_worker": [Interval(int, 1, None)],
                              "start_method": [Options("spawn", "fork", "forkserver")]}

    def __init__(self, workers: int = 2, threads_per_worker: int = 1, start_method: str = "spawn"):
        self.workers = workers
        self.threads_per_worker = threads_per_worker
        self.start_method = start_method
        self._pool = None

    def _get_pool(self):
        if self._pool is None:
            ctx = multiprocessing.get_context(self.start_method)
            # The kernel's parent-death signal follows the thread that starts the workers (the
            # one submitting jobs): use it only when that thread is the main one.
            main = threading.current_thread() is threading.main_thread()
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=ctx, initializer=pool_initializer,
                initargs=(os.getpid(), main, f"{__name__}:_limit_threads",
                          (self.threads_per_worker,)))
        return self._pool

    def map_unordered(self, fn, jobs) -> Iterator:
        pool = self._get_pool()
        source = iter(jobs)
        pending: dict = {}

        def fill() -> None:  # a job is taken from ``jobs`` only when a worker is free for it
            while len(pending) < self.workers:
                job = next(source, None)
                if job is None:
                    return
                key, args, kwargs = job
                pending[pool.submit(fn, *args, **kwargs)] = key

        try:
            fill()
            while pending:
                done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for fut in done:
                    key = pending.pop(fut)
                    yield key, fut.result()
                fill()
        finally:
            for fut in pending:
                fut.cancel()

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def __getstate__(self):
        d = dict(self.__dict__)
        d["_pool"] = None
        return d


_RAY_INSTALL = 'pip install "prednas[ray]"'


def _import_ray_plumbing():
    """:mod:`prednas.search._ray` (it imports Ray), or a one-line error saying how to get Ray."""
    try:
        import ray  # noqa: F401
    except ImportError as exc:
        raise InvalidParameterError(
            f"executor 'ray' needs the optional extra ({exc.name or 'ray'} is not installed): "
            f"{_RAY_INSTALL}") from None
    from prednas.search import _ray

    return _ray


@_register("ray")
class RayExecutor(Executor):
    """Evaluations as Ray tasks, on this machine or a cluster; results come back as they finish.

    Each job is one task that asks for ``num_cpus`` CPUs and ``num_gpus`` GPUs (a fraction lets
    several small candidates share a GPU: ``num_gpus=0.25`` runs four per GPU; Ray points each
    task's ``CUDA_VISIBLE_DEVICES`` at its GPU, so an evaluator with ``device="auto"`` uses it).
    The evaluator and the space are put in the object store once per round, not once per job.

    A worker that dies mid-evaluation (killed, crashed, its node lost) costs a retry, not the
    run: Ray runs the task again (up to ``max_retries`` times), and a failure Ray does not retry
    itself (a result lost with its node) is submitted again, at most ``max_retries`` times. Each
    evaluation is yielded exactly once, so the run directory records it once. An exception
    raised by the evaluation itself (a bug) is not retried: it propagates with its own type.

    Records are written by the search process (the head) only: workers need the package, not the
    run directory (weights of candidates are saved by the worker at the path the head gives, so
    training with saved weights needs a run directory that the workers share, or one machine).

    Args:
        address: ``None`` starts a local Ray in this process (if it is not connected already);
            ``"auto"`` joins the cluster started on this machine with ``ray start --head``;
            ``"host:port"`` or ``"ray://host:port"`` join a remote one.
        workers: the most evaluations running at once (``None``: as many as the cluster's
            resources allow). A local Ray started here gets ``workers * num_cpus`` CPUs
            (``None``: every core).
        num_cpus: CPUs each evaluation asks for.
        num_gpus: GPUs each evaluation asks for (fractions allowed).
        max_retries: retries of an evaluation whose worker dies.
        object_store_memory: bytes of object store of a local Ray started here (``None``: Ray's
            default, 30% of the memory).
    """

    _parameter_constraints = {"address": [None, str],
                              "workers": [None, Interval(int, 1, None)],
                              "num_cpus": [Interval(float, 0, None)],
                              "num_gpus": [Interval(float, 0, None)],
                              "max_retries": [Interval(int, 0, None)],
                              "object_store_memory": [None, Interval(int, 1, None)]}

    def __init__(self, address: str | None = None, workers: int | None = None,
                 num_cpus: float = 1.0, num_gpus: float = 0.0, max_retries: int = 3,
                 object_store_memory: int | None = None):
        _import_ray_plumbing()
        self.address = address
        self.workers = workers
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.max_retries = max_retries
        self.object_store_memory = object_store_memory
        self._started = False
        self._pending: dict = {}

    def _connect(self):
        _ray = _import_ray_plumbing()
        cpus = None if self.workers is None else self.workers * max(float(self.num_cpus), 1.0)
        if _ray.connect(self.address, num_cpus=cpus,
                        object_store_memory=self.object_store_memory):
            self._started = True
        if self.num_gpus > 0 and _ray.cluster_gpus() == 0:
            # a task asking for a GPU no node has would wait for ever
            if self.address is None:
                raise InvalidParameterError(
                    f"RayExecutor asks for num_gpus={self.num_gpus:g} per evaluation, but the "
                    f"local Ray has no GPU (torch sees {_cuda_count()} CUDA device(s)); use "
                    f"num_gpus=0 (--gpus-per-candidate 0) to train on the CPU")
            log.warning("the Ray cluster has no GPU now; evaluations asking for %g GPU wait "
                        "until a node with one joins", self.num_gpus)
        return _ray

    def map_unordered(self, fn, jobs) -> Iterator:
        _ray = self._connect()
        yield from _ray.map_unordered(fn, jobs, num_cpus=self.num_cpus, num_gpus=self.num_gpus,
                                      max_retries=self.max_retries, max_in_flight=self.workers,
                                      pending=self._pending)

    def shutdown(self) -> None:
        """Cancel evaluations still running; disconnect from Ray if this executor connected."""
        if not self._pending and not self._started:
            return
        _ray = _import_ray_plumbing()
        _ray.cancel(self._pending)
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    def __getstate__(self):
        d = dict(self.__dict__)
        d["_started"], d["_pending"] = False, {}
        return d


def _cuda_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0
