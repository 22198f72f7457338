"""Pretraining a predictor on a tabular benchmark (``prednas pretrain``)."""

from __future__ import annotations

import logging
import time

import numpy as np

from predictors.base import PREDICTORS
from predictors.features import SHIPPED, FeaturePipeline
from predictors.io import save
from predictors.metrics import ranking_report
from prednas.errors import InvalidParameterError, PredNASError, check_param
from prednas.utils import make_rng

__all__ = ["pretrain", "dataset_of", "make_predictor", "shipped_table", "shipped_table_dataset",
           "table_prior", "table_in_space", "TABLE_PRIOR_BENCH"]

#: the table a ``prior="table"`` is learned from: the complete 1-D table (1,884 architectures)
TABLE_PRIOR_BENCH = "blocks1d-mnist1d"
#: the fewest of the table's architectures a space must hold to learn the table's prior in it
MIN_PRIOR_ARCHS = 20

log = logging.getLogger(__name__)

_DATASETS = ("cifar100", "cifar10", "imagenet16")


def dataset_of(metric: str) -> str:
    """``"cifar100_test_200ep"`` -> ``"cifar100"``."""
    for d in _DATASETS:
        if metric.startswith(d + "_"):
            return d
    return "cifar10"


def shipped_table(space_name: str, dataset: str):
    """The shipped proxy table for ``dataset``, falling back to CIFAR-10; ``None`` if absent.

    :func:`shipped_table_dataset` also says which dataset the table was computed on.
    """
    found = shipped_table_dataset(space_name, dataset)
    return None if found is None else found[0]


def shipped_table_dataset(space_name: str, dataset: str):
    """``(table, dataset it was computed on)`` with the CIFAR-10 fallback, or ``None``."""
    import proxies

    for d in dict.fromkeys([dataset, "cifar10"]):
        try:
            table = proxies.load_table(space=space_name, dataset=d)
        except PredNASError as exc:
            log.info("no shipped proxy table for %s/%s: %s", space_name, d, exc)
            continue
        if d != dataset:
            log.warning("no proxy table for %s; using the %s proxy scores as features",
                        dataset, d)
        return table, d
    return None


def make_predictor(name: str, seed: int | None):
    """The pretraining configuration of a registered predictor."""
    return PREDICTORS.get(name)(random_state=seed)


def pretrain(bench: str = "nb201", target: str | None = None, n_train: int = 100,
             predictor: str = "xgb", seed: int = 0, out=None, n_test: int | None = None,
             encoding: str = "onehot", use_proxies: bool = True) -> dict:
    """Fit a predictor on ``n_train`` benchmark architectures and evaluate it on held-out ones.

    Training architectures are drawn with ``seed`` from the benchmark's architectures that the
    shipped proxy table covers (all of them when there is no table); the remaining covered
    architectures (or ``n_test`` of them) are the held-out set. ``target`` defaults to the
    benchmark's default metric; the proxy table is the one of the benchmark's task (a trained
    benchmark's recipe) or of the metric's dataset (NB201).

    Returns:
        a report dict: sizes, features, metrics (``spearman``, ``kendall``, ``top5_precision``),
        fit seconds and the output path.
    """
    from prednas import benchmarks

    check_param("pretrain", "n_train", n_train, kind=int, low=2)
    if n_test is not None:
        check_param("pretrain", "n_test", n_test, kind=int, low=2)
    b = benchmarks.load(bench)
    target = target or b.default_metric
    values = b.values(target)
    space = b.space
    strings = b.arch_strings()
    dataset = (getattr(b, "recipe", None) or {}).get("task") or dataset_of(target)
    found = shipped_table_dataset(space.name, dataset) if use_proxies else None
    table, table_dataset = found if found is not None else (None, None)
    if table is not None:
        covered = [i for i, s in enumerate(strings) if s in table]
        proxy_names = list(table.names)
    else:
        if use_proxies:
            log.warning("no shipped proxy table found; training on the %s encoding only", encoding)
        covered = list(range(len(strings)))
        proxy_names = []
    covered = [i for i in covered if np.isfinite(values[i])]
    if n_train >= len(covered) - 1:
        raise InvalidParameterError(
            f"n_train={n_train} leaves no held-out architectures ({len(covered)} available)")
    rng = make_rng(seed)
    perm = rng.permutation(covered)
    tr, te = perm[:n_train], perm[n_train:]
    if n_test is not None:
        te = te[:n_test]
    pipe = FeaturePipeline(space, encoding, proxies=proxy_names, proxy_table=table,
                           dataset=table_dataset or "cifar10")
    if table is not None:  # saved as a reference to the shipped table, not its contents
        pipe.table_spec, pipe._table = SHIPPED, table
    model = make_predictor(predictor, seed)
    archs = b.archs()
    X_tr = pipe.inputs_for(model, [archs[i] for i in tr])
    t0 = time.perf_counter()
    model.fit(X_tr, values[tr])
    fit_s = time.perf_counter() - t0
    X_te = pipe.inputs_for(model, [archs[i] for i in te])
    t0 = time.perf_counter()
    pred = model.predict(X_te)
    pred_s = time.perf_counter() - t0
    report = {"bench": bench, "target": target, "predictor": predictor, "seed": seed,
              "n_train": int(len(tr)), "n_test": int(len(te)), "encoding": encoding,
              "proxies": proxy_names, "fit_seconds": fit_s, "predict_seconds": pred_s,
              **ranking_report(values[te], pred), "out": None}
    if out is not None:
        report["out"] = str(save(model, out, pipeline=pipe))
    return report


def table_in_space(space, bench: str, metric: str | None = None):
    """``(benchmark, archs, values)``: the architectures of the benchmark ``bench`` that
    ``space`` holds (as ``space``'s own) with their finite ``metric`` values (default: the
    benchmark's metric)."""
    from prednas import benchmarks

    b = benchmarks.load(bench)
    archs, y = [], []
    for a, v in zip(b.arch_strings(), b.values(metric or b.default_metric)):
        if not np.isfinite(v):
            continue
        try:
            archs.append(space.coerce(a))
        except (ValueError, KeyError, TypeError):
            continue
        y.append(float(v))
    return b, archs, y


def table_prior(space, bench: str = TABLE_PRIOR_BENCH, target: str | None = None,
                seed: int = 0, encoding: str = "onehot"):
    """``(predictor, pipeline)``: an XGBoost predictor of ``target`` learned, in ``space``'s own
    encoding, from every architecture of the benchmark ``bench`` that ``space`` holds (transfer:
    ``PredictorFilter(prior="table")``). A space that holds fewer than :data:`MIN_PRIOR_ARCHS`
    of them is refused."""
    b, archs, y = table_in_space(space, bench, target)
    target = target or b.default_metric
    if len(archs) < MIN_PRIOR_ARCHS:
        raise InvalidParameterError(
            f"a prior learned from the table {bench!r} needs a space that holds its "
            f"architectures; space {getattr(space, 'name', space)!r} holds {len(archs)} of "
            f"{len(b)} (the table's space: {b.space.name})")
    pipe = FeaturePipeline(space, encoding, proxies=[])
    model = make_predictor("xgb", seed)
    model.fit(pipe.inputs_for(model, archs), np.asarray(y))
    log.info("prior learned from %d architectures of %s (%s)", len(archs), bench, target)
    return model, pipe
