"""Filters: cheap, staged scoring of a pool of candidates before any full evaluation.

:class:`PredictorFilter` (prednas' default) is a composition of two
:class:`predictors.FeaturePipeline` stages, a predictor and an acquisition step:

1. every candidate: the predictor on cheap features (architecture encodings, plus zero-cost proxy
   values from a shipped proxy table when one covers the space), ranked by the acquisition
   (an upper confidence bound ``mean + kappa * std`` on an ensemble predictor's spread);
2. the ``survivors`` best of stage 1 only: expensive features computed live (zero-cost proxies that
   need a backward pass, scores of a warmed-up weight-sharing supernet), then a second fit on all
   features ranks them again.

Before enough evaluations exist to fit a predictor (``min_fit``), each stage ranks by the mean rank
of its zero-shot scores (proxies, supernet), or keeps a random order when it has none. The
predictor only learns from the evaluations made so far in this search (no leakage from a
benchmark's labels). A ``prior`` predictor trained elsewhere may be blended in (transfer); it sees
its features through the pipeline saved with it, built by the same code as in ``prednas pretrain``.
"""

from __future__ import annotations

import inspect
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata

from prednas.errors import InvalidParameterError
from prednas.params import HasMethods, Interval, Options, SequenceOf
from prednas.search.base import Candidate, Filter
from prednas.search.registries import REGISTRIES, register_filter

__all__ = ["FILTERS", "PredictorFilter", "NoFilter", "default_predictor", "ACQUISITIONS",
           "acquire"]

log = logging.getLogger(__name__)

FILTERS = REGISTRIES["filter"]
#: sub-directory of the run directory holding the filter's supernet warm-up (``warmup.pt``)
WARMUP_DIR = "supernet"
_register = register_filter


@_register("none")
class NoFilter(Filter):
    """Keeps candidates in the order they were proposed (random search, REA, Model Search)."""

    def select(self, space, candidates, history, k, rng):
        return list(candidates[:k])

    def signals(self):
        return {"none": "no filter: candidates are evaluated in the order proposed"}


def default_predictor(random_state: int | None = None):
    """An ensemble of gradient-boosted regressors and a pairwise ranker, fast enough to refit
    every round; its members' spread is the uncertainty used by the acquisition."""
    from predictors.ensemble import EnsemblePredictor
    from predictors.xgb import XGBPredictor

    members = [XGBPredictor(n_estimators=150, max_depth=4, learning_rate=0.1, subsample=0.8,
                            colsample_bytree=0.8),
               XGBPredictor(n_estimators=150, max_depth=3, learning_rate=0.1, subsample=0.7,
                            colsample_bytree=0.6),
               XGBPredictor(objective="rank", n_estimators=150, max_depth=4, learning_rate=0.1,
                            subsample=0.8)]
    return EnsemblePredictor(members=members, random_state=random_state)


#: acquisition name -> f(mean, std, kappa) (higher is better)
ACQUISITIONS = {"ucb": lambda mean, std, kappa: mean + kappa * std,
                "mean": lambda mean, std, kappa: mean}


def acquire(name: str, mean: np.ndarray, std: np.ndarray, kappa: float) -> np.ndarray:
    """Score candidates from the predictor's mean and spread."""
    return ACQUISITIONS[name](mean, np.nan_to_num(std, nan=0.0), kappa)


def _dataset_of(context) -> str:
    """The dataset whose proxy table fits the run: its task's, or its benchmark's task's."""
    if context.task is not None:
        return context.task.name
    recipe = getattr(context.oracle, "recipe", None)
    return (recipe or {}).get("task", "cifar10")


def _check_task_fits(space, task) -> None:
    """A task given to the filter must feed the space's networks (one forward pass of the
    space's default architecture on two examples); a clear error otherwise."""
    import torch

    try:
        model = space.build(space.default_arch(), task.num_classes, task.input_shape)
        with torch.no_grad():
            model.eval()(torch.zeros(2, *task.input_shape))
    except (RuntimeError, ValueError, IndexError) as exc:
        raise InvalidParameterError(
            f"The task {task.name!r} (inputs of shape {tuple(task.input_shape)}) does not fit "
            f"the {space.name} space's networks ({type(exc).__name__}: {str(exc)[:120]}); give "
            "a task whose inputs the space takes") from None


