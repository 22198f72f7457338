"""Gradient-boosted trees on flat architecture features (XGBoost), regression or ranking."""

from __future__ import annotations

import logging

import numpy as np

from predictors.base import BasePredictor, check_features, check_targets, register_predictor
from prednas.errors import UnknownNameError, check_param
from prednas.utils import make_rng

__all__ = ["XGBPredictor"]

log = logging.getLogger(__name__)

#: the XGBoost scikit-learn wrappers a saved model may be restored into
_WRAPPERS = ("XGBRegressor", "XGBRanker")
_OBJECTIVES = {"reg": "reg:squarederror", "rank": "rank:pairwise",
               "rank:pairwise": "rank:pairwise", "rank:ndcg": "rank:ndcg"}


@register_predictor("xgb")
class XGBPredictor(BasePredictor):
    """XGBoost on flat features (encodings, proxy scores, supernet scores).

    Missing values (NaN, e.g. a proxy that failed) are handled natively by XGBoost's learned
    default directions; ``inf`` is treated as missing. With a ranking objective all training
    architectures form one query group and ``predict`` returns ranking scores (higher is better,
    not on the target's scale).

    Args:
        objective: ``"reg"`` (squared error), ``"rank"`` (= ``"rank:pairwise"``) or ``"rank:ndcg"``.
        n_estimators: boosting rounds.
        max_depth: tree depth.
        learning_rate: shrinkage.
        subsample: row fraction per tree.
        colsample_bytree: feature fraction per tree.
        min_child_weight: minimum hessian weight in a leaf.
        reg_lambda: L2 penalty on leaf weights.
        n_jobs: XGBoost threads.
        random_state: seed (``None``: a fresh one per fit).
    """

    def __init__(self, objective: str = "reg", n_estimators: int = 500, max_depth: int = 6,
                 learning_rate: float = 0.05, subsample: float = 0.9,
                 colsample_bytree: float = 0.9, min_child_weight: float = 1.0,
                 reg_lambda: float = 1.0, n_jobs: int = 1, random_state: int | None = None):
        self.objective = objective
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.min_child_weight = min_child_weight
        self.reg_lambda = reg_lambda
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _validate_params(self) -> None:
        name = type(self).__name__
        if self.objective not in _OBJECTIVES:
            raise UnknownNameError("objective", self.objective, _OBJECTIVES)
        check_param(name, "n_estimators", self.n_estimators, kind=int, low=1)
        check_param(name, "max_depth", self.max_depth, kind=int, low=1)
        check_param(name, "learning_rate", self.learning_rate, kind=(int, float), low=0,
                    low_open=True, high=1)
        check_param(name, "subsample", self.subsample, kind=(int, float), low=0, low_open=True,
                    high=1)
        check_param(name, "colsample_bytree", self.colsample_bytree, kind=(int, float), low=0,
                    low_open=True, high=1)
        check_param(name, "min_child_weight", self.min_child_weight, kind=(int, float), low=0)
        check_param(name, "reg_lambda", self.reg_lambda, kind=(int, float), low=0)
        check_param(name, "n_jobs", self.n_jobs, kind=int, low=1)

    def fit(self, X, y) -> XGBPredictor:
        """Fit on features ``X`` (n, d) (NaN allowed) and targets ``y`` (n,)."""
        import xgboost as xgb

        self._validate_params()
        name = type(self).__name__
        X = check_features(name, X)
        y = check_targets(name, y, X.shape[0], allow_constant=False)
        seed = int(make_rng(self.random_state).integers(2**31 - 1))
        objective = _OBJECTIVES[self.objective]
        params = dict(n_estimators=self.n_estimators, max_depth=self.max_depth,
                      learning_rate=float(self.learning_rate), subsample=float(self.subsample),
                      colsample_bytree=float(self.colsample_bytree),
                      min_child_weight=float(self.min_child_weight),
                      reg_lambda=float(self.reg_lambda), n_jobs=self.n_jobs, random_state=seed,
                      tree_method="hist", missing=np.nan)
        if objective == "reg:squarederror":
            self.y_mean_, self.y_scale_ = float(y.mean()), float(y.std()) or 1.0
            model = xgb.XGBRegressor(objective=objective, **params)
            model.fit(X, (y - self.y_mean_) / self.y_scale_)
        else:
            if objective == "rank:ndcg":
                # NDCG needs small non-negative integer relevance grades: quantile buckets 0..31
                order = np.argsort(np.argsort(y, kind="stable"), kind="stable")
                labels = np.floor(order * 32 / len(y)).astype(np.float64)
                extra = dict(lambdarank_pair_method="topk")
            else:
                labels = y
                extra = dict(lambdarank_pair_method="mean", lambdarank_num_pair_per_sample=8)
            self.y_mean_, self.y_scale_ = 0.0, 1.0
            model = xgb.XGBRanker(objective=objective, **params, **extra)
            model.fit(X, labels, qid=np.zeros(len(y), dtype=np.int64))
        self.model_ = model
        self.n_features_in_ = X.shape[1]
        self.is_fitted_ = True
        return self

    def predict(self, X) -> np.ndarray:
        """Predicted targets (regression) or ranking scores; higher is better."""
        self._check_fitted()
        X = check_features(type(self).__name__, X, self.n_features_in_)
        out = self.model_.predict(X)
        return np.asarray(out, dtype=np.float64) * self.y_scale_ + self.y_mean_

    # -- predictor files: the booster in XGBoost's own UBJSON format, never a pickle -----------
    _model_attr = "model_"

    def _dump_model(self, model) -> tuple[bytes, str, dict]:
        return bytes(model.get_booster().save_raw("ubj")), "ubj", {"kind": type(model).__name__}

    def _load_model(self, blob: bytes, facts: dict):
        import xgboost as xgb

        kind = facts.get("kind")
        if kind not in _WRAPPERS:
            raise UnknownNameError("saved XGBoost model kind", kind, _WRAPPERS)
        restored = getattr(xgb, kind)()
        restored.load_model(bytearray(blob))
        return restored

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags
