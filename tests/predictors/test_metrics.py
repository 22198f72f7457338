from __future__ import annotations

import numpy as np
import pytest

from predictors import kendall, ranking_report, spearman, top_k_precision
from prednas.errors import PredNASError


def test_metrics_properties():
    y = np.arange(100.0)
    assert spearman(y, y) == pytest.approx(1.0)
    assert kendall(y, -y) == pytest.approx(-1.0)
    assert top_k_precision(y, y, 0.05) == 1.0
    assert top_k_precision(y, -y, 0.05) == 0.0
    rep = ranking_report(y, y + np.random.default_rng(0).normal(size=100))
    assert set(rep) == {"spearman", "kendall", "top5_precision"}
    with pytest.raises(PredNASError, match="mismatched"):
        spearman(y, y[:-1])
