"""``prednas.rank``: score candidate architectures with a fitted predictor, best first."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np

from prednas.errors import IncompatibleArtifactError, InvalidParameterError

__all__ = ["rank"]

log = logging.getLogger(__name__)


def _get_space(space):
    import spaces

    return spaces.get(space) if isinstance(space, str) else space


def rank(archs: Sequence, space, predictor, proxies=None, task=None, *, supernet=None,
         pipeline=None, features=None, batch_size: int = 4096,
         device: str = "auto") -> list[tuple[object, float]]:
    """Rank architectures by a predictor's score, best first.

    Args:
        archs: architecture objects or strings of ``space``.
        space: a ``spaces.Space`` or its name.
        predictor: a fitted predictor, or the path of a file written by ``predictors.save``
            (its feature pipeline is restored from the file).
        proxies: where proxy features come from: a ``proxies.ProxyTable``, a CSV path or
            ``"shipped"``; or, for a predictor object without a ``pipeline``, the proxy names
            it was trained on.
        task: task whose data live proxy scores use when no table holds them.
        supernet: supernet scorer for predictors trained with supernet features.
        pipeline: the ``FeaturePipeline`` a predictor object was trained with (default: the
            space's one-hot encoding, plus ``proxies`` when they are names).
        features: precomputed predictor inputs for ``archs`` (flat array or graphs), skipping
            feature extraction.
        batch_size: architectures featurised and predicted per batch.
        device: device for live proxy scores.

    Returns:
        ``[(arch, score), ...]`` sorted by score, highest first (ties keep input order);
        architectures whose score is NaN come last.
    """
    import predictors

    space = _get_space(space)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidParameterError(
            f"The 'batch_size' parameter of rank must be an int in [1, inf). Got {batch_size!r} "
            "instead.")
    archs = [space.coerce(a) for a in archs]
    table, names = None, None
    if proxies is not None:
        if isinstance(proxies, (str, os.PathLike)) or hasattr(proxies, "lookup"):
            table = proxies
        else:
            names = [str(p) for p in proxies]
    if isinstance(predictor, (str, os.PathLike)):
        predictor, saved_pipe = predictors.load(predictor, space=space, task=task,
                                                supernet=supernet, proxy_table=table,
                                                device=device)
        pipeline = pipeline or saved_pipe
    if not hasattr(predictor, "predict"):
        raise InvalidParameterError(
            f"predictor must be a fitted predictor or a saved predictor file, got "
            f"{type(predictor).__name__}")
    if not archs:
        return []
    if features is None and pipeline is None:
        pipeline = predictors.FeaturePipeline(space, "onehot", proxies=names or (),
                                              proxy_table=table, task=task, supernet=supernet,
                                              device=device)
    if pipeline is not None and pipeline.space.name != space.name:
        raise IncompatibleArtifactError(
            f"the feature pipeline is for space {pipeline.space.name!r}, not {space.name!r}")
    n_in = getattr(predictor, "n_features_in_", None)
    if (features is None and not getattr(predictor, "needs_graphs", False) and n_in is not None
            and n_in != len(pipeline.feature_names)):
        raise IncompatibleArtifactError(
            f"predictor expects {n_in} features but the pipeline makes "
            f"{len(pipeline.feature_names)} ({pipeline!r}); pass the pipeline it was trained with")
    if features is not None and len(features) != len(archs):
        raise InvalidParameterError(
            f"features has {len(features)} rows for {len(archs)} architectures")
    scores = np.empty(len(archs))
    for start in range(0, len(archs), batch_size):
        chunk = slice(start, start + batch_size)
        if features is not None:
            X = features[chunk]
        else:
            X = pipeline.inputs_for(predictor, archs[chunk])
        scores[chunk] = np.asarray(predictor.predict(X), dtype=np.float64).reshape(-1)
    bad = ~np.isfinite(scores)
    if bad.any():
        log.warning("rank: %d of %d architectures got a non-finite score; ranked last",
                    int(bad.sum()), len(archs))
    key = np.where(bad, -np.inf, scores)
    order = np.argsort(-key, kind="stable")
    return [(archs[i], float(scores[i])) for i in order]
