"""A regularised linear predictor: cheap and data-efficient at very small training sizes."""

from __future__ import annotations

import numpy as np

from predictors.base import BasePredictor, check_features, check_targets, register_predictor
from prednas.errors import InvalidParameterError

__all__ = ["RidgePredictor"]


@register_predictor("ridge")
class RidgePredictor(BasePredictor):
    """Ridge regression on robustly scaled flat features, penalty chosen by leave-one-out CV.

    Heavy-tailed columns (max |value| > 1e3) get a signed ``log1p``; NaN is imputed with the
    training median; columns are standardised. With a handful of training architectures a
    linear combination of proxy scores generalises better than trees.

    Args:
        alphas: candidate penalties (the best by efficient leave-one-out error is used).
    """

    def __init__(self, alphas=(0.1, 1.0, 10.0, 100.0, 1000.0)):
        self.alphas = alphas

    def _prep(self, X: np.ndarray) -> np.ndarray:
        X = np.where(self.log_cols_, np.sign(X) * np.log1p(np.abs(X)), X)
        X = np.where(np.isnan(X), self.median_, X)
        return (X - self.mean_) / self.scale_

    def fit(self, X, y) -> RidgePredictor:
        from sklearn.linear_model import RidgeCV

        alphas = np.asarray(self.alphas, dtype=np.float64).reshape(-1)
        if alphas.size == 0 or np.any(~np.isfinite(alphas)) or np.any(alphas <= 0):
            raise InvalidParameterError(
                "The 'alphas' parameter of RidgePredictor must be a non-empty list of floats in "
                f"(0, inf). Got {self.alphas!r} instead.")
        X = check_features("RidgePredictor", X)
        y = check_targets("RidgePredictor", y, X.shape[0])
        with np.errstate(all="ignore"):
            self.log_cols_ = np.nan_to_num(np.nanmax(np.abs(X), axis=0), nan=0.0) > 1e3
            Xl = np.where(self.log_cols_, np.sign(X) * np.log1p(np.abs(X)), X)
            self.median_ = np.nan_to_num(np.nanmedian(Xl, axis=0), nan=0.0)
        Xl = np.where(np.isnan(Xl), self.median_, Xl)
        self.mean_ = Xl.mean(axis=0)
        sd = Xl.std(axis=0)
        self.scale_ = np.where(sd > 1e-12, sd, 1.0)
        self.model_ = RidgeCV(alphas=alphas).fit(self._prep(X), y)
        self.n_features_in_ = X.shape[1]
        self.is_fitted_ = True
        return self

    def predict(self, X) -> np.ndarray:
        self._check_fitted()
        X = check_features("RidgePredictor", X, self.n_features_in_)
        return np.asarray(self.model_.predict(self._prep(X)), dtype=np.float64)

    # -- predictor files: the RidgeCV through skops with an explicit trusted list, no pickle ---
    _model_attr = "model_"

    def _dump_model(self, model) -> tuple[bytes, str, dict]:
        import skops.io as sio

        return sio.dumps(model), "skops", {}

    def _load_model(self, blob: bytes, facts: dict):
        import skops.io as sio
        from sklearn.linear_model import RidgeCV

        # skops refuses any type outside its safe defaults and this list
        trusted = [f"{RidgeCV.__module__}.{RidgeCV.__qualname__}"]
        restored = sio.loads(blob, trusted=trusted)
        if type(restored) is not RidgeCV:
            raise InvalidParameterError(
                f"RidgePredictor.model_ holds a {type(restored).__name__}, not a RidgeCV")
        return restored

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags
