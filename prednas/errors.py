"""The one exceptions module of prednas.

Every error raised for bad user input is a :class:`PredNASError` subclass whose message names the
bad value and, where there is a fixed set of valid values, lists them (closest match first).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "PredNASError",
    "UnknownNameError",
    "InvalidArchitectureError",
    "InvalidParameterError",
    "DataNotFoundError",
    "NotFittedError",
    "IncompatibleArtifactError",
    "RunDirectoryError",
    "CandidateError",
    "choices_message",
]


class PredNASError(Exception):
    """Root of every error prednas raises on purpose."""


class UnknownNameError(PredNASError, KeyError):
    """A name (space, task, proxy, predictor, metric, op, ...) that is not registered."""

    def __init__(self, kind: str, name: object, valid: Iterable[str]):
        self.kind = kind
        self.name = name
        self.valid = sorted(valid)
        super().__init__(choices_message(f"Unknown {kind} {name!r}", name, self.valid))

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0])


class InvalidArchitectureError(PredNASError, ValueError):
    """An architecture string or object that is not valid in its space."""


class InvalidParameterError(PredNASError, ValueError):
    """A parameter outside its valid range (sklearn-style message)."""


class DataNotFoundError(PredNASError, FileNotFoundError):
    """A dataset or benchmark file that is missing or malformed."""


try:  # let sklearn utilities recognise our error as theirs
    from sklearn.exceptions import NotFittedError as _SkNotFitted
except ImportError:  # pragma: no cover - sklearn is a dependency
    _SkNotFitted = ValueError


class NotFittedError(PredNASError, _SkNotFitted):
    """A predictor used before ``fit``."""


class IncompatibleArtifactError(PredNASError):
    """A saved artifact (predictor, ensemble, search state) that does not fit where it is loaded."""


class RunDirectoryError(PredNASError):
    """A run directory that is corrupted, foreign, or clashes with the requested run."""


class CandidateError(PredNASError):
    """Raised by an evaluator: this candidate failed (and the search goes on without it).

    Args:
        status: the failure kind recorded (``"failed"``, ``"oom"``, ``"diverged"``, ...).
    """

    def __init__(self, message: str, status: str = "failed"):
        super().__init__(message)
        self.status = status


def choices_message(prefix: str, name: object, valid: Iterable[str]) -> str:
    """Build ``"<prefix>; valid choices: a, b, c"`` with the closest matches first."""
    valid = sorted(str(v) for v in valid)
    close = difflib.get_close_matches(str(name), valid, n=3, cutoff=0.5)
    ordered = close + [v for v in valid if v not in close]
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{prefix}{hint}; valid choices: {', '.join(ordered)}"


def check_param(owner: str, name: str, value, *, kind: type | tuple = (int,), low=None,
                high=None, low_open: bool = False) -> None:
    """Raise :class:`InvalidParameterError` in scikit-learn's wording when ``value`` is out of range
    (one implementation: :func:`prednas.params.check_param`)."""
    from prednas.params import check_param as _check

    _check(owner, name, value, kind=kind, low=low, high=high, low_open=low_open)
