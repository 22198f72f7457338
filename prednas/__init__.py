"""prednas: predictor-guided neural architecture search with zero-cost proxies.

Entry points: :func:`train` (one architecture), :func:`rank` (score candidates with a predictor),
:func:`warmup` (weight-sharing supernet), :class:`Search` (the main loop), :class:`Pipeline`
(search, retrain, tune, ensemble, export), :func:`study` (a search run as an Optuna study), and
the ``prednas`` CLI.

Importing ``prednas`` is cheap: every public name is loaded on first use (PEP 562), so
``prednas --help`` imports no torch or scikit-learn, and ``import spaces`` (which needs only
``prednas.errors`` and ``prednas.registry``) no longer loads the training code or search engine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> module that defines it, imported on first attribute access.
_LAZY: dict[str, str] = {
    "PredNASError": "prednas.errors",
    "UnknownNameError": "prednas.errors",
    "InvalidArchitectureError": "prednas.errors",
    "InvalidParameterError": "prednas.errors",
    "DataNotFoundError": "prednas.errors",
    "NotFittedError": "prednas.errors",
    "IncompatibleArtifactError": "prednas.errors",
    "RunDirectoryError": "prednas.errors",
    "CandidateError": "prednas.errors",
    "train": "prednas.training",
    "TrainRecord": "prednas.training",
    "rank": "prednas.ranking",
    "warmup": "prednas.supernet",
    "Search": "prednas.search",
    "SearchContext": "prednas.search",
    "Record": "prednas.search",
    "load_model": "prednas.export",
    "Pipeline": "prednas.pipeline",
    "PipelineResult": "prednas.pipeline",
    "study": "prednas.search.study",
}
# Submodules reachable as attributes after a plain ``import prednas``.
_SUBMODULES = ("benchmarks", "tasks", "ensemble", "search", "supernet", "stnas", "ranking",
               "utils", "registry", "errors", "metrics", "training", "cli", "export", "params",
               "pipeline")

__all__ = ["PredNASError", "UnknownNameError", "InvalidArchitectureError", "InvalidParameterError",
           "DataNotFoundError", "NotFittedError", "IncompatibleArtifactError", "RunDirectoryError",
           "CandidateError", "benchmarks", "tasks", "train", "TrainRecord", "rank", "warmup",
           "Search", "SearchContext", "Record", "ensemble", "export", "load_model", "Pipeline",
           "PipelineResult", "stnas", "study", "__version__"]

if TYPE_CHECKING:  # what static tools see; at run time these names come from __getattr__
    from prednas import benchmarks, ensemble, export, stnas, tasks
    from prednas.errors import (
        CandidateError,
        DataNotFoundError,
        IncompatibleArtifactError,
        InvalidArchitectureError,
        InvalidParameterError,
        NotFittedError,
        PredNASError,
        RunDirectoryError,
        UnknownNameError,
    )
    from prednas.export import load_model
    from prednas.pipeline import Pipeline, PipelineResult
    from prednas.ranking import rank
    from prednas.search import Record, Search, SearchContext
    from prednas.search.study import study
    from prednas.supernet import warmup
    from prednas.training import TrainRecord, train


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"prednas.{name}")
    else:
        raise AttributeError(f"module 'prednas' has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_SUBMODULES))
