"""Worker processes that die with their parent: :func:`die_with_parent`.

A process pool's workers are separate processes: when the process that owns the pool is killed
(``kill -9``, the OOM killer, a lost terminal), nothing tells them, and they would train on for
minutes, holding CPU, memory and the multiprocessing resource tracker, for a result nobody reads.
A pool's initializer calls :func:`die_with_parent` in each worker, which arranges two things:

- on Linux, the kernel's parent-death signal (``prctl(PR_SET_PDEATHSIG, SIGKILL)``): the worker is
  killed the moment its parent exits. The kernel ties it to the *thread* that created the worker,
  so it is used only when the pool was started from the parent's main thread;
- everywhere, a daemon watchdog thread that checks every ``interval`` seconds whether the
  worker's parent is still the one it started with (``os.getppid()`` changes when the parent dies
  and the orphan is adopted) and, for a fork server's worker, whether the pool's owner still
  runs, and kills the worker when not.

Either one ends a worker within ``interval`` seconds of its parent's death.

Use :func:`pool_initializer` as the pool's ``initializer``: this module imports nothing heavy, so a
spawned worker arms both before it imports torch or the search engine (seconds, on a loaded
machine), and then runs the pool's own initializer, named by ``"module:function"``. What a spawned
worker imports before any initializer runs — the driver's ``__main__`` module, as
:mod:`multiprocessing` re-imports it — is out of its reach: keep heavy imports of a script that
starts pools under ``if __name__ == "__main__":`` (the ``prednas`` command does).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
import threading
import time

__all__ = ["die_with_parent", "pool_initializer", "WATCH_INTERVAL"]

#: seconds between two checks of the watchdog thread
WATCH_INTERVAL = 0.5
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_armed_in: int | None = None  # the pid that armed the watch (a forked child must arm its own)


def _kill_self() -> None:
    sig = getattr(signal, "SIGKILL", signal.SIGTERM)  # Windows has no SIGKILL
    with contextlib.suppress(OSError):
        os.kill(os.getpid(), sig)
    os._exit(1)  # pragma: no cover - reached only where the signal did not end the process


def _set_pdeathsig() -> bool:
    """Ask the Linux kernel to SIGKILL this process when its parent (thread) exits."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):  # no libc prctl here: the watchdog alone does it
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but is not ours to signal
        return True
    return True


def _watch(owner: int, parent: int, interval: float) -> None:
    while True:
        time.sleep(interval)
        if os.getppid() != parent or (owner != parent and not _alive(owner)):
            _kill_self()


def die_with_parent(owner: int | None = None, *, kernel_signal: bool = True,
                    interval: float = WATCH_INTERVAL) -> None:
    """Make this process (a pool worker) end when the process that owns it ends.

    Call it first thing in the worker (a pool's ``initializer``: :func:`pool_initializer`).
    Idempotent in a process; a forked child arms its own.

    Args:
        owner: the pid of the process that owns the pool (its ``os.getpid()``, passed in the
            initializer's arguments); ``None``: this process's parent. Usually the owner is the
            parent; when it is not (a fork server's worker, or a worker whose owner died before
            it started and that was adopted), the owner is watched by pid, and a worker whose
            owner is already gone ends now.
        kernel_signal: also use Linux's parent-death signal. Pass ``False`` when the pool was
            created from a thread other than the main one: the kernel sends the signal when
            that *thread* ends, which may be long before the process does.
        interval: seconds between the watchdog's checks.
    """
    global _armed_in
    if _armed_in == os.getpid():
        return
    parent = os.getppid()
    owner = parent if owner is None else int(owner)
    if owner != parent and not _alive(owner):
        _kill_self()
    if kernel_signal and _set_pdeathsig() and os.getppid() != parent:
        _kill_self()  # the parent died between getppid() and prctl(): no signal will come
    threading.Thread(target=_watch, args=(owner, parent, interval), name="prednas-parent-watch",
                     daemon=True).start()
    _armed_in = os.getpid()


def pool_initializer(owner: int | None, kernel_signal: bool, then: str | None = None,
                     then_args: tuple = ()) -> None:
    """A pool's ``initializer``: :func:`die_with_parent` first, then ``then(*then_args)``.

    Args:
        owner: ``os.getpid()`` of the process that creates the pool.
        kernel_signal: whether the pool is created from the owner's main thread (see
            :func:`die_with_parent`).
        then: the pool's own initializer as ``"module:function"``, imported only after the
            worker is tied to its owner.
        then_args: its arguments.
    """
    die_with_parent(owner, kernel_signal=kernel_signal)
    if then:
        module, _, name = then.partition(":")
        getattr(importlib.import_module(module), name)(*then_args)
