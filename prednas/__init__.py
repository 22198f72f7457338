"""prednas: predictor-guided neural architecture search with zero-cost proxies."""

from __future__ import annotations

from prednas.errors import (DataNotFoundError, IncompatibleArtifactError, InvalidArchitectureError,
                            InvalidParameterError, NotFittedError, PredNASError, RunDirectoryError,
                            UnknownNameError)

__version__ = "0.1.0"

from prednas import benchmarks, tasks  # noqa: E402
from prednas.training import TrainRecord, train  # noqa: E402

__all__ = ["PredNASError", "UnknownNameError", "InvalidArchitectureError", "InvalidParameterError",
           "DataNotFoundError", "NotFittedError", "IncompatibleArtifactError", "RunDirectoryError",
           "benchmarks", "tasks", "train", "TrainRecord", "__version__"]
