"""Shared pieces of every predictor: input validation and the predictor registry."""

from __future__ import annotations

import logging
import warnings

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin

from prednas.errors import InvalidParameterError, NotFittedError
from prednas.registry import Registry

__all__ = ["BasePredictor", "PREDICTORS", "register_predictor", "check_targets", "check_features"]

log = logging.getLogger(__name__)

#: name -> predictor class
PREDICTORS = Registry("predictor")


class InvalidInputTypeError(InvalidParameterError, TypeError):
    """Features of a type that cannot become floats (e.g. dicts)."""


def register_predictor(name: str):
    """Class decorator adding a predictor to :data:`PREDICTORS` under ``name``."""
    return PREDICTORS.register(name)


def check_targets(owner: str, y, n_samples: int | None = None, *, allow_constant: bool = False
                  ) -> np.ndarray:
    """A finite 1-D float array of targets; raises InvalidParameterError with a clear message."""
    if y is None:
        raise InvalidParameterError(
            f"{owner} requires y to be passed, but the target y is None")
    try:
        raw = np.asarray(y)
        if np.iscomplexobj(raw):
            raise ValueError("complex data is not supported")
        arr = raw.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(f"{owner}: targets y must be numbers ({exc})") from None
    if arr.ndim == 2 and arr.shape[1] == 1:
        from sklearn.exceptions import DataConversionWarning

        warnings.warn("A column-vector y was passed when a 1d array was expected; using y[:, 0]",
                      DataConversionWarning, stacklevel=3)
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise InvalidParameterError(
            f"{owner}: targets y must be 1-D, got an array of shape {arr.shape}")
    if arr.size == 0:
        raise InvalidParameterError(f"{owner}: cannot fit on 0 samples (empty targets)")
    if n_samples is not None and arr.shape[0] != n_samples:
        raise InvalidParameterError(
            f"{owner}: features and targets have mismatched lengths: {n_samples} samples "
            f"in X but {arr.shape[0]} targets in y")
    if not np.all(np.isfinite(arr)):
        bad = int(np.sum(~np.isfinite(arr)))
        raise InvalidParameterError(f"{owner}: targets y contain {bad} NaN or infinite values")
    if not allow_constant and arr.size > 1 and np.ptp(arr) == 0:
        raise InvalidParameterError(
            f"{owner}: all {arr.size} targets are equal ({arr[0]!r}); a predictor cannot learn a "
            "ranking from constant targets")
    return arr


def check_features(owner: str, X, n_features: int | None = None) -> np.ndarray:
    """A 2-D float array; NaN is allowed (missing proxy), +-inf becomes NaN."""
    from sklearn.utils.validation import check_array

    if hasattr(X, "__len__") and not hasattr(X, "shape") and len(X) and _is_graph(X[0]):
        X = graphs_to_flat(X)
    try:
        arr = check_array(X, dtype=np.float64, ensure_all_finite=False, accept_sparse=False,
                          ensure_min_samples=1, ensure_min_features=1, estimator=owner)
    except TypeError as exc:
        raise InvalidInputTypeError(f"{owner}: {exc}") from None
    except ValueError as exc:
        raise InvalidParameterError(f"{owner}: {exc}") from None
    if n_features is not None and arr.shape[1] != n_features:
        raise InvalidParameterError(
            f"X has {arr.shape[1]} features, but {owner} is expecting {n_features} features "
            "as input.")
    if np.isinf(arr).any():
        arr = np.where(np.isinf(arr), np.nan, arr)
    return arr


def _is_graph(obj) -> bool:
    return hasattr(obj, "edge_index") and hasattr(obj, "x")


def graphs_to_flat(graphs) -> np.ndarray:
    """Stack the ``flat`` vectors that :meth:`FeaturePipeline.graphs` attaches to each graph."""
    rows = []
    for g in graphs:
        flat = getattr(g, "flat", None)
        if flat is None:
            raise InvalidParameterError(
                "graphs given to a vector predictor must carry a 'flat' feature vector "
                "(build them with FeaturePipeline.graphs)")
        rows.append(np.asarray(flat, dtype=np.float64).reshape(-1))
    return np.stack(rows)


class BasePredictor(RegressorMixin, BaseEstimator):
    """Common behaviour: ``fit``/``predict`` contract and the not-fitted check.

    Subclasses implement ``fit`` and ``predict``; learned state ends in ``_``.
    """

    #: whether ``predict`` needs graphs (``FeaturePipeline.graphs``) rather than flat vectors
    needs_graphs: bool = False

    def _check_fitted(self) -> None:
        if not getattr(self, "is_fitted_", False):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                "appropriate arguments before using this estimator.")

    def __sklearn_is_fitted__(self) -> bool:
        return bool(getattr(self, "is_fitted_", False))

    # -- predictor files (predictors.io): no pickle -------------------------------------------
    #: the fitted attribute holding a model object that is stored in its library's own format
    #: (through :meth:`_dump_model` / :meth:`_load_model`), or ``None``
    _model_attr: str | None = None

    def _dump_model(self, model) -> tuple[bytes, str, dict]:
        """``(bytes, file extension, JSON-able facts needed to load it)`` for the model object."""
        raise NotImplementedError(f"{type(self).__name__} stores no model object")

    def _load_model(self, blob: bytes, facts: dict):
        """The model object back from :meth:`_dump_model`'s bytes and facts."""
        raise NotImplementedError(f"{type(self).__name__} stores no model object")

    def _artifact_state(self, writer) -> dict:
        """The fitted attributes (names ending in ``_``) as JSON values for a predictor file.

        Numbers, strings, lists, tuples, dicts, numeric arrays and nested predictors are handled
        by ``writer.encode``; the model object named by :attr:`_model_attr` is stored as a blob in
        its library's own format (``writer.add(bytes, ext)``).
        """
        name, attr = type(self).__name__, self._model_attr
        state = {k: writer.encode(v, f"{name}.{k}") for k, v in sorted(vars(self).items())
                 if k.endswith("_") and not k.startswith("_") and k != attr}
        if attr is not None and hasattr(self, attr):
            blob, ext, facts = self._dump_model(getattr(self, attr))
            state[attr] = {**facts, "blob": writer.add(blob, ext)}
        return state

    def _load_artifact_state(self, state: dict, reader) -> None:
        """Set the fitted attributes from :meth:`_artifact_state`'s output (checked by reader)."""
        name, attr = type(self).__name__, self._model_attr
        state = dict(state)
        model = state.pop(attr, None) if attr is not None else None
        for k, v in state.items():
            setattr(self, k, reader.decode(v, f"{name}.{k}"))
        if attr is not None and model is not None:
            facts = dict(model) if isinstance(model, dict) else {}
            setattr(self, attr, self._load_model(reader.blob(facts.pop("blob", None)), facts))
