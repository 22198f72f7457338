"""Parameter constraints declared once per class (scikit-learn's ``_parameter_constraints``).

A class lists, for each constructor argument, the constraints any one of which the value must
meet::

    class PredictorFilter(Filter):
        _parameter_constraints = {"survivors": [Interval(int, 1, None)],
                                  "kappa": [Interval(float, 0, None)],
                                  "supernet": [Options("auto"), None, HasMethods("score")]}

and :func:`validate_params` checks them with one message format::

    The 'survivors' parameter of PredictorFilter must be an int in [1, inf). Got 0 instead.

:class:`prednas.search.Strategy` subclasses are checked when they are constructed.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prednas.errors import InvalidParameterError

__all__ = ["Interval", "Options", "HasMethods", "InstanceOf", "SequenceOf", "Device", "DEVICE",
           "PATH", "validate_params", "check_param"]


@dataclass(frozen=True)
class Interval:
    """A number of ``kind`` (``int`` or ``float``; an int is a valid float) between ``low`` and
    ``high`` (``None``: unbounded); ``closed`` is ``"both"``, ``"left"``, ``"right"`` or
    ``"neither"``."""

    kind: type
    low: float | None
    high: float | None
    closed: str = "both"

    def accepts(self, v: Any) -> bool:
        if isinstance(v, bool):
            return False
        if self.kind is int:
            if not isinstance(v, numbers.Integral):
                return False
        elif not isinstance(v, numbers.Real) or (isinstance(v, float) and math.isnan(v)):
            return False
        lo_ok = self.low is None or (v >= self.low if self.closed in ("both", "left")
                                     else v > self.low)
        hi_ok = self.high is None or (v <= self.high if self.closed in ("both", "right")
                                      else v < self.high)
        return lo_ok and hi_ok

    def __str__(self) -> str:
        name = "an int" if self.kind is int else "a float"
        lb = "[" if self.low is not None and self.closed in ("both", "left") else "("
        rb = "]" if self.high is not None and self.closed in ("both", "right") else ")"
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "inf" if self.high is None else f"{self.high:g}"
        return f"{name} in {lb}{lo}, {hi}{rb}"


@dataclass(frozen=True)
class Options:
    """One of a fixed set of values."""

    values: tuple

    def __init__(self, *values: Any):
        object.__setattr__(self, "values", tuple(values))

    def accepts(self, v: Any) -> bool:
        return any(v == o and type(v) is type(o) for o in self.values)

    def __str__(self) -> str:
        return ("one of " if len(self.values) > 1 else "") + ", ".join(map(repr, self.values))


@dataclass(frozen=True)
class HasMethods:
    """An object with these methods (duck typing)."""

    methods: tuple[str, ...]

    def __init__(self, *methods: str):
        object.__setattr__(self, "methods", tuple(methods))

    def accepts(self, v: Any) -> bool:
        return all(callable(getattr(v, m, None)) for m in self.methods)

    def __str__(self) -> str:
        return "an object with " + " and ".join(f"{m}()" for m in self.methods)


@dataclass(frozen=True)
class InstanceOf:
    types: tuple[type, ...]
    label: str = ""

    def __init__(self, *types: type, label: str = ""):
        object.__setattr__(self, "types", tuple(types))
        object.__setattr__(self, "label", label)

    def accepts(self, v: Any) -> bool:
        return isinstance(v, self.types) and not (bool not in self.types and isinstance(v, bool))

    def __str__(self) -> str:
        return self.label or " or ".join(f"a {t.__name__}" for t in self.types)


@dataclass(frozen=True)
class SequenceOf:
    """A list or tuple (not a string) whose items each meet ``item``."""

    item: Any
    min_len: int = 0

    def accepts(self, v: Any) -> bool:
        return (isinstance(v, Sequence) and not isinstance(v, (str, bytes))
                and len(v) >= self.min_len and all(_accepts(self.item, x) for x in v))

    def __str__(self) -> str:
        more = f" (at least {self.min_len})" if self.min_len else ""
        return f"a list of {_describe(self.item)}{more}"


PATH = InstanceOf(str, os.PathLike, label="a path")


@dataclass(frozen=True)
class Device:
    """A device name this machine has: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``,
    ``"cuda:N"``... (:func:`prednas.utils.resolve_device`; checked when used, so that a typo is an
    error before a run starts, not when its first candidate trains)."""

    def accepts(self, v: Any) -> bool:
        if not isinstance(v, str):
            return False
        from prednas.utils import resolve_device

        try:
            resolve_device(v)
        except InvalidParameterError:
            return False
        return True

    def __str__(self) -> str:
        import torch

        cuda = torch.cuda.is_available()
        return "a device of this machine (auto, cpu" + (", cuda, cuda:N)" if cuda else ")")


DEVICE = Device()


def _accepts(c: Any, v: Any) -> bool:
    if c is None:
        return v is None
    if c == "boolean":
        return isinstance(v, bool)
    if c == "dict":
        return isinstance(v, Mapping)
    if isinstance(c, type):
        return isinstance(v, c) and not (c is not bool and isinstance(v, bool))
    return c.accepts(v)


def _describe(c: Any) -> str:
    if c is None:
        return "None"
    if c == "boolean":
        return "a bool"
    if c == "dict":
        return "a dict"
    if isinstance(c, type):
        return f"a {c.__name__}"
    return str(c)


def validate_params(owner: str, constraints: Mapping[str, list], params: Mapping[str, Any]) -> None:
    """Raise :class:`InvalidParameterError` for the first parameter that meets none of its
    constraints (parameters without constraints are not checked)."""
    for name, allowed in constraints.items():
        if name not in params:
            continue
        v = params[name]
        if any(_accepts(c, v) for c in allowed):
            continue
        wanted = [_describe(c) for c in allowed]
        text = wanted[0] if len(wanted) == 1 else ", ".join(wanted[:-1]) + " or " + wanted[-1]
        raise InvalidParameterError(
            f"The {name!r} parameter of {owner} must be {text}. Got {v!r} instead.")


def check_param(owner: str, name: str, value: Any, *, kind: type | tuple = (int,), low=None,
                high=None, low_open: bool = False) -> None:
    """Check one function argument against an interval (for functions; classes declare
    ``_parameter_constraints``)."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    k = float if float in kinds else int
    validate_params(owner, {name: [Interval(k, low, high, "right" if low_open else "both")]},
                    {name: value})
