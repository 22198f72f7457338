"""prednas: predictor-guided neural architecture search with zero-cost proxies.

Entry points: :func:`train` (one architecture), :func:`rank` (score candidates with a predictor),
:func:`warmup` (weight-sharing supernet), :class:`Search` (the main loop), and the ``prednas`` CLI.
"""

from __future__ import annotations

import importlib

from prednas.errors import (DataNotFoundError, IncompatibleArtifactError, InvalidArchitectureError,
                            InvalidParameterError, NotFittedError, PredNASError, RunDirectoryError,
                            UnknownNameError)

__version__ = "0.1.0"

from prednas import benchmarks, tasks  # noqa: E402
from prednas.training import TrainRecord, train  # noqa: E402

# Heavier entry points load on first use: name -> module that defines it.
_LAZY = {"rank": "prednas.ranking", "warmup": "prednas.supernet", "Search": "prednas.search"}
# Submodules reachable as attributes after a plain ``import prednas``.
_SUBMODULES = ("ensemble", "search", "supernet", "ranking", "utils", "registry", "cli")


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"prednas.{name}")
    raise AttributeError(f"module 'prednas' has no attribute {name!r}")


__all__ = ["PredNASError", "UnknownNameError", "InvalidArchitectureError", "InvalidParameterError",
           "DataNotFoundError", "NotFittedError", "IncompatibleArtifactError", "RunDirectoryError",
           "benchmarks", "tasks", "train", "TrainRecord", "rank", "warmup", "Search", "ensemble",
           "__version__"]
