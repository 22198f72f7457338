"""Tasks: in-memory classification data sets with train / validation / test splits.

>>> from prednas import tasks
>>> task = tasks.get("mnist1d")            # generated offline, deterministic
>>> task = tasks.get("cifar10", path="../shared/data/cifar10-subset.npz")
"""

from __future__ import annotations

from prednas.registry import Registry
from prednas.tasks.base import Task

_REGISTRY: Registry = Registry("task")


def register_task(name: str):
    """Decorator registering a loader ``(**kwargs) -> Task`` under ``name``."""
    return _REGISTRY.register(name)


def get(name: str | Task, **kwargs) -> Task:
    """Load the task ``name``; keyword arguments go to its loader (e.g. ``path=`` for cifar10)."""
    if isinstance(name, Task):
        return name
    task = _REGISTRY.get(name)(**kwargs)
    if task.options is None:
        task.options = dict(kwargs)
    return task


def list_tasks() -> list[str]:
    return _REGISTRY.names()


from prednas.tasks import cifar10, mnist1d, synthetic  # noqa: E402,F401

__all__ = ["Task", "get", "list_tasks", "register_task"]
