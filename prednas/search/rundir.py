"""The run directory: an append-only ``evaluations.jsonl`` plus an atomically replaced ``state.json``.

A run killed at any moment (Ctrl-C, ``kill -9``) leaves at worst a torn last line in
``evaluations.jsonl`` (no newline yet): that line is ignored and cut off before the next append.
Anything else that does not parse, or a ``state.json`` of another format, is a
:class:`~prednas.errors.RunDirectoryError`, raised before anything in the directory is changed.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from prednas.errors import RunDirectoryError
from prednas.utils import atomic_write_json

__all__ = ["RunDir", "FORMAT_VERSION", "STATE_KIND"]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
STATE_KIND = "prednas-search"
EVALUATIONS = "evaluations.jsonl"
STATE = "state.json"
_REQUIRED = ("arch", "canonical", "kind", "round", "slot", "status", "objective")


class RunDir:
    """One search's directory.

    Use :meth:`create` for a new run and :meth:`open` to resume; both validate before writing.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._torn_at: int | None = None

    @property
    def evaluations_path(self) -> Path:
        return self.path / EVALUATIONS

    @property
    def state_path(self) -> Path:
        return self.path / STATE

    @property
    def weights_dir(self) -> Path:
        return self.path / "weights"

    # -- opening --------------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike, state: dict[str, Any]) -> RunDir:
        """Start a new run in ``path`` (missing or empty); an existing run there is an error."""
        rd = cls(path)
        if rd.path.exists():
            if not rd.path.is_dir():
                raise RunDirectoryError(f"Run directory {rd.path} exists and is not a directory")
            if any(rd.path.iterdir()):
                hint = (" (it holds a search: continue it with --resume)"
                        if rd.state_path.exists() else "")
                raise RunDirectoryError(
                    f"Run directory {rd.path} is not empty{hint}; choose a new --out")
        rd.path.mkdir(parents=True, exist_ok=True)
        rd.write_state(state)
        rd.evaluations_path.touch()
        return rd

    @classmethod
    def open(cls, path: str | os.PathLike) -> tuple[RunDir, dict[str, Any], list[dict]]:
        """Validate an existing run and return it with its state and completed evaluations."""
        rd = cls(path)
        if not rd.path.is_dir():
            raise RunDirectoryError(f"Run directory {rd.path} does not exist")
        if not rd.state_path.is_file():
            raise RunDirectoryError(
                f"{rd.path} is not a prednas search run directory (no {STATE})")
        try:
            state = json.loads(rd.state_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RunDirectoryError(f"{rd.state_path} is corrupted: {exc}") from None
        if not isinstance(state, dict) or state.get("kind") != STATE_KIND:
            raise RunDirectoryError(
                f"{rd.state_path} is not a prednas search state (kind "
                f"{state.get('kind') if isinstance(state, dict) else type(state).__name__!r})")
        if state.get("format") != FORMAT_VERSION:
            raise RunDirectoryError(
                f"{rd.state_path} has format {state.get('format')!r}; this prednas reads format "
                f"{FORMAT_VERSION}")
        for key in ("config", "round", "seed"):
            if key not in state:
                raise RunDirectoryError(f"{rd.state_path} is corrupted: no {key!r} entry")
        records = rd._read_evaluations()
        space = state["config"].get("space")
        for i, r in enumerate(records, 1):
            if r.get("space", space) != space:
                raise RunDirectoryError(
                    f"{rd.evaluations_path} line {i} is from space {r.get('space')!r}, "
                    f"the run's state says {space!r}")
        return rd, state, records

    def _read_evaluations(self) -> list[dict]:
        p = self.evaluations_path
        if not p.exists():
            raise RunDirectoryError(f"{self.path} has a state but no {EVALUATIONS}")
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise RunDirectoryError(f"cannot read {p}: {exc}") from None
        records = []
        pos = 0
        lines = data.split(b"\n")
        for i, raw in enumerate(lines):
            last = i == len(lines) - 1
            if last:
                if raw.strip():  # torn final line (killed mid-write): ignored, cut before appending
                    log.warning("ignoring an unfinished last line in %s", p)
                    self._torn_at = pos
                break
            pos += len(raw) + 1
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise RunDirectoryError(f"{p} is corrupted at line {i + 1}: {exc}") from None
            if not isinstance(rec, dict) or any(k not in rec for k in _REQUIRED):
                raise RunDirectoryError(
                    f"{p} line {i + 1} is not a prednas evaluation record (needs keys "
                    f"{', '.join(_REQUIRED)})")
            records.append(rec)
        return records

    # -- writing --------------------------------------------------------------------------------
    def append(self, record: dict[str, Any]) -> None:
        """Append one record as a JSON line, flushed and synced before returning."""
        line = json.dumps(record, sort_keys=True, default=_default, allow_nan=True) + "\n"
        with open(self.evaluations_path, "r+b" if self.evaluations_path.exists() else "wb") as f:
            if self._torn_at is not None:
                f.truncate(self._torn_at)
                self._torn_at = None
            f.seek(0, os.SEEK_END)
            f.write(line.encode())
            f.flush()
            os.fsync(f.fileno())

    def write_state(self, state: dict[str, Any]) -> None:
        atomic_write_json(self.state_path, state)


def _default(o):
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    return str(o)
