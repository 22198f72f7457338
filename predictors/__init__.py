"""Accuracy predictors: XGBoost and GNN estimators, an ensemble, one feature pipeline.

Estimators follow the scikit-learn contract (``fit(X, y) -> self``, ``predict(X)``,
``get_params``/``set_params``, :class:`prednas.NotFittedError` before ``fit``). Vector predictors
take ``FeaturePipeline.transform`` output; the GNN takes ``FeaturePipeline.graphs`` output.
"""

from __future__ import annotations

from predictors.base import PREDICTORS, BasePredictor, register_predictor
from predictors.ensemble import EnsemblePredictor
from predictors.features import FeaturePipeline
from predictors.gnn import GNNPredictor
from predictors.io import FORMAT_VERSION, load, save
from predictors.linear import RidgePredictor
from predictors.metrics import kendall, ranking_report, spearman, top_k_precision
from predictors.xgb import XGBPredictor

__all__ = ["BasePredictor", "XGBPredictor", "GNNPredictor", "EnsemblePredictor", "RidgePredictor",
           "FeaturePipeline", "list_predictors", "get", "register_predictor", "save", "load",
           "FORMAT_VERSION", "spearman", "kendall", "top_k_precision", "ranking_report"]


def list_predictors() -> list[str]:
    """Registered predictor names."""
    return PREDICTORS.names()


def get(name: str, **params) -> BasePredictor:
    """A new predictor by registered name (``"xgb"``, ``"gnn"``, ``"ensemble"``)."""
    return PREDICTORS.get(name)(**params)
