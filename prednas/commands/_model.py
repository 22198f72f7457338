"""``--model FILE:FUNCTION``: search variants of the user's own network (``search``, ``pipeline``).

The file is imported by path (:func:`importlib.util.spec_from_file_location`), which **runs it**:
that is the point (it is the user's own code, named on their command line), unlike every file
prednas reads as data. The function is called with no arguments and must return a
``torch.nn.Module``; :func:`spaces.from_model` turns it into a search space, with the task's inputs
as the example input. A run records where the network came from (``model_notes``), so that
``--resume`` regenerates the same space.

Module-level imports are the standard library only (the CLI parses without torch).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

__all__ = ["HELP", "split_spec", "load_factory", "space_from_spec", "model_notes",
           "space_from_notes", "space_of_run", "fork_ok"]

HELP = ("search variants of your own network: FILE.py:FUNCTION, a function (or class) that takes "
        "no arguments and returns a torch.nn.Module; its replaceable layers become the search "
        "space and the network itself the baseline. The file is imported, so it RUNS: give only "
        "files you trust")

#: version of the ``model`` entry in a run's notes
NOTES_FORMAT = 1


def _one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def split_spec(spec: str) -> tuple[Path, str]:
    """``"dir/my_model.py:make_model"`` -> ``(Path("dir/my_model.py"), "make_model")``."""
    from prednas.errors import InvalidParameterError

    path, sep, fn = str(spec).rpartition(":")
    if not sep or not path or not fn.isidentifier():
        raise InvalidParameterError(
            f"--model {spec!r} must be FILE.py:FUNCTION, e.g. my_model.py:make_model")
    return Path(path), fn


@contextlib.contextmanager
def _importable_from(folder: Path):
    """The file's folder first on ``sys.path`` while it runs (as ``python FILE.py`` would have it),
    so that it can import its neighbours."""
    entry = str(folder)
    added = entry not in sys.path
    if added:
        sys.path.insert(0, entry)
    try:
        yield
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(entry)


def _load_module(path: Path):
    from prednas.errors import DataNotFoundError, InvalidParameterError

    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise DataNotFoundError(f"--model: {str(path)!r} {what}; give a Python file, e.g. "
                                "my_model.py:make_model")
    path = path.resolve()
    # a stable, unique module name: pickling the network's classes by reference works in this
    # process and in the forked workers of a process pool
    name = f"prednas_user_model_{hashlib.sha1(str(path).encode()).hexdigest()[:10]}"
    previous = sys.modules.get(name)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise InvalidParameterError(f"--model: {str(path)!r} cannot be imported as a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        with _importable_from(path.parent):
            spec.loader.exec_module(module)
    except BaseException as exc:
        if previous is not None:
            sys.modules[name] = previous
        else:
            sys.modules.pop(name, None)
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise InvalidParameterError(f"--model: running {path.name} failed: "
                                    f"{_one_line(exc)}") from None
    return module


def _callables(module) -> list[str]:
    """Public callables defined in the file itself (not those it imports)."""
    return sorted(n for n, v in vars(module).items()
                  if not n.startswith("_") and callable(v)
                  and getattr(v, "__module__", None) == module.__name__)


def load_factory(spec: str):
    """The function named by ``spec``, its file imported (and so run)."""
    from prednas.errors import InvalidParameterError, choices_message

    path, fn = split_spec(spec)
    module = _load_module(path)
    factory = getattr(module, fn, None)
    if factory is None or not callable(factory):
        found = _callables(module)
        what = "has no function" if factory is None else "has a non-callable"
        if not found:
            raise InvalidParameterError(
                f"--model: {path.name} {what} {fn!r}, and defines no function or class")
        raise InvalidParameterError(choices_message(
            f"--model: {path.name} {what} {fn!r}", fn, found).replace(
                "valid choices:", "the callables it defines:"))
    return factory


def _network(spec: str):
    from torch import nn

    from prednas.errors import InvalidParameterError

    factory = load_factory(spec)
    path, fn = split_spec(spec)
    try:
        with _importable_from(path.resolve().parent):
            net = factory()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        raise InvalidParameterError(f"--model: {fn}() raised {_one_line(exc)}") from None
    if not isinstance(net, nn.Module):
        raise InvalidParameterError(
            f"--model: {fn}() returned a {type(net).__module__}.{type(net).__qualname__}, not a "
            "torch.nn.Module (it must build and return the network, taking no arguments)")
    return net


def space_from_spec(spec: str, task) -> Any:
    """The search space of the network ``spec`` makes, for ``task``'s inputs and classes."""
    import copy

    import torch

    import spaces
    from prednas.errors import InvalidParameterError

    net = _network(spec)
    _, fn = split_spec(spec)
    x = task.batch(2)[0]
    try:
        with torch.no_grad():
            out = copy.deepcopy(net)(x)
    except Exception as exc:  # noqa: BLE001 - the user's forward failing is a user error
        raise InvalidParameterError(
            f"--model: the network {fn}() returns ({type(net).__name__}) does not accept the "
            f"inputs of task {task.name!r} (a batch of shape {tuple(x.shape)}): {_one_line(exc)}"
        ) from None
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[1] != task.num_classes:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise InvalidParameterError(
            f"--model: the network {fn}() returns outputs {got} for a batch of 2; task "
            f"{task.name!r} needs logits of shape (2, {task.num_classes})")
    try:
        return spaces.from_model(net, x)
    except InvalidParameterError as exc:
        raise InvalidParameterError(f"--model {spec}: {' '.join(str(exc).split())}") from None


