"""Argument helpers shared by subcommands (argparse only at import time)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")


def add_seed(p: argparse.ArgumentParser, default: int = 0) -> None:
    p.add_argument("--seed", type=int, default=default, help=f"random seed (default {default})")


def defer_arguments(p: argparse.ArgumentParser,
                    populate: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``p``'s arguments only when ``p`` is used, when its parser supports that (the CLI's)."""
    defer = getattr(p, "defer", None)
    if defer is not None:
        defer(populate)
    else:
        populate(p)


def parse_task_options(items: list[str] | None) -> dict[str, Any]:
    """``["path=x.npz", "num_samples=5000", "image=true"]`` -> ``{"path": "x.npz",
    "num_samples": 5000, "image": True}``: an int, else a float, else ``true``/``false``, else the
    string (each task then checks its options' types and ranges)."""
    from prednas.errors import InvalidParameterError

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidParameterError(f"Task option {item!r} must look like key=value")
        for conv in (int, float):
            try:
                out[key] = conv(value)
                break
            except ValueError:
                continue
        else:
            booleans = {"true": True, "false": False}
            out[key] = booleans.get(value.lower(), value)
    return out


def add_task(p: argparse.ArgumentParser, default: str | None = "mnist1d") -> None:
    p.add_argument("--task", default=default, help=f"task name (default {default})")
    p.add_argument("--task-path", default=None, help="data path for tasks read from disk (cifar10)")
    p.add_argument("--task-opt", action="append", metavar="KEY=VALUE",
                   help="extra task loader option, repeatable (e.g. num_samples=5000)")


def check_task_options(task: str, opts: dict[str, Any], *, path_from_flag: bool = False) -> None:
    """Check ``--task`` and its options against the task's declared ones (names, types, ranges:
    :func:`prednas.tasks.check_options`), before anything is loaded or created.

    Raises :class:`UnknownNameError` for an unknown task name, :class:`InvalidParameterError`
    for an option the loader does not take or a value it does not accept.
    """
    from prednas import tasks
    from prednas.errors import InvalidParameterError

    valid = sorted(tasks.constraints(task))
    if "path" in opts and "path" not in valid and path_from_flag:
        raise InvalidParameterError(f"--task-path: task {task!r} reads no data path; its options "
                                    f"are: {', '.join(valid) or 'none'}")
    tasks.check_options(task, opts, label="--task-opt")


def task_options(args: argparse.Namespace) -> dict[str, Any]:
    """Every option of ``--task`` (``--task-path`` and each ``--task-opt``), checked."""
    opts = parse_task_options(args.task_opt)
    if args.task_path:
        opts["path"] = args.task_path
    check_task_options(args.task, opts, path_from_flag=bool(args.task_path))
    return opts


def load_task(args: argparse.Namespace):
    """The task named by ``--task``, loaded with ``--task-path`` and every ``--task-opt``."""
    from prednas import tasks

    return tasks.get(args.task, **task_options(args))
