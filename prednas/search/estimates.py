"""Noise-aware estimates of each architecture's accuracy, and the race that names an honest winner.

One training is one noisy draw: on ``blocks1d-mnist1d`` a seed moves test accuracy by about 0.6-0.9
points, more than the gaps between good architectures. :class:`NoiseAwareEstimate` combines an
architecture's trainings with the predictor's prediction, each weighted by its precision (a normal
model, empirical Bayes):

    estimate = (n / s2 * mean + 1 / t2 * prediction) / (n / s2 + 1 / t2)

where ``s2`` is the seed noise variance, pooled over the architectures trained more than once in
the run (until there are enough repeats, a prior value, e.g. the table's), and ``t2`` the
predictor's error variance (its residuals on what the run has trained). The posterior standard
deviation ``(n / s2 + 1 / t2) ** -0.5`` says how sure each estimate is; :func:`race` spends extra
trainings on the leaders whose intervals overlap the best's, until one is separated or the
trainings run out.

With ``loss_reading=True`` the estimate also reads the trainings' validation losses (a second,
steadier reading of the same models than 0/1 accuracy on a finite validation split): the accuracy
the run's own least-squares line of mean accuracy on mean loss gives each architecture's mean
loss, weighted by that line's error variance (its residuals, less the seed noise), as the
prediction is. It was chosen from a design study on two unseen search seeds with real training
(``benchmarks/estimate-design.md``: the loss ordered the leaders better in one of two). Measured,
it is off by default: on the simulated clock (50 seeds) it lowered the default search's picks by
0.03-0.10 points at every budget, every 90% interval below zero
(``benchmarks/search-blocks1d-simulated.md``, ``prednas-loss``), and with real training on the
default task it moved them by +0.01 (5 seeds, ``benchmarks/search-mnist1d.md``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from prednas.errors import InvalidParameterError

__all__ = ["NoiseAwareEstimate", "Estimate", "race_targets"]


@dataclass(frozen=True)
class Estimate:
    """An architecture's estimate: ``value`` ± ``std``, from ``n`` trainings (mean ``mean``,
    sample std ``sample_std``), the prediction ``prediction`` and the accuracy its validation
    loss reads ``loss_reading`` (``None``: none)."""

    arch: str
    value: float
    std: float
    n: int
    mean: float
    sample_std: float
    prediction: float | None
    loss_reading: float | None = None

    def to_json(self) -> dict:
        return {"arch": self.arch, "estimate": self.value, "estimate_std": self.std,
                "trainings": self.n, "mean": self.mean, "std": self.sample_std,
                "prediction": self.prediction, "loss_reading": self.loss_reading}


class NoiseAwareEstimate:
    """Shrinks each architecture's mean of trainings toward the predictor's prediction.

    Args:
        prior_noise_std: seed noise (std, points) assumed until the run has repeats.
        prior_weight: how many pooled repeat degrees of freedom the prior counts for.
        min_prediction_std: floor of the predictor's error std (it is never trusted fully),
            and of the loss reading's.
        min_loss_fit: fewest architectures with losses that the loss's line is fitted from.
        loss_reading: whether :meth:`estimates` reads the losses it is given (off by default:
            measured not to help, see above).
    """

    def __init__(self, prior_noise_std: float = 0.9, prior_weight: float = 4.0,
                 min_prediction_std: float = 0.3, min_loss_fit: int = 8,
                 loss_reading: bool = False):
        if (prior_noise_std <= 0 or prior_weight < 0 or min_prediction_std <= 0
                or not isinstance(min_loss_fit, int) or min_loss_fit < 3):
            raise InvalidParameterError(
                "NoiseAwareEstimate needs prior_noise_std > 0, prior_weight >= 0, "
                "min_prediction_std > 0 and an integer min_loss_fit >= 3. Got "
                f"{prior_noise_std}, {prior_weight}, {min_prediction_std}, {min_loss_fit} "
                "instead.")
        self.prior_noise_std = prior_noise_std
        self.prior_weight = prior_weight
        self.min_prediction_std = min_prediction_std
        self.min_loss_fit = int(min_loss_fit)
        self.loss_reading = bool(loss_reading)

    def noise_var(self, trainings: Mapping[str, Sequence[float]]) -> float:
        """Seed noise variance: the repeats' pooled variance, with the prior as
        ``prior_weight`` degrees of freedom."""
        ss, dof = 0.0, 0
        for vals in trainings.values():
            v = np.asarray([x for x in vals if math.isfinite(x)], float)
            if len(v) > 1:
                ss += float(((v - v.mean()) ** 2).sum())
                dof += len(v) - 1
        return ((ss + self.prior_weight * self.prior_noise_std ** 2)
                / max(dof + self.prior_weight, 1e-12))

    def prediction_var(self, trainings: Mapping[str, Sequence[float]],
                       predictions: Mapping[str, float], noise_var: float) -> float:
        """The predictor's error variance: its mean squared residual against the means of
        trainings, less the part the seed noise explains (at least ``min_prediction_std**2``)."""
        res = []
        for a, vals in trainings.items():
            v = [x for x in vals if math.isfinite(x)]
            p = predictions.get(a)
            if v and p is not None and math.isfinite(p):
                res.append(((np.mean(v) - p) ** 2) - noise_var / len(v))
        floor = self.min_prediction_std ** 2
        if len(res) < 3:
            return max(floor, 4 * noise_var)  # too few to tell: a weak prediction
        return max(floor, float(np.mean(res)))

    def loss_readings(self, trainings: Mapping[str, Sequence[float]],
                      losses: Mapping[str, Sequence[float]]) -> dict[str, float]:
        """The accuracy each architecture's mean validation loss implies: the run's
        least-squares line of mean accuracy on mean loss (``{}`` with fewer than
        :attr:`min_loss_fit` architectures having both, or no spread in the losses)."""
        pairs = {}
        for a, vals in trainings.items():
            v = [x for x in vals if math.isfinite(x)]
            lv = [x for x in losses.get(a, ()) if x is not None and math.isfinite(x)]
            if v and lv:
                pairs[a] = (float(np.mean(v)), float(np.mean(lv)))
        if len(pairs) < self.min_loss_fit:
            return {}
        acc, loss = (np.array(c) for c in zip(*pairs.values()))
        if np.ptp(loss) <= 0:
            return {}
        slope, icpt = np.polyfit(loss, acc, 1)
        return {a: float(icpt + slope * lo) for a, (_, lo) in pairs.items()}

    def estimates(self, trainings: Mapping[str, Sequence[float]],
                  predictions: Mapping[str, float] | None = None,
                  losses: Mapping[str, Sequence[float]] | None = None) -> list[Estimate]:
        """Every trained architecture's estimate, best first; with :attr:`loss_reading`,
        ``losses`` (per architecture, its trainings' validation losses) adds the loss's reading
        (:meth:`loss_readings`)."""
        predictions = dict(predictions or {})
        s2 = self.noise_var(trainings)
        t2 = self.prediction_var(trainings, predictions, s2)
        readings = self.loss_readings(trainings, losses) if losses and self.loss_reading else {}
        u2 = self.prediction_var(trainings, readings, s2) if readings else math.inf
        out = []
        for a, vals in trainings.items():
            v = np.asarray([x for x in vals if math.isfinite(x)], float)
            if len(v) == 0:
                continue
            p = predictions.get(a)
            prec = len(v) / s2
            num = prec * v.mean()
            if p is not None and math.isfinite(p):
                prec += 1 / t2
                num += p / t2
            if a in readings:
                prec += 1 / u2
                num += readings[a] / u2
            out.append(Estimate(a, num / prec, prec ** -0.5, len(v), float(v.mean()),
                                float(v.std(ddof=1)) if len(v) > 1 else math.nan,
                                None if p is None else float(p), readings.get(a)))
        return sorted(out, key=lambda e: (-e.value, e.arch))


def race_targets(estimates: Sequence[Estimate], z: float = 1.645, leaders: int = 3) -> list[str]:
    """The leaders still in the race: among the best ``leaders`` estimates, those whose upper
    bound (``value + z * std``) reaches the best's lower bound. ``[]`` when the best is
    separated from every other leader (then the race is over)."""
    if len(estimates) < 2:
        return []
    best = estimates[0]
    lo = best.value - z * best.std
    rivals = [e for e in estimates[1:leaders] if e.value + z * e.std >= lo]
    if not rivals:
        return []
    # the least-trained first: an extra training tells most about the least-known
    return [e.arch for e in sorted([best, *rivals], key=lambda e: (e.n, -e.value))]
