"""An ensemble averaging several predictors, with a spread for uncertainty-aware filtering."""

from __future__ import annotations

import logging

import numpy as np
from sklearn.base import clone

from predictors.base import PREDICTORS, BasePredictor, _is_graph, check_targets, register_predictor
from prednas.errors import InvalidParameterError
from prednas.utils import make_rng

__all__ = ["EnsemblePredictor"]

log = logging.getLogger(__name__)

#: members used when ``members=None``
DEFAULT_MEMBERS = ("xgb", "xgb_rank", "gnn")


@register_predictor("ensemble")
class EnsemblePredictor(BasePredictor):
    """Average of several predictors; ``predict(X, return_std=True)`` also gives their spread.

    Each member is cloned, seeded from ``random_state`` (unless it has its own seed) and fitted on
    the same data. Its training predictions are mapped onto the target scale with a least-squares
    line, so ranking members (whose scores have no scale) and regression members can be averaged.

    Args:
        members: predictor objects or registered names (``"xgb"``, ``"gnn"``, ...); ``None`` uses
            an XGBoost regressor, an XGBoost pairwise ranker and a GNN. Members that need graphs
            make the ensemble take graphs (vector members then read each graph's ``flat``
            vector).
        random_state: seed.
    """

    def __init__(self, members=None, random_state: int | None = None):
        self.members = members
        self.random_state = random_state

    def _member_templates(self) -> list:
        members = DEFAULT_MEMBERS if self.members is None else self.members
        if isinstance(members, (str, bytes)) or not hasattr(members, "__iter__"):
            raise InvalidParameterError(
                "The 'members' parameter of EnsemblePredictor must be a list of predictors or "
                f"predictor names. Got {members!r} instead.")
        out = []
        for m in members:
            if isinstance(m, str):
                if m == "xgb_rank":
                    out.append(PREDICTORS.get("xgb")(objective="rank"))
                else:
                    out.append(PREDICTORS.get(m)())
            elif hasattr(m, "fit") and hasattr(m, "predict"):
                out.append(m)
            else:
                raise InvalidParameterError(
                    f"EnsemblePredictor member {m!r} is neither a predictor nor a predictor name")
        if not out:
            raise InvalidParameterError("EnsemblePredictor needs at least one member; got none")
        return out

    @property
    def needs_graphs(self) -> bool:  # type: ignore[override]
        try:
            return any(getattr(m, "needs_graphs", False) for m in self._member_templates())
        except Exception:  # noqa: BLE001 - invalid members are reported by fit
            return False

    def fit(self, X, y) -> EnsemblePredictor:
        """Fit every member on ``X`` (array, or graphs when a member needs them) and ``y``."""
        templates = self._member_templates()
        n = len(X)
        y = check_targets("EnsemblePredictor", y, n)
        if any(getattr(m, "needs_graphs", False) for m in templates) and (
                isinstance(X, np.ndarray) or not n or not _is_graph(X[0])):
            raise InvalidParameterError(
                "EnsemblePredictor has a graph member (GNN) and needs graphs from "
                "FeaturePipeline.graphs, got a flat array")
        rng = make_rng(self.random_state)
        fitted, calib = [], []
        for m in templates:
            est = clone(m)
            params = est.get_params()
            seed = int(rng.integers(2**31 - 1))
            if "random_state" in params and params["random_state"] is None:
                est.set_params(random_state=seed)
            est.fit(X, y)
            p = est.predict(X)
            sp = float(np.std(p))
            if sp > 1e-12:
                slope = float(np.cov(p, y, bias=True)[0, 1] / sp ** 2)
                if slope <= 0:  # a member ranking backwards on its own training set: trust scale
                    slope = float(np.std(y)) / sp
            else:
                slope = 0.0
            calib.append((slope, float(np.mean(y) - slope * np.mean(p))))
            fitted.append(est)
        self.estimators_ = fitted
        self.calibration_ = calib
        self.n_features_in_ = getattr(fitted[0], "n_features_in_", None)
        self.is_fitted_ = True
        return self

    def predict(self, X, return_std: bool = False):
        """Mean prediction; with ``return_std=True`` a ``(mean, std)`` pair over members."""
        self._check_fitted()
        preds = np.stack([a * est.predict(X) + b
                          for est, (a, b) in zip(self.estimators_, self.calibration_)])
        mean = preds.mean(axis=0)
        if return_std:
            return mean, preds.std(axis=0)
        return mean
