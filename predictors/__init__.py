"""Accuracy predictors (see issue: predictors)."""