def _seeded_clone(predictor, seed: int):
    from sklearn.base import clone

    est = clone(predictor)
    if "random_state" in est.get_params(deep=False):
        est.set_params(random_state=seed)
    return est


def _predict(est, X) -> tuple[np.ndarray, np.ndarray]:
    """Mean and spread (zeros for a predictor without ``return_std``)."""
    if "return_std" in inspect.signature(est.predict).parameters:
        mean, std = est.predict(X, return_std=True)
    else:
        mean = est.predict(X)
        std = np.zeros(len(mean))
    return np.asarray(mean, float), np.asarray(std, float)


#: proxies whose mean rank orders candidates before the predictor is fitted: those the zero-cost
#: proxy literature (MeCo, ZiCo, NASWOT, SynFlow papers) reports as most reliable on NB201
_ZERO_SHOT = ("meco", "zico", "nwot", "synflow")


def _rank01(v: np.ndarray, missing: float = 0.5) -> np.ndarray:
    """Ranks scaled to [0, 1] (higher value -> higher rank); NaN -> ``missing``."""
    v = np.asarray(v, float)
    out = np.full(len(v), missing)
    ok = np.isfinite(v)
    if ok.sum() > 1:
        out[ok] = (rankdata(v[ok]) - 1) / (ok.sum() - 1)
    return out


