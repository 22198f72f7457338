"""Tasks: in-memory classification data sets with train / validation / test splits.

>>> from prednas import tasks
>>> task = tasks.get("mnist1d")            # generated offline, deterministic
>>> task = tasks.get("cifar10", path="../shared/data/cifar-10-batches-py")

Each loader declares, when it is registered, the constraints of every one of its options (as a
strategy declares ``_parameter_constraints``), and :func:`get` checks the options against them
before the loader runs::

    @register_task("synthetic", constraints={"n": [Interval(int, 4, 1_000_000)], ...})
    def load_synthetic(n: int = 512, ...) -> Task: ...

so that a bad option is one error naming it and its valid values, before any data is made or
any run directory is created (:func:`check_options` checks without loading).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from prednas.errors import InvalidParameterError, PredNASError, choices_message
from prednas.params import validate_params
from prednas.registry import Registry
from prednas.tasks.base import Task

_REGISTRY: Registry = Registry("task")
_CONSTRAINTS: dict[str, dict[str, list]] = {}
_CHECKS: dict[str, Callable[..., None]] = {}


def _options_of(loader: Callable) -> dict[str, inspect.Parameter]:
    """The loader's keyword options (every named parameter)."""
    return {p.name: p for p in inspect.signature(loader).parameters.values()
            if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}


def register_task(name: str, *, constraints: Mapping[str, list],
                  check: Callable[..., None] | None = None):
    """Decorator registering a loader ``(**options) -> Task`` under ``name``.

    Args:
        name: the task's name.
        constraints: for each option of the loader, the constraints (:mod:`prednas.params`:
            ``Interval``, ``Options``, ``None``, ``"boolean"``, ...) any one of which its value
            must meet. Every option must have an entry: an option added later cannot be
            forgotten.
        check: optional ``check(**options)`` for what one option alone cannot say (sizes that
            multiply, splits that must not be empty); it gets every option, defaults filled in,
            and raises :class:`InvalidParameterError`.

    The registered loader (and the name it is bound to in its module) checks its options on
    every call, before it makes any data.
    """
    def deco(loader: Callable[..., Task]) -> Callable[..., Task]:
        options = _options_of(loader)
        missing = sorted(set(options) - set(constraints))
        extra = sorted(set(constraints) - set(options))
        if missing or extra:
            raise PredNASError(f"task {name!r}: constraints must name each option of its loader "
                               f"exactly (undeclared: {missing}; not options: {extra})")
        signature = inspect.signature(loader)

        @functools.wraps(loader)
        def checked(*args, **kwargs) -> Task:
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError as exc:
                raise InvalidParameterError(f"task {name!r}: {exc}") from None
            _validate(name, bound.arguments)
            return loader(*args, **kwargs)

        _CONSTRAINTS[name] = {k: list(v) for k, v in constraints.items()}
        if check is not None:
            _CHECKS[name] = check
        _REGISTRY.add(name, checked)
        return checked

    return deco


def _validate(name: str, options: Mapping[str, Any]) -> None:
    validate_params(f"task {name!r}", _CONSTRAINTS[name], options)
    if name in _CHECKS:
        loader = _REGISTRY.get(name)
        full = {k: p.default for k, p in _options_of(loader).items()
                if p.default is not inspect.Parameter.empty}
        full.update(options)
        _CHECKS[name](**full)


def check_options(name: str, options: Mapping[str, Any] | None = None, *,
                  label: str = "option") -> None:
    """Check a task's name and options without loading it (``label`` names an option in the
    messages, e.g. ``"--task-opt"``).

    Raises:
        UnknownNameError: no task has this name.
        InvalidParameterError: an option the loader does not take (with the valid ones), or one
            that meets none of its declared constraints.
    """
    loader = _REGISTRY.get(name)
    options = dict(options or {})
    valid = sorted(_options_of(loader))
    for key in options:
        if key not in valid:
            if not valid:
                raise InvalidParameterError(f"Unknown {label} {key!r}: task {name!r} takes none")
            raise InvalidParameterError(
                choices_message(f"Unknown {label} {key!r} for task {name!r}", key, valid))
    _validate(name, options)


def constraints(name: str) -> dict[str, list]:
    """The declared constraints of each option of the task ``name`` (a copy)."""
    _REGISTRY.get(name)
    return {k: list(v) for k, v in _CONSTRAINTS[name].items()}


def get(name: str | Task, **kwargs) -> Task:
    """Load the task ``name``; keyword arguments go to its loader (e.g. ``path=`` for cifar10),
    checked first (:func:`check_options`)."""
    if isinstance(name, Task):
        return name
    check_options(name, kwargs)
    task = _REGISTRY.get(name)(**kwargs)
    if task.options is None:
        task.options = dict(kwargs)
    return task


def list_tasks() -> list[str]:
    return _REGISTRY.names()


from prednas.tasks import cifar10, mnist1d, synthetic  # noqa: E402,F401

__all__ = ["Task", "get", "list_tasks", "register_task", "check_options", "constraints"]
