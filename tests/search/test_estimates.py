"""Noise-aware estimates: shrinkage toward the prediction, pooled noise, and the race."""

from __future__ import annotations

import math

import numpy as np
import pytest

from prednas.errors import InvalidParameterError
from prednas.search.estimates import NoiseAwareEstimate, race_targets


def test_one_lucky_training_is_shrunk_toward_the_prediction():
    est = NoiseAwareEstimate(prior_noise_std=1.0)
    tr = {"lucky": [98.0], "steady": [97.0, 97.2, 96.9, 97.1], "a": [90.0], "b": [92.0],
          "c": [94.0]}
    pred = {"lucky": 96.0, "steady": 97.0, "a": 90.2, "b": 91.8, "c": 94.1}
    by = {e.arch: e for e in est.estimates(tr, pred)}
    assert 96.0 < by["lucky"].value < 98.0
    assert by["steady"].value > by["lucky"].value  # four trainings beat one lucky draw
    assert by["steady"].std < by["lucky"].std


def test_the_noise_comes_from_the_runs_repeats():
    rng = np.random.default_rng(0)
    est = NoiseAwareEstimate(prior_noise_std=2.0, prior_weight=1.0)
    tr = {f"x{i}": list(90 + i + rng.normal(0, 0.5, 4)) for i in range(30)}
    assert math.sqrt(est.noise_var(tr)) == pytest.approx(0.5, abs=0.15)
    assert math.sqrt(est.noise_var({"one": [90.0]})) == pytest.approx(2.0)  # the prior alone


def test_without_predictions_the_estimate_is_the_mean():
    est = NoiseAwareEstimate()
    e = est.estimates({"a": [90.0, 92.0]})[0]
    assert e.value == pytest.approx(91.0) and e.prediction is None and e.n == 2


def test_the_race_goes_on_until_the_best_is_separated():
    est = NoiseAwareEstimate(prior_noise_std=1.0, prior_weight=100)
    close = est.estimates({"a": [97.0], "b": [96.8], "c": [90.0]})
    assert set(race_targets(close)) == {"a", "b"}
    apart = est.estimates({"a": [97.0] * 9, "b": [94.0] * 9, "c": [90.0]})
    assert race_targets(apart) == []


def test_bad_parameters():
    with pytest.raises(InvalidParameterError, match="prior_noise_std"):
        NoiseAwareEstimate(prior_noise_std=0)