@_register("predictor")
class PredictorFilter(Filter):
    """Staged filter: predictor + cached proxies on all, live proxies / supernet on survivors.

    Args:
        predictor: a registered ``predictors`` estimator (``predict(X, return_std=True)`` gives the
            spread used by the acquisition); ``None``: :func:`default_predictor`. Cloned and
            re-seeded at every refit. A graph predictor (``GNNPredictor``, or an
            ``EnsemblePredictor`` with one) gets the candidates' graphs with the feature rows
            attached.
        encodings: architecture encodings used as features (``space.to_vector``).
        proxy_table: ``"auto"`` (the table shipped with ``proxies`` for the space and ``dataset``,
            when there is one), ``"shipped"`` (that table, which must exist), a CSV path, or
            ``None``; its values are stage-1 features, NaN where an architecture is missing.
        dataset: dataset of the shipped proxy table (``None``: the search's task, the
            benchmark's task for a trained benchmark such as ``blocks1d-mnist1d``, else CIFAR-10
            as for NB201).
        table_proxies: names of table proxies to use (``None``: all of them).
        zero_shot: proxy names whose mean rank orders candidates before the predictor is fitted
            (``None``: ``meco``, ``zico``, ``nwot``, ``synflow`` where available, else every table
            proxy). Candidates without values rank last.
        live_proxies: proxies computed on survivors with ``proxies.score_arch`` on a fixed batch of
            the task (only with a task).
        supernet: ``"auto"`` warms up a weight-sharing supernet on the task (``prednas.warmup``) and
            scores survivors with it; the path of a CSV of supernet scores written by
            ``SupernetScorer.to_csv`` or ``scripts/supernet_scores.py`` (``arch,<feature
            names>``) looks them up instead (no task needed; NaN for an architecture it lacks);
            ``None`` disables.
        supernet_features: which supernet scores are features (e.g. ``("supernet_acc",
            "supernet_neg_loss")``; see :data:`prednas.supernet.FEATURES`); ``None``: with
            ``"auto"`` the space's measured ones (:data:`prednas.supernet.WARMUP_DEFAULTS`), every
            column of a CSV.
        survivors: how many candidates reach stage 2 (at least the number evaluated per round).
        acquisition: ``"ucb"`` (mean + kappa * spread) or ``"mean"``.
        kappa: weight of the predictor's spread in the upper confidence bound.
        min_fit: evaluations needed before the predictor is fitted.
        prior: the path of a predictor file written by ``predictors.save`` / ``prednas
            pretrain`` (transfer; its own feature pipeline is restored), or ``"table"``: a
            predictor learned when the search starts from the shipped 1-D table's accuracies
            (:func:`predictors.pretrain.table_prior`; a ``blocks1d`` space). Before the predictor is
            fitted it orders the candidates (with the zero-shot proxies); afterwards it is blended
            in with weight ``prior_weight * min_fit / max(min_fit, n_evaluated)``.
        prior_weight: see ``prior``.
        warmup_kwargs: options for ``prednas.warmup`` (left out: the space's measured setting,
            :data:`prednas.supernet.WARMUP_DEFAULTS`).
        distribution: the path of an ST-NAS architecture distribution (``distribution.json`` of
            ``prednas.stnas.train`` or of a ``--strategy stnas`` run): each candidate's
            log-probability under it (``stnas_log_prob``) is a stage-1 feature (a lookup).
        task, task_options: a task (by name, with its loader options) for the live proxies and
            the warm-up instead of the search's; in oracle mode, where the search has no task,
            this gives them one (e.g. ``task="cifar10", task_options={"path": ...}`` beside
            ``oracle=nb201``).
        time_weight: how much a candidate's predicted training time counts (cost-aware
            proposals). 0: not at all. Above 0 the predictor's gain is the expected improvement
            over the best result so far (before the fit, the zero-shot rank) and candidates are
            ordered by ``gain / (seconds / median seconds) ** time_weight`` (1: expected
            improvement per second, Snoek et al. 2012). Seconds come from a
            :class:`~prednas.search.cost.CostModel`: a prior fitted on a table's times
            (``cost_prior``), calibrated to this machine by the trainings seen in the run (without
            a prior, fitted on them once 3 exist).
        cost_prior: the benchmark whose recorded times are the cost model's prior (``"auto"``:
            the shipped 1-D table for a ``blocks1d`` space; ``None``: none).
    """

    _parameter_constraints = {
        "predictor": [None, HasMethods("fit", "predict", "get_params")],
        "encodings": [SequenceOf(str)],
        "proxy_table": [None, Options("auto", "shipped"), str, os.PathLike],
        "dataset": [None, str],
        "table_proxies": [None, SequenceOf(str)],
        "zero_shot": [None, SequenceOf(str)],
        "live_proxies": [SequenceOf(str)],
        "supernet": [None, Options("auto"), str, os.PathLike],
        "supernet_features": [None, SequenceOf(str)],
        "survivors": [Interval(int, 1, None)],
        "acquisition": [Options(*ACQUISITIONS)],
        "kappa": [Interval(float, 0, None)],
        "min_fit": [Interval(int, 2, None)],
        "prior": [None, str, os.PathLike],
        "prior_weight": [Interval(float, 0, None)],
        "warmup_kwargs": [None, "dict"],
        "task": [None, str],
        "task_options": [None, "dict"],
        "distribution": [None, str, os.PathLike],
        "time_weight": [Interval(float, 0, None)],
        "cost_prior": [None, str],
    }

    def __init__(self, predictor=None, encodings: Sequence[str] = ("onehot", "path"),
                 proxy_table: Any = "auto", dataset: str | None = None,
                 table_proxies: Sequence[str] | None = None,
                 zero_shot: Sequence[str] | None = None, live_proxies: Sequence[str] = (),
                 supernet: str | None = None, survivors: int = 20, acquisition: str = "ucb",
                 kappa: float = 0.5, min_fit: int = 5, prior=None, prior_weight: float = 1.0,
                 warmup_kwargs: dict | None = None,
                 supernet_features: Sequence[str] | None = None, task: str | None = None,
                 task_options: dict | None = None, distribution=None, time_weight: float = 0.0,
                 cost_prior: str | None = "auto"):
        self.predictor = predictor
        self.encodings = encodings
        self.proxy_table = proxy_table
        self.dataset = dataset
        self.table_proxies = table_proxies
        self.zero_shot = zero_shot
        self.live_proxies = live_proxies
        self.supernet = supernet
        self.supernet_features = supernet_features
        self.survivors = survivors
        self.acquisition = acquisition
        self.kappa = kappa
        self.min_fit = min_fit
        self.prior = prior
        self.prior_weight = prior_weight
        self.warmup_kwargs = warmup_kwargs
        self.task = task
        self.task_options = task_options
        self.distribution = distribution
        self.time_weight = time_weight
        self.cost_prior = cost_prior

    def _validate_params(self) -> None:
        super()._validate_params()
        reserved = [k for k in (self.warmup_kwargs or {}) if k in ("space", "task", "seed",
                                                                  "device")]
        if reserved:
            raise InvalidParameterError(
                f"The 'warmup_kwargs' parameter of PredictorFilter must not set {reserved[0]!r}: "
                "the search gives the warm-up its space, task, seed and device")

    # -- setup ----------------------------------------------------------------------------------
    def setup(self, context) -> None:
        from predictors.features import FeaturePipeline, load_proxy_table

        space = context.space
        if self.task is not None:
            from prednas import tasks

            self.task_ = tasks.get(self.task, **(self.task_options or {}))
            _check_task_fits(space, self.task_)
        else:
            self.task_ = context.task
        base = self.predictor if self.predictor is not None else default_predictor()
        try:
            _seeded_clone(base, 0)
        except (TypeError, RuntimeError) as exc:
            raise InvalidParameterError(
                f"The 'predictor' parameter of PredictorFilter must be an sklearn-style estimator "
                f"that sklearn.base.clone can copy. Got {base!r}: {exc}") from None
        self.predictor_ = base
        # stage 1: encodings and table proxies (never computed live: stage 1 sees every mutation)
        self.dataset_ = self.dataset or (self.task_.name if self.task_ is not None
                                         else _dataset_of(context))
        table = load_proxy_table(self.proxy_table, space.name, self.dataset_)
        names = list(table.names) if table is not None else []
        if self.table_proxies is not None:
            unknown = [n for n in self.table_proxies if n not in names]
            if unknown:
                from prednas.errors import UnknownNameError

                raise UnknownNameError("table proxy", unknown[0], names)
            names = list(self.table_proxies)
        self.guide_ = None
        if self.distribution is not None:  # a missing or foreign file is an error now
            from prednas.stnas import ArchDistribution

            self.guide_ = ArchDistribution.load(self.distribution, space)
        self.stage1_ = FeaturePipeline(space, encoding=tuple(self.encodings) or None,
                                       proxies=names, proxy_table=table, dataset=self.dataset_,
                                       device=context.device, warn_missing=False
                                       ) if (names or self.encodings) else None
        if self.stage1_ is None:
            raise InvalidParameterError("PredictorFilter has no stage-1 features: give encodings "
                                        "or a proxy table")
        self.table_names_ = names
        zs = ([n for n in self.zero_shot if n in names] if self.zero_shot is not None
              else [n for n in _ZERO_SHOT if n in names] or list(names))
        n_enc = len(self.stage1_.feature_names) - len(names)
        self.zero_shot_cols_ = [n_enc + names.index(n) for n in zs]
        # stage 2: live proxies and the supernet, on survivors only (only with a task)
        self.scorer_, self.scorer_seconds_, self.supernet_note_ = None, 0.0, ""
        names = self.supernet_features
        if self.supernet == "auto":
            if names is None:  # the scores measured to help on this space
                from prednas.supernet import warmup_defaults

                names = list(warmup_defaults(space)["features"])
            if self.task_ is not None:
                self.scorer_ = self._warmup(context)
        elif self.supernet is not None:  # saved scores, looked up
            from prednas.supernet import SupernetScores

            self.scorer_ = SupernetScores.from_csv(self.supernet, space=space)
            names = list(self.scorer_.feature_names) if names is None else names
        live = list(self.live_proxies) if self.task_ is not None else []
        self.stage2_ = (FeaturePipeline(space, encoding=None, proxies=live, task=self.task_,
                                        supernet=self.scorer_, device=context.device,
                                        supernet_features=(None if self.scorer_ is None
                                                           else names))
                        if live or self.scorer_ is not None else None)
        self.stage2_seconds_ = 0.0
        self.prior_ = self._load_prior(context)
        self.cost_model_ = None
        if self.time_weight > 0:
            from prednas.search.cost import cost_prior

            self.cost_model_ = cost_prior(space, self.cost_prior)
        self.costs_ = tuple(context.costs)
        self.constraints_ = dict(context.constraints)
        self.space_ = space
        task = self.task_
        self.shape_ = ((tuple(task.input_shape), task.num_classes) if task is not None
                       else (None, 10))

    def _warmup(self, context):
        import prednas
        from prednas.search.rundir import STATE
        from prednas.supernet import WarmupDiverged

        kw = dict(self.warmup_kwargs or {})  # the rest: the space's measured setting
        # a finished warm-up is kept in the run directory, so a resumed search loads it; a new
        # run's directory stays empty until the engine creates it: saved on the first selection
        run_dir = context.run_dir
        self.warmup_dir_ = Path(run_dir) / WARMUP_DIR if run_dir is not None else None
        resumed = run_dir is not None and (Path(run_dir) / STATE).is_file()
        self.warmup_saved_ = resumed
        t = time.perf_counter()
        try:
            scorer = prednas.warmup(context.space, self.task_, seed=context.seed,
                                    device=context.device,
                                    state_dir=self.warmup_dir_ if resumed else None, **kw)
        except TypeError as exc:  # an option neither warmup nor the space's supernet takes
            if "unexpected keyword argument" not in str(exc):
                raise
            raise InvalidParameterError(
                f"The 'warmup_kwargs' parameter of PredictorFilter has an option that neither "
                f"prednas.warmup nor the {context.space.name} supernet takes ({exc})") from None
        except WarmupDiverged as exc:  # reported, and the search goes on without the supernet
            self.supernet_note_ = f"the supernet warm-up diverged ({exc}); filtering without it"
            log.warning(self.supernet_note_)
            return None
        self.scorer_seconds_ = float(getattr(scorer, "seconds", time.perf_counter() - t))
        log.info("supernet warm-up took %.1fs", self.scorer_seconds_)
        return scorer

    def _load_prior(self, context):
        """``(estimator, pipeline)`` from :attr:`prior`, or ``None``."""
        if self.prior is None:
            return None
        if self.prior == "table":
            from predictors.pretrain import table_prior

            return table_prior(context.space)
        import predictors

        est, pipe = predictors.load(self.prior, context.space, task=self.task_,
                                    device=context.device)
        log.info("transfer prior: %s", self.prior)
        return est, pipe

    def feature_seconds(self) -> float:
        return self.scorer_seconds_

    def signals(self) -> dict[str, Any]:
        out: dict[str, Any] = {"encodings": list(self.encodings)}
        if not hasattr(self, "stage1_"):  # not set up (a finished run re-reported)
            return out
        if self.table_names_:
            out["proxy table"] = f"{', '.join(self.table_names_)} ({self.dataset_})"
        if self.stage2_ is not None and self.stage2_.proxies:
            out["live proxies"] = ", ".join(self.stage2_.proxies)
        if self.scorer_ is not None and self.supernet != "auto":
            out["supernet"] = f"scores of {os.fspath(self.supernet)}: " + ", ".join(
                n for n in self.stage2_.feature_names if n.startswith("supernet"))
        elif self.scorer_ is not None:
            out["supernet"] = f"warm-up {self.scorer_seconds_:.1f} s" + (
                " (loaded from the run directory)"
                if self.scorer_.info.get("loaded_from") else "")
        elif self.supernet == "auto":
            out["supernet"] = self.supernet_note_ or "not used (no task)"
        elif self.task_ is not None:  # off by default, for a measured reason
            out["supernet"] = ("not used: its warm-up costs about what a default search's "
                               "trainings do, and on the 1-D benchmark its filter gain is smaller "
                               "than what that time buys in trainings "
                               "(benchmarks/search-blocks1d-mnist1d-supernet.md); "
                               "--warmup-seconds or supernet='auto' turns it on")
        if self.guide_ is not None:
            out["stnas log-probability"] = os.fspath(self.distribution)
        if self.prior == "table":
            from predictors.pretrain import TABLE_PRIOR_BENCH

            out["prior"] = f"learned from the shipped table {TABLE_PRIOR_BENCH} (transfer)"
        elif self.prior is not None:
            out["prior"] = os.fspath(self.prior)
        out["acquisition"] = f"{self.acquisition} (kappa {self.kappa})"
        if self.time_weight > 0:
            out["acquisition"] = (
                f"expected improvement per (relative predicted second) ** {self.time_weight:g}; "
                "training seconds from " + (f"the recorded times of {self.cost_prior}, "
                                            "calibrated by the run's"
                                            if self.cost_model_ is not None
                                            else "the run's own trainings"))
        return out

    def _relative_seconds(self, history_ok, harchs, archs) -> np.ndarray | None:
        """Predicted training seconds of ``archs`` over their median (``None`` when time does
        not count, or nothing predicts it yet)."""
        if self.time_weight <= 0:
            return None
        from prednas.search.cost import CostModel, full_training_seconds

        seen = [(a, full_training_seconds(r)) for a, r in zip(harchs, history_ok)]
        seen = [(a, s) for a, s in seen if np.isfinite(s) and s > 0]
        model = self.cost_model_
        if model is not None:
            model.calibrate(seen)
        elif len(seen) >= 3:
            model = CostModel(self.space_).fit([a for a, _ in seen], [s for _, s in seen])
        else:
            return None
        secs = model.predict(archs)
        self.last_seconds_ = dict(zip(map(str, archs), secs.tolist()))
        return secs / np.median(secs)

    def _per_time(self, gain: np.ndarray, rel: np.ndarray | None) -> np.ndarray:
        """``gain`` traded against relative seconds (ties broken toward the cheaper)."""
        if rel is None:
            return gain
        return (np.asarray(gain, float) + 1e-9) / rel ** self.time_weight

    def _gain(self, mean, std, yh, rel) -> np.ndarray:
        """The acquisition; with time counting, the expected improvement over the best."""
        if rel is None:
            return acquire(self.acquisition, mean, std, self.kappa)
        from prednas.search.cost import expected_improvement

        return expected_improvement(mean, std, float(np.max(yh)))

    # -- scoring --------------------------------------------------------------------------------
    def _stage1(self, archs: list) -> np.ndarray:
        """Stage-1 features: encodings, table proxies, and the ST-NAS log-probability."""
        X = self.stage1_.transform(archs)
        if self.guide_ is not None:
            logp = np.asarray([self.guide_.log_prob(a) for a in archs], float)
            X = np.concatenate([X, logp[:, None]], axis=1)
        return X

    def _features(self, archs: list, stage2: bool) -> np.ndarray:
        X = self._stage1(archs)
        if stage2 and self.stage2_ is not None:
            t = time.perf_counter()
            X = np.concatenate([X, self.stage2_.transform(archs)], axis=1)
            self.stage2_seconds_ += time.perf_counter() - t
        return X

    def _inputs(self, est, archs: list, stage2: bool):
        """The predictor's inputs: the feature rows, or (a graph predictor, or an ensemble with
        one) the architectures' graphs with their rows attached."""
        X = self._features(archs, stage2)
        if not getattr(est, "needs_graphs", False):
            return X
        from predictors.features import attach_features

        return attach_features(self.space_, archs, X, self.stage1_.encoding_dim)

    def _fit_predict(self, harchs, yh, archs, seed, stage2) -> tuple[np.ndarray, np.ndarray]:
        est = _seeded_clone(self.predictor_, seed)
        est.fit(self._inputs(est, harchs, stage2), yh)
        mean, std = _predict(est, self._inputs(est, archs, stage2))
        if self.prior_ is not None:
            w = self.prior_weight * self.min_fit / max(self.min_fit, len(yh))
            pm = self._prior_mean(archs)
            pz = (pm - pm.mean()) / (pm.std() + 1e-12) * (yh.std() + 1e-12) + yh.mean()
            mean = (1 - w / (1 + w)) * mean + (w / (1 + w)) * pz
        return mean, std

    def _cost_predictions(self, history_ok, harchs, archs, seed) -> np.ndarray:
        """``(n, len(costs))`` costs of ``archs``: parameters and FLOPs computed exactly (shapes
        only), other costs predicted (a boosted-tree regressor per cost on log costs, fitted on
        the evaluated ones); NaN where a constraint is broken."""
        from predictors.xgb import XGBPredictor
        from prednas.search.evaluators import COMPUTED_COSTS, model_cost

        X_h = X = None
        out = np.zeros((len(archs), len(self.costs_)))
        for j, c in enumerate(self.costs_):
            if c in COMPUTED_COSTS:
                out[:, j] = [model_cost(self.space_, a, c, *self.shape_) for a in archs]
                continue
            if X is None:
                X_h, X = self._stage1(harchs), self._stage1(archs)
            y = np.asarray([float(r.get(c, np.nan)) for r in history_ok], float)
            good = np.isfinite(y)
            if good.sum() < 2 or np.ptp(y[good]) == 0:
                out[:, j] = np.nanmean(y) if good.any() else 0.0
                continue
            est = XGBPredictor(n_estimators=100, max_depth=4, random_state=seed)
            est.fit(X_h[good], np.log1p(np.maximum(y[good], 0)))
            out[:, j] = np.expm1(est.predict(X))
        for c, bound in self.constraints_.items():
            if c in self.costs_:
                out[out[:, self.costs_.index(c)] > bound] = np.nan
        return out

    def _mo_order(self, acq: np.ndarray, costs: np.ndarray, history_ok, n: int) -> np.ndarray:
        """Greedy hypervolume improvement of the predicted points over the observed front (the
        metric's acquisition value with the predicted costs), then NSGA-II order."""
        from prednas.search.pareto import feasible, hv_improvement_order, objective_matrix

        F = np.column_stack([-np.asarray(acq, float), costs])
        F[~np.isfinite(costs).all(axis=1)] = np.nan
        observed = objective_matrix(feasible(history_ok, self.constraints_), self.costs_)
        return hv_improvement_order(F, observed, n)

    def _prior_mean(self, archs: list) -> np.ndarray:
        est, pipe = self.prior_
        return _predict(est, pipe.inputs_for(est, archs))[0]

    def _zero_shot(self, archs: list, stage2: bool) -> np.ndarray | None:
        """Mean rank of the zero-shot columns (and the prior), or ``None`` without any."""
        cols = []
        if self.zero_shot_cols_:
            X1 = self.stage1_.transform(archs)
            cols += [X1[:, j] for j in self.zero_shot_cols_]
        if stage2 and self.stage2_ is not None:
            X2 = self.stage2_.transform(archs)
            cols += [X2[:, j] for j in range(X2.shape[1])]
        cols = [c for c in cols if np.isfinite(c).sum() > 1]
        # unscored candidates (not in the table) rank below every scored one
        zs = np.mean([_rank01(c, missing=-1.0) for c in cols], axis=0) if cols else None
        if self.prior_ is None:
            return zs
        pr = _rank01(self._prior_mean(archs))
        return pr if zs is None else 0.5 * (pr + zs)

    def _save_warmup(self) -> None:
        d = getattr(self, "warmup_dir_", None)  # set by a warm-up of our own only
        if (d is not None and self.scorer_ is not None and not self.warmup_saved_
                and d.parent.is_dir()):
            self.scorer_.save(d)
            self.warmup_saved_ = True

    def select(self, space, candidates, history, k, rng):
        self._save_warmup()
        if not candidates:
            return []
        archs = [c.arch for c in candidates]
        seed = int(rng.integers(2**31 - 1))
        ok = history.ok
        yh = np.asarray([r.objective for r in ok], float)
        harchs = [history.arch(r) for r in ok]
        fitted = len(ok) >= self.min_fit and np.ptp(yh) > 0
        rel = self._relative_seconds(ok, harchs, archs)
        # stage 1: everyone
        costs = None
        if fitted:
            mean, std = self._fit_predict(harchs, yh, archs, seed, stage2=False)
            s1 = self._gain(mean, std, yh, rel)
            if self.costs_:
                costs = self._cost_predictions(ok, harchs, archs, seed + 2)
        else:
            mean = std = np.full(len(archs), np.nan)
            zs = self._zero_shot(archs, stage2=False)
            s1 = zs if zs is not None else rng.random(len(archs))
        s1 = self._per_time(s1, rel)
        n2 = min(len(archs), max(k, self.survivors))
        order = (self._mo_order(s1, costs, ok, n2) if costs is not None
                 else np.lexsort((np.arange(len(archs)), -s1)))[:n2]
        surv: list[Candidate] = [candidates[i] for i in order]
        for c, i in zip(surv, order):
            c.predicted, c.predicted_std = float(mean[i]), float(std[i])
            c.scores["stage1"] = float(s1[i])
            if rel is not None:
                c.scores["predicted_seconds"] = float(self.last_seconds_[str(c.arch)])
        if self.stage2_ is None:
            return surv[:k]
        # stage 2: survivors only
        sarchs = [c.arch for c in surv]
        rel2 = None if rel is None else rel[order]
        if fitted:
            m2, s2 = self._fit_predict(harchs, yh, sarchs, seed + 1, stage2=True)
            final = self._per_time(self._gain(m2, s2, yh, rel2), rel2)
            for c, m, s in zip(surv, m2, s2):
                c.predicted, c.predicted_std = float(m), float(s)
        else:  # the zero-shot rank (traded against time), else stage 1's order (which was)
            zs = self._zero_shot(sarchs, stage2=True)
            final = (self._per_time(zs, rel2) if zs is not None
                     else _rank01(np.asarray([c.scores["stage1"] for c in surv])))
        for c, row in zip(surv, self.stage2_.transform(sarchs)):
            c.scores.update({n: float(v) for n, v in zip(self.stage2_.feature_names, row)})
        order2 = (self._mo_order(final, costs[order], ok, k) if costs is not None
                  else np.lexsort((np.arange(len(surv)), -np.asarray(final))))
        return [surv[i] for i in order2][:k]
