from __future__ import annotations

import pytest

from prednas.errors import InvalidParameterError, PredNASError, UnknownNameError, check_param
from prednas.registry import Registry


def test_registry_duplicate_and_unknown():
    reg = Registry("widget")
    reg.add("alpha", 1)
    with pytest.raises(PredNASError, match="already registered"):
        reg.add("alpha", 2)
    with pytest.raises(UnknownNameError) as err:
        reg.get("alpah")
    assert "did you mean 'alpha'" in str(err.value)


def test_check_param_reads_like_sklearn():
    with pytest.raises(InvalidParameterError) as err:
        check_param("XGBPredictor", "n_estimators", 0, low=1)
    assert str(err.value) == ("The 'n_estimators' parameter of XGBPredictor must be an int in "
                              "[1, inf). Got 0 instead.")
