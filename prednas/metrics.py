"""Ranking-quality metrics shared by proxies, predictors, the supernet and the search."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from prednas.errors import InvalidParameterError

__all__ = ["spearman", "kendall", "top_k_precision", "ranking_report", "rank_correlations"]


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(y_true, dtype=np.float64).reshape(-1)
    b = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise InvalidParameterError(f"mismatched lengths: {a.size} true values, {b.size} predictions")
    if a.size < 2:
        raise InvalidParameterError("need at least 2 values for a rank correlation")
    return a, b


def spearman(y_true, y_pred) -> float:
    """Spearman rank correlation."""
    a, b = _pair(y_true, y_pred)
    return float(stats.spearmanr(a, b).statistic)


def kendall(y_true, y_pred) -> float:
    """Kendall tau-b."""
    a, b = _pair(y_true, y_pred)
    return float(stats.kendalltau(a, b).statistic)


def top_k_precision(y_true, y_pred, fraction: float = 0.05) -> float:
    """Share of the predicted top ``fraction`` that is in the true top ``fraction``."""
    a, b = _pair(y_true, y_pred)
    k = max(1, int(round(fraction * a.size)))
    true_top = set(np.argsort(-a, kind="stable")[:k].tolist())
    pred_top = np.argsort(-b, kind="stable")[:k]
    return float(np.mean([i in true_top for i in pred_top]))


def ranking_report(y_true, y_pred) -> dict[str, float]:
    """``{"spearman", "kendall", "top5_precision"}``."""
    return {"spearman": spearman(y_true, y_pred), "kendall": kendall(y_true, y_pred),
            "top5_precision": top_k_precision(y_true, y_pred, 0.05)}


def rank_correlations(scores, targets, min_pairs: int = 3) -> tuple[float, float, int]:
    """Spearman, Kendall tau-b and the number of pairs, over the pairs where both are finite.

    Undefined (NaN, NaN) when fewer than ``min_pairs`` finite pairs remain or the scores are
    constant; never raises, so a failed proxy or predictor shows up as NaN in a report.
    """
    a = np.asarray(scores, dtype=np.float64).reshape(-1)
    b = np.asarray(targets, dtype=np.float64).reshape(-1)
    ok = np.isfinite(a) & np.isfinite(b)
    n = int(ok.sum())
    if n < min_pairs or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return math.nan, math.nan, n
    return (float(stats.spearmanr(a[ok], b[ok]).statistic),
            float(stats.kendalltau(a[ok], b[ok]).statistic), n)
