"""Small helpers used across the packages: devices, seeds, atomic files."""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from prednas.errors import InvalidParameterError

__all__ = ["resolve_device", "make_rng", "torch_seed", "atomic_path", "atomic_write_text",
           "atomic_write_json", "read_log", "append_log", "split_passthrough",
           "prednas_home"]

#: the "chosen batch" of latency figures (the search cost ``latency_batch_ms``, model cards) when
#: none is given: a typical batch of offline inference
DEFAULT_LATENCY_BATCH = 64


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` (or ``None``) picks CUDA when present, else CPU; anything else is parsed by torch."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InvalidParameterError(
            f"Invalid device {device!r}; valid choices: auto, cpu, cuda, cuda:N") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidParameterError(f"Device {device!r} requested but CUDA is not available; "
                                    "valid choices here: auto, cpu")
    return dev


def make_rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    """A private NumPy generator from a seed (never the global ``np.random``)."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


@contextlib.contextmanager
def torch_seed(seed: int | None, device: torch.device | None = None) -> Iterator[None]:
    """Seed torch inside the block and restore the global RNG state afterwards."""
    devices = [device] if device is not None and device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        if seed is not None:
            torch.manual_seed(int(seed))
        yield


@contextlib.contextmanager
def numpy_global_seed(seed: int) -> Iterator[None]:
    """Run third-party code that seeds global ``np.random``, restoring the state afterwards."""
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        yield
    finally:
        np.random.set_state(state)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success it replaces ``path`` (``os.replace``), on
    failure it is removed, so ``path`` is never left half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def read_log(path: str | os.PathLike) -> list[dict]:
    """The rows of an append-only JSON-lines log (a benchmark's results); ``[]`` when it does
    not exist yet. A last line cut short by a kill is skipped (it is written again on resume)."""
    p = Path(path)
    if not p.exists():
        return []
    return [json.loads(x) for x in p.read_text(encoding="utf-8").splitlines() if x.endswith("}")]


def append_log(path: str | os.PathLike, row: dict) -> None:
    """Append ``row`` to a JSON-lines log as one line (keys sorted); a last line cut short by a
    kill is ended first, so the new row stands on a line of its own. Processes appending to the
    same log at once (a benchmark run in shards) take turns through a lock file beside it."""
    from filelock import FileLock

    line = json.dumps(row, sort_keys=True, default=_json_default) + "\n"
    with FileLock(f"{os.fspath(path)}.lock"), open(path, "ab") as f:
        if f.tell() > 0:
            with open(path, "rb") as r:
                r.seek(-1, os.SEEK_END)
                if r.read(1) != b"\n":
                    line = "\n" + line
        f.write(line.encode("utf-8"))


def split_passthrough(argv: list[str]) -> tuple[list[str], list[str]]:
    """``(own, passed)``: a script's arguments before ``--`` and those after it (passed on to
    the command it runs)."""
    if "--" not in argv:
        return list(argv), []
    i = argv.index("--")
    return list(argv[:i]), list(argv[i + 1:])


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def prednas_home(path: str | os.PathLike | None = None) -> Path:
    """Data location: explicit argument, then ``$PREDNAS_HOME``, then ``~/.cache/prednas``."""
    if path is not None:
        return Path(path)
    env = os.environ.get("PREDNAS_HOME")
    return Path(env) if env else Path.home() / ".cache" / "prednas"


class JsonlLog:
    """An append-only JSON-lines file that survives ``kill -9``.

    A process killed mid-write leaves at worst an unfinished last line (no newline yet):
    :meth:`read` ignores it and the next :meth:`append` cuts it off first. Any other line that does
    not parse is corruption, reported by ``on_corrupt(line_number, message)`` (which should raise).
    Each append is flushed and fsynced before it returns.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._torn_at: int | None = None

    def read(self, on_corrupt=None) -> list[dict]:
        """Every complete record, in file order (an absent file has none)."""
        import logging

        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        records, pos = [], 0
        lines = data.split(b"\n")
        for i, raw in enumerate(lines):
            if i == len(lines) - 1:
                if raw.strip():
                    logging.getLogger(__name__).warning(
                        "ignoring an unfinished last line in %s", self.path)
                    self._torn_at = pos
                break
            pos += len(raw) + 1
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
                if not isinstance(rec, dict):
                    raise ValueError(f"a JSON {type(rec).__name__}, not an object")
            except (ValueError, UnicodeDecodeError) as exc:
                if on_corrupt is None:
                    raise ValueError(f"{self.path} is corrupted at line {i + 1}: {exc}") from None
                on_corrupt(i + 1, str(exc))
                continue
            records.append(rec)
        return records

    def append(self, record: dict) -> None:
        line = json.dumps(record, sort_keys=True, default=_json_default, allow_nan=True) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "r+b" if self.path.exists() else "wb") as f:
            if self._torn_at is not None:
                f.truncate(self._torn_at)
                self._torn_at = None
            f.seek(0, os.SEEK_END)
            f.write(line.encode())
            f.flush()
            os.fsync(f.fileno())


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna logs every trial and warns about experimental features at INFO/WARNING level; our
    own progress bar and report say what matters."""
    import warnings

    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(level)


def new_figure(figsize=(5, 3.5)):
    """``(figure, axes)`` drawn with Agg, without pyplot's global state or the user's backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def read_versioned_json(path: str | os.PathLike, *, kind: str, version: int, error: type,
                        what: str, version_key: str = "format") -> dict:
    """The JSON object in ``path`` after checking that it exists, parses, has ``"kind": kind``
    and ``version_key`` equal to ``version``; otherwise ``error`` (a ``PredNASError`` subclass)
    with one line that says which, naming ``what`` the file should be."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path.parent} is not a {what} (no {path.name})")
    try:
        obj = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{path} is corrupted: {exc}") from None
    return check_header(obj, kind=kind, version=version, error=error, where=str(path),
                        what=f"{what} description", version_key=version_key)


def check_header(obj, *, kind: str, version: int, error: type, where: str, what: str,
                 version_key: str = "format") -> dict:
    """``obj`` after checking it is a dict with ``"kind": kind`` and ``version_key`` equal to
    ``version`` (the header of every file prednas writes); else one-line ``error``."""
    if not isinstance(obj, dict) or obj.get("kind") != kind:
        found = obj.get("kind") if isinstance(obj, dict) else type(obj).__name__
        raise error(f"{where} is not a {what} (kind {found!r})")
    if obj.get(version_key) != version:
        raise error(f"{where} has format {obj.get(version_key)!r}; this prednas reads format "
                    f"{version}")
    return obj


def fmt_number(x, nd: int = 2) -> str:
    """``x`` with ``nd`` decimals for a report, ``"n/a"`` when missing or not finite."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return "n/a"
    return f"{x:.{nd}f}" if math.isfinite(x) else "n/a"


def settings_difference(given, stored, path: str = "") -> str | None:
    """The first difference between two settings dicts (``"a.b: 3 given, 2 stored"``), or
    ``None``; lists and tuples compare by their items (settings read back from JSON or torch)."""
    if isinstance(given, dict) and isinstance(stored, dict):
        for k in sorted(set(given) | set(stored)):
            d = settings_difference(given.get(k), stored.get(k), f"{path}.{k}" if path else k)
            if d:
                return d
        return None
    if isinstance(given, (list, tuple)) and isinstance(stored, (list, tuple)):
        if len(given) == len(stored) and all(
                settings_difference(a, b) is None for a, b in zip(given, stored)):
            return None
    elif given == stored:
        return None
    return f"{path}: {given!r} given, {stored!r} stored"


def load_checked_state(path, *, kind: str, format_version: int, what: str, settings: dict,
                       hint: str) -> dict:
    """A state file written by ``torch.save`` of tensors and plain values, read with
    ``weights_only=True`` (it never runs code), whose ``kind``, ``format`` and ``settings`` must
    match; anything else is one :class:`~prednas.errors.IncompatibleArtifactError` naming the
    file (``what`` names the kind of state, ``hint`` says what to do about other settings)."""
    from prednas.errors import IncompatibleArtifactError

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one clear error
        raise IncompatibleArtifactError(f"{path} is not a readable {what} ({exc})") from None
    if not isinstance(state, dict) or state.get("kind") != kind:
        raise IncompatibleArtifactError(f"{path} is not a {what}")
    if state.get("format") != format_version:
        raise IncompatibleArtifactError(f"{path} has format {state.get('format')!r}; this "
                                        f"version reads {format_version}")
    diff = settings_difference(settings, state.get("settings"))
    if diff:
        raise IncompatibleArtifactError(f"{path} was made with other settings ({diff}); {hint}")
    return state
