"""What a candidate costs to train: a model of its training seconds.

:class:`CostModel` predicts ``log(seconds)`` by ridge regression on the architecture's encoding
(``space.to_vector``: which op and width sits in each block) and its log parameter and FLOP
counts. Fitted on a table's recorded times (a prior that knows which ops are slow: a GRU block
costs several convolutions), it is then calibrated to the machine at hand by the times seen in the
run (:meth:`CostModel.observe`): one multiplicative factor, the mean log ratio of observed to
predicted seconds, shrunk toward 1 while observations are few. So a search on a faster or slower
machine than the table's needs a handful of trainings to predict in its own seconds.

>>> cost = CostModel.from_benchmark(bench)      # the table's times
>>> cost.observe("conv3:32|gru:16", 11.2)       # a training seen in this run
>>> cost.predict(["mlp:16", "gru:32|gru:32"])   # seconds on this machine
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from prednas.errors import InvalidParameterError, NotFittedError

__all__ = ["CostModel", "seconds_of", "cost_prior", "full_training_seconds", "expected_improvement"]


class CostModel:
    """Training seconds of architectures of ``space``.

    Args:
        space: the search space (its ``to_vector`` encodes architectures).
        alpha: ridge penalty of the fit.
        shrink: pseudo-observations of the calibration's prior (factor 1): with ``n`` observed
            times the log factor is ``sum(log ratios) / (n + shrink)``.
        counts: ``arch -> (params, flops)`` (e.g. a table's columns) to add to the features;
            ``None``: the encoding alone (it already says which op and width each block has).
    """

    def __init__(self, space, alpha: float = 1.0, shrink: float = 2.0, counts=None):
        if alpha < 0 or shrink < 0:
            raise InvalidParameterError(
                f"CostModel needs alpha >= 0 and shrink >= 0. Got alpha={alpha}, "
                f"shrink={shrink} instead.")
        self.space, self.alpha, self.shrink, self.counts = space, alpha, shrink, counts
        self.log_ratios_: list[float] = []

    def features(self, archs: Sequence) -> np.ndarray:
        """The encoding of each architecture (and, with ``counts``, its log parameter and FLOP
        counts)."""
        rows = []
        for a in archs:
            a = self.space.coerce(a)
            v = self.space.to_vector(a, "onehot")
            if self.counts is not None:
                p, f = self.counts(a)
                v = np.concatenate([v, [math.log1p(p), math.log1p(f)]])
            rows.append(v)
        return np.asarray(rows, float)

    def fit(self, archs: Sequence, seconds: Sequence[float]) -> CostModel:
        """Fit the prior on recorded ``seconds`` (one per architecture; non-positive or
        non-finite times are skipped)."""
        from sklearn.linear_model import Ridge

        y = np.asarray(seconds, float)
        ok = np.isfinite(y) & (y > 0)
        if ok.sum() < 2:
            raise InvalidParameterError(
                f"CostModel.fit needs at least 2 positive finite times; got {int(ok.sum())}")
        X = self.features([a for a, k in zip(archs, ok) if k])
        self.model_ = Ridge(alpha=self.alpha).fit(X, np.log(y[ok]))
        self.log_ratios_ = []
        return self

    @classmethod
    def from_benchmark(cls, bench, metric: str = "train_seconds", **kwargs) -> CostModel:
        """The prior fitted on a benchmark's recorded times (per-architecture means)."""
        archs = bench.arch_strings()
        return cls(bench.space, **kwargs).fit(archs, bench.values(metric))

    def observe(self, arch, seconds: float) -> None:
        """Calibrate to this machine with one training's observed ``seconds``."""
        if not hasattr(self, "model_"):
            raise NotFittedError("CostModel is not fitted yet; call fit() or from_benchmark()")
        if seconds > 0 and math.isfinite(seconds):
            prior = float(self.model_.predict(self.features([arch]))[0])
            self.log_ratios_.append(math.log(seconds) - prior)

    def calibrate(self, observed) -> CostModel:
        """Calibrate afresh to ``observed`` ``(arch, seconds)`` pairs (the previous
        observations are dropped): what a search does with the trainings it has seen."""
        self.log_ratios_ = []
        for arch, seconds in observed:
            self.observe(arch, seconds)
        return self

    @property
    def factor(self) -> float:
        """The calibration: observed over prior seconds (1 before any observation)."""
        return math.exp(sum(self.log_ratios_) / (len(self.log_ratios_) + self.shrink))

    def predict(self, archs: Sequence) -> np.ndarray:
        """Predicted training seconds on this machine."""
        if not hasattr(self, "model_"):
            raise NotFittedError("CostModel is not fitted yet; call fit() or from_benchmark()")
        return np.exp(self.model_.predict(self.features(list(archs)))) * self.factor


def seconds_of(scores) -> dict[str, float]:
    """``{"predicted_seconds": s}`` where a cost-aware filter predicted a candidate's training
    time (``scores``: a candidate's scores, a plan entry, a job or a record), else ``{}``."""
    s = scores.get("predicted_seconds")
    return {} if s is None else {"predicted_seconds": round(float(s), 3)}


def full_training_seconds(record) -> float:
    """A record's training seconds scaled to a whole training: a continued training (a
    scheduler's promotion) paid only for the steps after its checkpoint. NaN for what did not
    train (a table lookup: its record says no ``steps``) or has no seconds."""
    if record.get("steps") is None:
        return math.nan
    s = float(record.get("seconds") or math.nan)
    f, f0 = record.get("fidelity"), int(record.get("from_steps") or 0)
    if f is not None and int(f) > f0 > 0:
        s *= int(f) / (int(f) - f0)
    return s


def cost_prior(space, prior: str | None = "auto") -> CostModel | None:
    """A :class:`CostModel` of ``space`` fitted on a benchmark's recorded training times, or
    ``None``. ``prior``: a benchmark name, or ``"auto"``: the shipped 1-D table
    (``blocks1d-mnist1d``, whose times cover every op) for a ``blocks1d`` space, else none. Only
    the table's architectures that ``space`` holds are used (at least 20, else ``None``)."""
    if prior is None or (prior == "auto" and not str(space.name).startswith("blocks1d")):
        return None
    from predictors.pretrain import table_in_space

    _, archs, secs = table_in_space(space, "blocks1d-mnist1d" if prior == "auto" else prior,
                                    "train_seconds")
    if len(archs) < 20:
        return None
    return CostModel(space).fit(archs, secs)


def expected_improvement(mean, std, best: float) -> np.ndarray:
    """Expected improvement of a Gaussian ``(mean, std)`` over ``best`` (higher is better); where
    ``std`` is 0 the plain improvement ``max(mean - best, 0)``."""
    from scipy.stats import norm

    mean, std = np.asarray(mean, float), np.nan_to_num(np.asarray(std, float), nan=0.0)
    gap = mean - best
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(std > 0, gap / np.where(std > 0, std, 1.0), 0.0)
    return np.where(std > 0, gap * norm.cdf(z) + std * norm.pdf(z), np.maximum(gap, 0.0))