def fingerprint(space) -> str:
    """A digest of the network's parameter names and shapes (the space's name does not hold
    absolute widths: two networks that differ only in channel counts share it)."""
    import json

    net = space.build(space.default_arch())
    shapes = [[name, list(p.shape)] for name, p in net.named_parameters()]
    return hashlib.sha1(json.dumps([space.name, shapes]).encode()).hexdigest()[:16]


def model_notes(spec: str, space) -> dict[str, Any]:
    """What a run records about its network (``Search(notes=...)``, ``pipeline.json``)."""
    path, fn = split_spec(spec)
    return {"format": NOTES_FORMAT, "spec": str(spec), "file": str(path.resolve()),
            "function": fn, "space": space.name, "fingerprint": fingerprint(space)}


def space_from_notes(notes: dict, task, where: str) -> Any:
    """Regenerate the space a run recorded in its notes; the file must still make that space."""
    from prednas.errors import DataNotFoundError, RunDirectoryError

    try:
        file, fn, name = str(notes["file"]), str(notes["function"]), str(notes["space"])
    except (KeyError, TypeError):
        raise RunDirectoryError(f"{where}: the recorded --model entry is corrupted") from None
    if not Path(file).is_file():
        raise DataNotFoundError(
            f"{where} was searched with --model {notes.get('spec', file)!r}, and {file} is gone; "
            "restore it to resume")
    space = space_from_spec(f"{file}:{fn}", task)
    if space.name != name or notes.get("fingerprint", fingerprint(space)) != fingerprint(space):
        raise RunDirectoryError(
            f"{where}: {Path(file).name}:{fn} now makes another network (space {space.name!r}; "
            f"the run's: {name!r}): it changed since the run started; restore it to resume")
    return space


def space_of_run(run_dir) -> Any | None:
    """The space of a search run started with ``--model``, regenerated from the run's notes and
    its task; ``None`` for a run of a registered space (or a directory that is not a run)."""
    from prednas import tasks
    from prednas.errors import RunDirectoryError
    from prednas.search import Search
    from prednas.search.base import decode_param
    from prednas.search.rundir import RunDir

    try:
        notes = Search.read_notes(run_dir) or {}
    except RunDirectoryError:
        return None  # the caller's own opening of the directory says what is wrong
    if not notes.get("model"):
        return None
    cfg = RunDir.open(run_dir, lock=False)[1]["config"]
    task = tasks.get(cfg["task"], **(decode_param(cfg.get("task_options")) or {}))
    return space_from_notes(notes["model"], task, str(run_dir))


def fork_ok() -> bool:
    """Whether worker processes can be forked (they then see the user's module; spawned ones
    cannot import it)."""
    import multiprocessing

    return "fork" in multiprocessing.get_all_start_methods()

