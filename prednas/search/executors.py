"""Executors: where evaluations run. Results are yielded as they complete.

The interface is one method, :meth:`Executor.map_unordered`; a distributed engine (Ray, Dask)
plugs in by implementing it.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from prednas.params import Interval, Options
from prednas.search.base import Executor
from prednas.search.registries import REGISTRIES, register_executor

__all__ = ["EXECUTORS", "InProcessExecutor", "PoolExecutor"]

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
            self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx,
                                             initializer=_limit_threads,
                                             initargs=(self.threads_per_worker,))
        return self._pool

    def map_unordered(self, fn, jobs) -> Iterator:
        pool = self._get_pool()
        pending = {pool.submit(fn, *args, **kwargs): key for key, args, kwargs in jobs}
        try:
            while pending:
                done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for fut in done:
                    key = pending.pop(fut)
                    yield key, fut.result()
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
