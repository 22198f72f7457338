"""Saving and loading fitted predictors together with their feature pipeline."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import pickle
from pathlib import Path

from prednas.errors import (DataNotFoundError, IncompatibleArtifactError, NotFittedError,
                            PredNASError)
from prednas.utils import atomic_path

__all__ = ["save", "load", "FORMAT_VERSION", "check_compatible"]

log = logging.getLogger(__name__)

MAGIC = b"PREDNAS-PREDICTOR\n"
#: bumped when the layout changes; older files are refused with a clear message
FORMAT_VERSION = 1


def save(predictor, path: str | os.PathLike, pipeline=None) -> Path:
    """Write a fitted ``predictor`` (and the ``pipeline`` that makes its features) to ``path``.

    The file is a header line, a JSON description (format version, space name, feature list,
    predictor class and parameters, SHA-256 of the payload) and a pickled payload. It is written
    atomically. Only load files you trust (the payload is a pickle).
    """
    if not getattr(predictor, "is_fitted_", False):
        raise NotFittedError(f"cannot save an unfitted {type(predictor).__name__}; call fit first")
    cfg = pipeline.config() if pipeline is not None else None
    n_in = getattr(predictor, "n_features_in_", None)
    if (pipeline is not None and not getattr(predictor, "needs_graphs", False)
            and n_in is not None and n_in != len(pipeline.feature_names)):
        raise IncompatibleArtifactError(
            f"predictor was fitted on {n_in} features but the pipeline makes "
            f"{len(pipeline.feature_names)}")
    payload = pickle.dumps({"predictor": predictor}, protocol=pickle.HIGHEST_PROTOCOL)
    header = {"format_version": FORMAT_VERSION,
              "predictor_class": f"{type(predictor).__module__}.{type(predictor).__qualname__}",
              "params": {k: repr(v) for k, v in predictor.get_params(deep=False).items()},
              "space": cfg["space"] if cfg else None,
              "feature_names": cfg["feature_names"] if cfg else None,
              "pipeline": cfg,
              "sha256": hashlib.sha256(payload).hexdigest(),
              "payload_bytes": len(payload)}
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(MAGIC)
        f.write(json.dumps(header, sort_keys=True).encode() + b"\n")
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
    log.info("saved %s to %s", type(predictor).__name__, path)
    return path


def read_header(path: str | os.PathLike) -> tuple[dict, bytes]:
    path = Path(path)
    if not path.exists():
        raise DataNotFoundError(f"predictor file {str(path)!r} does not exist")
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        raise PredNASError(f"{str(path)!r} is not a prednas predictor file (wrong header)")
    buf = io.BytesIO(data[len(MAGIC):])
    try:
        header = json.loads(buf.readline().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PredNASError(f"{str(path)!r} is corrupted: unreadable description ({exc})") from None
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        raise IncompatibleArtifactError(
            f"{str(path)!r} has format version {version!r}; this prednas reads version "
            f"{FORMAT_VERSION}")
    payload = buf.read()
    if hashlib.sha256(payload).hexdigest() != header.get("sha256"):
        raise PredNASError(f"{str(path)!r} is corrupted: payload checksum does not match "
                           f"({len(payload)} bytes, expected {header.get('payload_bytes')})")
    return header, payload


def load(path: str | os.PathLike, space=None, *, task=None, supernet=None, proxy_table=None,
         device: str = "auto"):
    """Read ``(predictor, pipeline)`` written by :func:`save` (``pipeline`` may be ``None``).

    Args:
        path: the file.
        space: when given (object or name), the space the caller will use; a predictor saved
            for another space raises :class:`IncompatibleArtifactError`.
        task: task for live proxy scores of the restored pipeline.
        supernet: supernet scorer, required when the predictor was trained with supernet
            features.
        proxy_table: overrides the saved table reference.
        device: device for live proxy scores.
    """
    from predictors.features import FeaturePipeline

    header, payload = read_header(path)
    saved_space = header.get("space")
    if space is not None:
        want = space if isinstance(space, str) else getattr(space, "name", str(space))
        if saved_space is not None and saved_space != want:
            raise IncompatibleArtifactError(
                f"predictor {str(path)!r} was trained for space {saved_space!r}, not {want!r}")
    cfg = header.get("pipeline")
    pipeline = None
    if cfg is not None:
        if cfg.get("supernet") and supernet is None:
            raise IncompatibleArtifactError(
                f"predictor {str(path)!r} needs features missing here: ['supernet'] (pass "
                "supernet=prednas.warmup(...))")
        pipeline = FeaturePipeline.from_config(cfg, task=task, supernet=supernet,
                                               proxy_table=proxy_table, device=device)
        check_compatible(header.get("feature_names") or [], pipeline.feature_names, str(path))
    try:
        predictor = pickle.loads(payload)["predictor"]
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        raise PredNASError(f"{str(path)!r} is corrupted: cannot restore the predictor "
                           f"({type(exc).__name__}: {exc})") from None
    return predictor, pipeline


def check_compatible(saved: list[str], current: list[str], what: str = "predictor") -> None:
    """Raise :class:`IncompatibleArtifactError` naming the features that differ."""
    if list(saved) == list(current):
        return
    missing = [f for f in saved if f not in current]
    extra = [f for f in current if f not in saved]
    parts = []
    if missing:
        parts.append(f"missing features {_short(missing)}")
    if extra:
        parts.append(f"unexpected features {_short(extra)}")
    if not parts:
        parts.append("features in a different order")
    raise IncompatibleArtifactError(f"{what}: {'; '.join(parts)} (saved with {len(saved)} "
                                    f"features, pipeline makes {len(current)})")


def _short(names: list[str], k: int = 8) -> str:
    return str(names[:k])[:-1] + (f", ... {len(names) - k} more]" if len(names) > k else "]")
