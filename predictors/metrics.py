"""Ranking-quality metrics for predictors (defined in :mod:`prednas.metrics`)."""

from prednas.metrics import kendall, rank_correlations, ranking_report, spearman, top_k_precision

__all__ = ["spearman", "kendall", "top_k_precision", "ranking_report", "rank_correlations"]
