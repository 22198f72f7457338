"""A small name registry shared by spaces, tasks, proxies, predictors and benchmarks (timm-style)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from prednas.errors import PredNASError, UnknownNameError

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects; a duplicate name raises, an unknown one lists the valid names.

    Args:
        kind: What the registry holds, used in error messages ("proxy", "space", ...).
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name``."""

        def deco(obj: T) -> T:
            self.add(name, obj)
            return obj

        return deco

    def register_class(self, name: str) -> Callable[[T], T]:
        """Class decorator registering ``cls`` under ``name`` and setting ``cls.name``."""

        def deco(cls: T) -> T:
            cls.name = name
            self.add(name, cls)
            return cls

        return deco

    def add(self, name: str, obj: T) -> None:
        if name in self._items:
            raise PredNASError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except (KeyError, TypeError):
            raise UnknownNameError(self.kind, name, self._items) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
