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


def test_the_loss_reading_orders_what_noisy_accuracies_do_not():
    rng = np.random.default_rng(1)
    true = np.linspace(98.0, 99.0, 12)
    tr = {f"x{i}": [float(t + rng.normal(0, 0.4))] for i, t in enumerate(true)}
    loss = {f"x{i}": [float(0.06 - 0.03 * (t - 98.0) + rng.normal(0, 0.001))]
            for i, t in enumerate(true)}
    est = NoiseAwareEstimate(prior_noise_std=0.4, loss_reading=True)
    readings = est.loss_readings(tr, loss)
    assert set(readings) == set(tr)
    assert np.corrcoef([readings[f"x{i}"] for i in range(12)], true)[0, 1] > 0.99

    def corr(ests):
        by = {e.arch: e.value for e in ests}
        return np.corrcoef([by[f"x{i}"] for i in range(12)], true)[0, 1]

    assert corr(est.estimates(tr, None, loss)) > corr(est.estimates(tr)) + 0.05
    assert est.estimates(tr, None, loss)[0].arch in ("x11", "x10")
    off = NoiseAwareEstimate(prior_noise_std=0.4)  # the default: losses are not read
    assert [e.value for e in off.estimates(tr, None, loss)] == [e.value for e in
                                                              off.estimates(tr)]


def test_too_few_or_missing_losses_leave_the_estimate_alone():
    est = NoiseAwareEstimate(loss_reading=True)
    tr = {"a": [97.0], "b": [96.0], "c": [95.0]}
    loss = {"a": [0.1], "b": [0.2], "c": [0.3]}
    assert est.loss_readings(tr, loss) == {}  # 3 < min_loss_fit
    assert [e.value for e in est.estimates(tr, None, loss)] == [e.value for e in
                                                              est.estimates(tr)]
    tr8 = {f"x{i}": [90.0 + i] for i in range(8)}
    nan = {a: [math.nan] for a in tr8}
    assert est.loss_readings(tr8, nan) == {}
    same = {a: [0.1] for a in tr8}  # no spread in the losses: no line
    assert est.loss_readings(tr8, same) == {}


def test_min_loss_fit_is_checked():
    for bad in (2, 4.5, "8"):
        with pytest.raises(InvalidParameterError, match="min_loss_fit"):
            NoiseAwareEstimate(min_loss_fit=bad)
