"""One registry per strategy family: ``register_x`` / ``list_x`` / ``create_x``.

>>> from prednas.search import create_filter, list_filters
>>> list_filters()
['none', 'predictor']
>>> create_filter("predictor", survivors=10)

A strategy stored in a run directory (:meth:`Strategy.describe`) is rebuilt by
:func:`rebuild_strategy`; the conformance suite in ``tests/search/test_conformance.py`` runs over
every registered strategy.
"""

from __future__ import annotations

import importlib
from typing import Any

from prednas.errors import InvalidParameterError, RunDirectoryError
from prednas.registry import Registry

__all__ = ["FAMILIES", "registry", "register_mutator", "register_filter", "register_evaluator",
           "register_executor", "register_ensembler", "register_scheduler", "list_mutators",
           "list_filters", "list_evaluators", "list_executors", "list_ensemblers",
           "list_schedulers", "create_mutator", "create_filter", "create_evaluator",
           "create_executor", "create_ensembler", "create_scheduler",
           "rebuild_strategy", "REGISTRIES"]

#: family -> module defining its built-in strategies
FAMILIES = {"mutator": "prednas.search.mutators", "filter": "prednas.search.filters",
            "evaluator": "prednas.search.evaluators", "executor": "prednas.search.executors",
            "ensembler": "prednas.search.ensemblers", "scheduler": "prednas.search.schedulers"}
REGISTRIES: dict[str, Registry] = {f: Registry(f) for f in FAMILIES}


def registry(family: str) -> Registry:
    """The registry of ``family`` (its built-in strategies loaded)."""
    if family not in REGISTRIES:
        from prednas.errors import UnknownNameError

        raise UnknownNameError("strategy family", family, FAMILIES)
    importlib.import_module(FAMILIES[family])
    return REGISTRIES[family]


def _register(family: str, name: str):
    reg = REGISTRIES[family]

    def deco(cls):
        reg.register_class(name)(cls)
        cls.name = name
        return cls

    return deco


def register_mutator(name: str):
    """Class decorator: register a :class:`~prednas.search.Mutator` under ``name``."""
    return _register("mutator", name)


def register_filter(name: str):
    """Class decorator: register a :class:`~prednas.search.Filter` under ``name``."""
    return _register("filter", name)


def register_evaluator(name: str):
    """Class decorator: register an :class:`~prednas.search.Evaluator` under ``name``."""
    return _register("evaluator", name)


def register_executor(name: str):
    """Class decorator: register an :class:`~prednas.search.Executor` under ``name``."""
    return _register("executor", name)


def register_ensembler(name: str):
    """Class decorator: register an :class:`~prednas.search.Ensembler` under ``name``."""
    return _register("ensembler", name)


def register_scheduler(name: str):
    """Class decorator: register a :class:`~prednas.search.schedulers.Scheduler` under ``name``."""
    return _register("scheduler", name)


def list_mutators() -> list[str]:
    return registry("mutator").names()


def list_filters() -> list[str]:
    return registry("filter").names()


def list_evaluators() -> list[str]:
    return registry("evaluator").names()


def list_executors() -> list[str]:
    return registry("executor").names()


def list_ensemblers() -> list[str]:
    return registry("ensembler").names()


def list_schedulers() -> list[str]:
    return registry("scheduler").names()


def _create(family: str, name: str, params: dict[str, Any]):
    return registry(family).get(name)(**params)


def create_mutator(name: str, **params):
    return _create("mutator", name, params)


def create_filter(name: str, **params):
    return _create("filter", name, params)


def create_evaluator(name: str, **params):
    return _create("evaluator", name, params)


def create_executor(name: str, **params):
    return _create("executor", name, params)


def create_ensembler(name: str, **params):
    return _create("ensembler", name, params)


def create_scheduler(name: str, **params):
    return _create("scheduler", name, params)


def rebuild_strategy(family: str | None, desc: dict | None):
    """The strategy that :meth:`Strategy.describe` stored (``None`` stays ``None``)."""
    from prednas.search.base import decode_param

    if desc is None:
        return None
    if not isinstance(desc, dict) or not isinstance(desc.get("params", {}), dict):
        raise RunDirectoryError(f"the run's stored {family or 'strategy'} is corrupted: "
                                f"{str(desc)[:80]!r} is not a strategy description")
    family = family or desc.get("family")
    name = desc.get("name")
    reg = registry(family)
    if name not in reg:
        raise RunDirectoryError(
            f"the run's {family} {name!r} is not a registered strategy (registered: "
            f"{', '.join(reg.names())}); register it, or pass it again to "
            f"Search.resume({family}=...)")
    try:
        return reg.get(name)(**decode_param(desc.get("params") or {}))
    except (TypeError, AttributeError, InvalidParameterError) as exc:
        raise RunDirectoryError(f"cannot rebuild the run's {family} {name!r}: {exc}") from None
