"""The run directory: an append-only ``evaluations.jsonl`` plus an atomically replaced ``state.json``,
locked while a process owns it.

A run killed at any moment (Ctrl-C, ``kill -9``) leaves at worst a torn last line in
``evaluations.jsonl`` (no newline yet): that line is ignored and cut off before the next append.
Anything else that does not parse, or a ``state.json`` of another format, is a
:class:`~prednas.errors.RunDirectoryError`, raised before anything in the directory is changed.
A second process that tries to use a directory in use gets a one-line error naming the holder.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

from prednas.errors import RunDirectoryError
from prednas.utils import JsonlLog, atomic_write_json, check_header

__all__ = ["RunDir", "FORMAT_VERSION", "STATE_KIND"]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
STATE_KIND = "prednas-search"
EVALUATIONS = "evaluations.jsonl"
STATE = "state.json"
LOCK = ".lock"
OWNER = ".owner.json"
_REQUIRED = ("arch", "canonical", "kind", "round", "slot", "status", "objective")
_STATE_TYPES = {"config": dict, "round": int, "seed": int}


class RunDir:
    """One search's directory.

    Use :meth:`create` for a new run and :meth:`open` to resume; both validate before writing and
    take the directory's lock (:meth:`release` gives it back; the engine holds it for the run).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._log = JsonlLog(self.path / EVALUATIONS)
        self._lock = None

    @property
    def evaluations_path(self) -> Path:
        return self.path / EVALUATIONS

    @property
    def state_path(self) -> Path:
        return self.path / STATE

    @property
    def weights_dir(self) -> Path:
        return self.path / "weights"

    # -- locking --------------------------------------------------------------------------------
    def _acquire(self) -> None:
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.path / LOCK), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            owner = self._owner()
            raise RunDirectoryError(
                f"Run directory {self.path} is in use by another prednas process ({owner}); "
                "wait for it to finish or stop it first") from None
        except PermissionError:
            raise RunDirectoryError(
                f"Run directory {self.path} is not writable (permission denied)") from None
        self._lock = lock
        try:
            atomic_write_json(self.path / OWNER, {"pid": os.getpid(), "host": socket.gethostname(),
                                                  "since": time.strftime("%Y-%m-%dT%H:%M:%S")})
        except OSError as exc:
            self.release()
            raise RunDirectoryError(f"Run directory {self.path} is not writable ({exc})") from None

    def _owner(self) -> str:
        try:
            o = json.loads((self.path / OWNER).read_text())
            return f"pid {o['pid']} on {o['host']}, since {o['since']}"
        except (OSError, ValueError, KeyError, TypeError):
            return "pid unknown"

    def release(self) -> None:
        """Give the directory's lock back (idempotent)."""
        if self._lock is not None:
            try:
                (self.path / OWNER).unlink(missing_ok=True)
            except OSError:
                pass
            self._lock.release()
            self._lock = None

    # -- opening --------------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike, state: dict[str, Any]) -> RunDir:
        """Start a new run in ``path`` (missing or empty); an existing run there is an error."""
        rd = cls(path)
        if rd.path.exists():
            if not rd.path.is_dir():
                raise RunDirectoryError(f"Run directory {rd.path} exists and is not a directory")
            if any(not _leftover(p) for p in rd.path.iterdir()):
                hint = (" (it holds a search: continue it with --resume)"
                        if rd.state_path.exists() else "")
                raise RunDirectoryError(
                    f"Run directory {rd.path} is not empty{hint}; choose a new --out")
        try:
            rd.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunDirectoryError(f"cannot create run directory {rd.path}: {exc}") from None
        rd._acquire()
        try:
            if any(not _leftover(p) for p in rd.path.iterdir()):  # lost a race
                raise RunDirectoryError(f"Run directory {rd.path} is not empty; choose a new --out")
            for p in rd.path.glob(f".{STATE}.*.tmp"):  # a start killed mid-write
                p.unlink()
            rd.evaluations_path.touch()  # before the state: a state always has its records file
            rd.write_state(state)
        except BaseException:
            rd.release()
            raise
        return rd

    @classmethod
    def open(cls, path: str | os.PathLike, lock: bool = True
             ) -> tuple[RunDir, dict[str, Any], list[dict]]:
        """Validate an existing run and return it with its state and completed evaluations
        (the raw JSON objects of ``evaluations.jsonl``). With ``lock``, the directory is locked."""
        rd = cls(path)
        if not rd.path.is_dir():
            raise RunDirectoryError(f"Run directory {rd.path} does not exist")
        if not rd.state_path.is_file():
            raise RunDirectoryError(
                f"{rd.path} is not a prednas search run directory (no {STATE})")
        if lock:
            if not os.access(rd.path, os.W_OK):
                raise RunDirectoryError(
                    f"Run directory {rd.path} is not writable (permission denied); copy it "
                    "somewhere writable to resume it")
            rd._acquire()
        try:
            state = rd._read_state()
            records = rd._read_evaluations()
            if lock and rd.evaluations_path.exists() and not os.access(rd.evaluations_path,
                                                                       os.W_OK):
                raise RunDirectoryError(f"{rd.evaluations_path} is not writable")
        except BaseException:
            rd.release()
            raise
        return rd, state, records

    def _read_state(self) -> dict[str, Any]:
        try:
            state = json.loads(self.state_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RunDirectoryError(f"{self.state_path} is corrupted: {exc}") from None
        check_header(state, kind=STATE_KIND, version=FORMAT_VERSION, error=RunDirectoryError,
                     where=str(self.state_path), what="prednas search state")
        for key, typ in _STATE_TYPES.items():
            if key not in state:
                raise RunDirectoryError(f"{self.state_path} is corrupted: no {key!r} entry")
            if not isinstance(state[key], typ) or isinstance(state[key], bool):
                raise RunDirectoryError(
                    f"{self.state_path} is corrupted: {key!r} is {state[key]!r}, not a "
                    f"{typ.__name__}")
        if state["round"] < 0 or state["seed"] < 0:
            raise RunDirectoryError(f"{self.state_path} is corrupted: negative round or seed")
        plan = state.get("plan")
        if plan is not None and not (isinstance(plan, dict) and isinstance(plan.get("round"), int)
                                     and isinstance(plan.get("candidates"), list)
                                     and all(isinstance(c, dict) and isinstance(c.get("arch"), str)
                                             for c in plan["candidates"])):
            raise RunDirectoryError(f"{self.state_path} is corrupted: malformed 'plan'")
        for key in ("space", "mode", "budget", "per_round"):
            if key not in state["config"]:
                raise RunDirectoryError(
                    f"{self.state_path} is corrupted: no {key!r} entry in 'config'")
        return state

    def _read_evaluations(self) -> list[dict]:
        p = self.evaluations_path
        if not p.exists():
            raise RunDirectoryError(f"{self.path} has a state but no {EVALUATIONS}")

        def corrupt(line: int, msg: str):
            raise RunDirectoryError(f"{p} is corrupted at line {line}: {msg}")

        try:
            records = self._log.read(on_corrupt=corrupt)
        except OSError as exc:
            raise RunDirectoryError(f"cannot read {p}: {exc}") from None
        for i, rec in enumerate(records, 1):
            if any(k not in rec for k in _REQUIRED):
                raise RunDirectoryError(
                    f"{p} record {i} is not a prednas evaluation record (needs keys "
                    f"{', '.join(_REQUIRED)})")
        return records

    # -- writing --------------------------------------------------------------------------------
    def append(self, record: dict[str, Any]) -> None:
        """Append one record as a JSON line, flushed and synced before returning."""
        self._log.append(record)

    def write_state(self, state: dict[str, Any]) -> None:
        atomic_write_json(self.state_path, state)


def _leftover(p: Path) -> bool:
    """Files a new run may find in its directory: the lock, and what a start killed before its
    first state snapshot leaves (a temp file, an empty records file)."""
    if p.name in (LOCK, OWNER) or (p.name.startswith(f".{STATE}.") and p.name.endswith(".tmp")):
        return True
    return (p.name == EVALUATIONS and p.is_file() and p.stat().st_size == 0
            and not (p.parent / STATE).exists())
