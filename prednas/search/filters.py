"""Filters: cheap, staged scoring of a pool of candidates before any full evaluation.

:class:`PredictorFilter` (prednas' default) scores in two stages:

1. every candidate: the predictor on cheap features (architecture encodings, plus zero-cost proxy
   values looked up in a cached proxy table when one covers the space), ranked by an upper
   confidence bound ``mean + kappa * std`` from an ensemble predictor's spread;
2. the ``survivors`` best of stage 1 only: expensive features computed live (zero-cost proxies that
   need a backward pass, the score of a warmed-up weight-sharing supernet), then a second predictor
   on all features ranks them again.

Before enough evaluations exist to fit a predictor (``min_fit``), each stage ranks by the mean rank
of its zero-shot scores (proxies, supernet), or keeps a random order when it has none.
The predictor only ever learns from the evaluations made so far in this search (no leakage from a
benchmark's labels). A ``prior`` predictor trained elsewhere may be blended in (transfer).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata

from prednas.errors import PredNASError, check_param
from prednas.registry import Registry
from prednas.search.base import Filter

__all__ = ["FILTERS", "PredictorFilter", "NoFilter", "default_predictor"]

log = logging.getLogger(__name__)

FILTERS = Registry("filter")


_register = FILTERS.register_class


@_register("none")
class NoFilter(Filter):
    """Keeps candidates in the order they were proposed (random search and REA baselines)."""

    def select(self, space, candidates, history, k, rng):
        return list(candidates[:k])


class _TreeSpread:
    """Stand-in ensemble when the ``predictors`` package is unavailable: extra trees whose
    per-tree spread is the uncertainty."""

    def __init__(self, random_state=None):
        self.random_state = random_state

    def fit(self, X, y):
        from sklearn.ensemble import ExtraTreesRegressor

        self.model_ = ExtraTreesRegressor(n_estimators=64, min_samples_leaf=2, n_jobs=1,
                                          random_state=self.random_state)
        self.model_.fit(np.nan_to_num(X, nan=0.0), y)
        return self

    def predict(self, X, return_std=False):
        X = np.nan_to_num(X, nan=0.0)
        per = np.stack([t.predict(X) for t in self.model_.estimators_])
        return (per.mean(0), per.std(0)) if return_std else per.mean(0)

    def get_params(self, deep=False):
        return {"random_state": self.random_state}

    def set_params(self, **p):
        self.__dict__.update(p)
        return self


def default_predictor(random_state: int | None = None):
    """An ensemble of gradient-boosted regressors and a pairwise ranker (``predictors``), fast
    enough to refit every round; falls back to extra trees when ``predictors`` is missing."""
    try:
        from predictors.ensemble import EnsemblePredictor
        from predictors.xgb import XGBPredictor
    except ImportError:  # pragma: no cover - depends on the installed packages
        log.warning("predictors package unavailable; using an extra-trees stand-in")
        return _TreeSpread(random_state)
    members = [XGBPredictor(n_estimators=150, max_depth=4, learning_rate=0.1, subsample=0.8,
                            colsample_bytree=0.8),
               XGBPredictor(n_estimators=150, max_depth=3, learning_rate=0.1, subsample=0.7,
                            colsample_bytree=0.6),
               XGBPredictor(objective="rank", n_estimators=150, max_depth=4, learning_rate=0.1,
                            subsample=0.8)]
    return EnsemblePredictor(members=members, random_state=random_state)


def _clone_seeded(predictor, seed: int):
    try:
        from sklearn.base import clone

        est = clone(predictor)
    except Exception:  # noqa: BLE001 - not an sklearn estimator: use as given
        return predictor
    try:
        if "random_state" in est.get_params():
            est.set_params(random_state=seed)
    except Exception:  # noqa: BLE001
        pass
    return est


def _predict(est, X) -> tuple[np.ndarray, np.ndarray]:
    try:
        mean, std = est.predict(X, return_std=True)
    except TypeError:
        mean, std = est.predict(X), np.zeros(len(X))
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
        predictor: an sklearn-style regressor; ``predict(X, return_std=True)`` gives the spread used
            for the upper confidence bound. ``None``: :func:`default_predictor`. Cloned and
            re-seeded at every refit.
        encodings: architecture encodings used as features (``space.to_vector``).
        proxy_table: a ``proxies.ProxyTable`` (or ``"auto"``: ``proxies.load_table`` for NB201) whose
            values are cheap features; missing entries are NaN.
        table_proxies: names of table proxies to use (``None``: all of them).
        zero_shot: proxy names whose mean rank orders candidates before the predictor is fitted
            (``None``: ``meco``, ``zico``, ``nwot``, ``synflow`` where available, else every table
            proxy). Candidates without values rank last.
        live_proxies: proxies computed on survivors with ``proxies.score_arch`` on a batch of the
            task (only with a task).
        supernet: ``"auto"`` warms up a weight-sharing supernet on the task (``prednas.warmup``) and
            scores survivors with it; ``None`` disables; or a scorer with ``.score(archs)``.
        survivors: how many candidates reach stage 2 (at least the number evaluated per round).
        kappa: weight of the predictor's spread in the upper confidence bound.
        min_fit: evaluations needed before the predictor is fitted.
        prior: a predictor fitted elsewhere (transfer): the path of a file written by
            ``predictors.save`` / ``prednas pretrain`` (its own feature pipeline is restored), a
            ``(predictor, pipeline)`` pair, or an estimator on this filter's stage-1 features.
            Before the predictor is fitted it orders the candidates (with the zero-shot proxies);
            afterwards it is blended in with weight
            ``prior_weight * min_fit / max(min_fit, n_evaluated)``, fading as evaluations accrue.
        prior_weight: see ``prior``.
        warmup_kwargs: options for ``prednas.warmup``.
    """

    def __init__(self, predictor=None, encodings: Sequence[str] = ("onehot", "path"),
                 proxy_table: Any = "auto", table_proxies: Sequence[str] | None = None,
                 zero_shot: Sequence[str] | None = None, live_proxies: Sequence[str] = (),
                 supernet: Any = None, survivors: int = 20, kappa: float = 0.5,
                 min_fit: int = 5, prior=None, prior_weight: float = 1.0,
                 warmup_kwargs: dict | None = None):
        self.predictor = predictor
        self.encodings = encodings
        self.proxy_table = proxy_table
        self.table_proxies = table_proxies
        self.zero_shot = zero_shot
        self.live_proxies = live_proxies
        self.supernet = supernet
        self.survivors = survivors
        self.kappa = kappa
        self.min_fit = min_fit
        self.prior = prior
        self.prior_weight = prior_weight
        self.warmup_kwargs = warmup_kwargs

    # -- setup ----------------------------------------------------------------------------------
    def setup(self, search) -> None:
        check_param(type(self).__name__, "survivors", self.survivors, low=1)
        check_param(type(self).__name__, "min_fit", self.min_fit, low=2)
        self._space = search.space
        self._task = search.task
        self._seed = search.seed
        self._device = getattr(search, "device", "auto")
        self._cache1: dict[str, np.ndarray] = {}
        self._cache2: dict[str, np.ndarray] = {}
        self.table_ = self._load_table(search.space)
        names = list(self.table_.names) if self.table_ is not None else []
        if self.table_proxies is not None and self.table_ is not None:
            names = [n for n in self.table_proxies if n in self.table_.names]
        self.table_names_ = names
        if self.zero_shot is not None:
            zs = [n for n in self.zero_shot if n in names]
        else:
            zs = [n for n in _ZERO_SHOT if n in names] or list(names)
        self.zero_shot_idx_ = [names.index(n) for n in zs]
        self.scorer_ = None
        self.scorer_seconds_ = 0.0
        if self.supernet is not None and search.task is not None:
            self.scorer_ = self._make_scorer(search)
        self.prior_ = self._load_prior(search)
        self.live_names_ = list(self.live_proxies) if search.task is not None else []
        if self.live_names_:
            self._batch = search.task.batch(64, split="train", seed=search.seed)

    def _load_table(self, space):
        table = self.proxy_table
        if table is None:
            return None
        if isinstance(table, str):
            if table != "auto":
                raise PredNASError(f"proxy_table must be 'auto', None or a ProxyTable, got {table!r}")
            if space.name != "nb201":
                return None
            try:
                import proxies

                return proxies.load_table(space="nb201", dataset="cifar10")
            except Exception as exc:  # noqa: BLE001 - optional feature
                log.warning("no cached proxy table for %s (%s); encodings only", space.name, exc)
                return None
        return table

    def _load_prior(self, search):
        """``(estimator, pipeline or None)`` from :attr:`prior`, or ``None``."""
        prior = self.prior
        if prior is None:
            return None
        if isinstance(prior, (str, os.PathLike)):
            import predictors

            est, pipe = predictors.load(prior, search.space, task=search.task,
                                        device=self._device)
            log.info("transfer prior: %s", prior)
            return est, pipe
        if isinstance(prior, tuple) and len(prior) == 2:
            return prior
        return prior, None

    def _prior_mean(self, archs: list, X1: np.ndarray) -> np.ndarray:
        """The prior's predictions: through its own pipeline, else on the stage-1 features."""
        est, pipe = self.prior_
        mean, _ = _predict(est, pipe.transform(archs) if pipe is not None else X1)
        return mean

    def _make_scorer(self, search):
        if self.supernet != "auto":
            return self.supernet
        try:
            import prednas

            kw = {"fraction": 0.2, "steps": 150, "batch_size": 64}
            kw.update(self.warmup_kwargs or {})
            t = time.perf_counter()
            scorer = prednas.warmup(search.space, search.task, seed=search.seed,
                                    device=self._device, **kw)
            self.scorer_seconds_ = float(getattr(scorer, "seconds", time.perf_counter() - t))
            log.info("supernet warm-up took %.1fs", self.scorer_seconds_)
            return scorer
        except Exception as exc:  # noqa: BLE001 - warm-up is an optional signal
            log.warning("supernet warm-up unavailable (%s); filtering without it", exc)
            return None

    def feature_seconds(self) -> float:
        return self.scorer_seconds_

    # -- features -------------------------------------------------------------------------------
    def _stage1(self, archs: list) -> np.ndarray:
        keys = [str(a) for a in archs]
        missing = [i for i, k in enumerate(keys) if k not in self._cache1]
        if missing:
            sub = [archs[i] for i in missing]
            parts = [self._space.to_vectors(sub, e) for e in self.encodings]
            if self.table_ is not None and self.table_names_:
                parts.append(np.asarray(self.table_.lookup([str(a) for a in sub],
                                                           self.table_names_), np.float32))
            feats = np.concatenate(parts, axis=1).astype(np.float32)
            for i, f in zip(missing, feats):
                self._cache1[keys[i]] = f
        return np.stack([self._cache1[k] for k in keys])

    def _stage2(self, archs: list) -> np.ndarray | None:
        if self.scorer_ is None and not self.live_names_:
            return None
        keys = [str(a) for a in archs]
        missing = [i for i, k in enumerate(keys) if k not in self._cache2]
        if missing:
            t = time.perf_counter()
            sub = [archs[i] for i in missing]
            cols = []
            if self.scorer_ is not None:
                try:
                    cols.append(np.asarray(self.scorer_.score(sub), float)[:, None])
                except Exception as exc:  # noqa: BLE001
                    log.warning("supernet scoring failed (%s)", exc)
                    cols.append(np.full((len(sub), 1), np.nan))
            if self.live_names_:
                import proxies

                x, y = self._batch
                rows = []
                for a in sub:
                    try:
                        d = proxies.score_arch(self._space, a, x, y, names=self.live_names_,
                                               num_classes=self._task.num_classes,
                                               seed=self._seed, device=self._device)
                        rows.append([d.get(n, np.nan) for n in self.live_names_])
                    except Exception as exc:  # noqa: BLE001 - a bad candidate is not fatal
                        log.warning("proxies failed on %s: %s", a, exc)
                        rows.append([np.nan] * len(self.live_names_))
                cols.append(np.asarray(rows, float))
            feats = np.concatenate(cols, axis=1).astype(np.float32)
            for i, f in zip(missing, feats):
                self._cache2[keys[i]] = f
            self.stage2_seconds_ = getattr(self, "stage2_seconds_", 0.0) + time.perf_counter() - t
        return np.stack([self._cache2[k] for k in keys])

    # -- scoring --------------------------------------------------------------------------------
    def _fit_predict(self, Xh, yh, X, seed, archs, X1) -> tuple[np.ndarray, np.ndarray]:
        base = self.predictor if self.predictor is not None else default_predictor()
        est = _clone_seeded(base, seed)
        est.fit(Xh, yh)
        mean, std = _predict(est, X)
        if self.prior_ is not None:
            w = self.prior_weight * self.min_fit / max(self.min_fit, len(yh))
            pm = self._prior_mean(archs, X1)
            pz = (pm - pm.mean()) / (pm.std() + 1e-12) * (yh.std() + 1e-12) + yh.mean()
            mean = (1 - w / (1 + w)) * mean + (w / (1 + w)) * pz
        return mean, std

    def _unfitted_order(self, archs, F1, F2) -> np.ndarray | None:
        """Zero-shot order before any fit: mean rank of the prior and the zero-shot proxies."""
        zs = self._zero_shot(F1, F2)
        if self.prior_ is None:
            return zs
        pr = _rank01(self._prior_mean(archs, F1))
        return pr if zs is None else 0.5 * (pr + zs)

    def _zero_shot(self, F1: np.ndarray, F2: np.ndarray | None) -> np.ndarray | None:
        cols = []
        if self.table_ is not None and self.zero_shot_idx_:
            base = F1.shape[1] - len(self.table_names_)
            cols += [F1[:, base + j] for j in self.zero_shot_idx_]
        if F2 is not None:
            cols += [F2[:, j] for j in range(F2.shape[1])]
        cols = [c for c in cols if np.isfinite(c).sum() > 1]
        if not cols:
            return None
        # unscored candidates (not in the table) rank below every scored one
        return np.mean([_rank01(c, missing=-1.0) for c in cols], axis=0)

    def select(self, space, candidates, history, k, rng):
        if not candidates:
            return []
        archs = [c.arch for c in candidates]
        seed = int(rng.integers(2**31 - 1))
        ok = history.ok
        yh = np.asarray([r["objective"] for r in ok], float)
        harchs = [history.arch(r) for r in ok]
        fitted = len(ok) >= self.min_fit and np.ptp(yh) > 0
        # stage 1: everyone
        F1 = self._stage1(archs)
        if fitted:
            mean, std = self._fit_predict(self._stage1(harchs), yh, F1, seed, archs, F1)
            s1 = mean + self.kappa * std
        else:
            mean = std = np.full(len(archs), np.nan)
            zs = self._unfitted_order(archs, F1, None)
            s1 = zs if zs is not None else rng.random(len(archs))
        n2 = min(len(archs), max(k, self.survivors))
        order = np.lexsort((np.arange(len(archs)), -s1))[:n2]
        surv = [candidates[i] for i in order]
        for c, i in zip(surv, order):
            c.predicted, c.predicted_std = float(mean[i]), float(std[i])
            c.scores["stage1"] = float(s1[i])
        # stage 2: survivors only
        F2 = self._stage2([c.arch for c in surv])
        if F2 is not None:
            F1s = F1[order]
            if fitted:
                Fh = np.concatenate([self._stage1(harchs), self._stage2(harchs)], axis=1)
                m2, s2 = self._fit_predict(Fh, yh, np.concatenate([F1s, F2], axis=1), seed + 1,
                                           [c.arch for c in surv], F1s)
                final = m2 + self.kappa * s2
                for c, m, s in zip(surv, m2, s2):
                    c.predicted, c.predicted_std = float(m), float(s)
            else:
                zs = self._unfitted_order([c.arch for c in surv], F1s, F2)
                final = zs if zs is not None else _rank01(np.asarray([c.scores["stage1"]
                                                                     for c in surv]))
            for c, f in zip(surv, F2):
                c.scores.update({f"f{j}": float(v) for j, v in enumerate(f)})
            order2 = np.lexsort((np.arange(len(surv)), -np.asarray(final)))
            surv = [surv[i] for i in order2]
        return surv[:k]
