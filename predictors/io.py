"""Saving and loading fitted predictors together with their feature pipeline, with no pickle.

A predictor file (format 2) is::

    PREDNAS-PREDICTOR\\n
    <one line of JSON: format version, space, feature list, pipeline, predictor record, blobs>\\n
    <the blobs, concatenated in the order the JSON lists them>

The predictor record is ``{"class": <registered name>, "params": {...}, "state": {...}}``: the
class is looked up in the predictor registry (a file never names code to import), the parameters
and fitted attributes are JSON values, arrays are ``.npy`` blobs read with ``allow_pickle=False``,
and model objects are stored in their own libraries' formats (XGBoost UBJSON, safetensors for
torch modules, skops with an explicit trusted-types list for scikit-learn parts). Each predictor
class names the attribute holding its model object (``_model_attr``) and says how to store it
(``_dump_model`` / ``_load_model``; see :class:`predictors.base.BasePredictor`). Loading a file
therefore never runs code from it.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
from pathlib import Path

import numpy as np

from prednas.errors import (
    DataNotFoundError,
    IncompatibleArtifactError,
    InvalidParameterError,
    NotFittedError,
    PredNASError,
)
from prednas.utils import atomic_path

__all__ = ["save", "load", "FORMAT_VERSION", "check_compatible", "ArtifactWriter",
           "ArtifactReader"]

log = logging.getLogger(__name__)

MAGIC = b"PREDNAS-PREDICTOR\n"
#: bumped when the layout changes; older files are refused with a clear message
FORMAT_VERSION = 2
#: the last format that stored a pickle; such files are refused, never unpickled
_PICKLE_FORMATS = (1,)
#: dtype kinds an array blob may have: bool, signed and unsigned int, float
_ARRAY_KINDS = "biuf"
_FITTED_NAME = re.compile(r"[a-z][a-z0-9_]*_\Z")
_PARAM_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
_BLOB_NAME = re.compile(r"[0-9]+\.[a-z]+\Z")


class ArtifactWriter:
    """Turns a predictor into JSON values plus named binary blobs (used by :func:`save`)."""

    def __init__(self):
        self.blobs: list[tuple[str, bytes]] = []

    def add(self, data: bytes, ext: str) -> str:
        """Store ``data`` as a blob; returns its name (``"<n>.<ext>"``) for the JSON state."""
        name = f"{len(self.blobs)}.{ext}"
        self.blobs.append((name, bytes(data)))
        return name

    def array(self, value: np.ndarray, where: str) -> dict:
        if value.dtype.kind not in _ARRAY_KINDS or value.dtype.names is not None:
            raise InvalidParameterError(
                f"cannot save {where}: arrays of dtype {value.dtype} have no pickle-free format "
                "here (bool, int, uint and float arrays do)")
        buf = io.BytesIO()
        np.save(buf, value, allow_pickle=False)
        return {"$array": self.add(buf.getvalue(), "npy")}

    def encode(self, value, where: str, *, state: bool = True):
        """A JSON value for ``value``; nested predictors keep their fitted state when ``state``."""
        from predictors.base import BasePredictor

        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, np.generic) and value.dtype.kind in _ARRAY_KINDS:
            return value.item()
        if isinstance(value, np.ndarray):
            return self.array(value, where)
        if isinstance(value, BasePredictor):
            return {"$predictor": self.predictor(value, state=state)}
        if isinstance(value, list):
            return [self.encode(v, f"{where}[{i}]", state=state) for i, v in enumerate(value)]
        if isinstance(value, tuple):
            return {"$tuple": [self.encode(v, f"{where}[{i}]", state=state)
                               for i, v in enumerate(value)]}
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            return {"$dict": {k: self.encode(v, f"{where}[{k!r}]", state=state)
                              for k, v in value.items()}}
        raise InvalidParameterError(
            f"cannot save {where}: a {type(value).__module__}.{type(value).__qualname__} has no "
            "pickle-free format here; store it as numbers, strings, lists, dicts or arrays, or "
            "name it in _model_attr with _dump_model/_load_model on the predictor class")

    def predictor(self, est, *, state: bool = True) -> dict:
        """The record of one predictor: registered class name, parameters, fitted state."""
        from predictors.base import PREDICTORS

        cls = type(est)
        names = [n for n in PREDICTORS.names() if PREDICTORS.get(n) is cls]
        if not names:
            raise InvalidParameterError(
                f"cannot save a {cls.__module__}.{cls.__qualname__}: only registered predictors "
                f"can be saved (register it with @register_predictor); registered: "
                f"{', '.join(PREDICTORS.names())}")
        where = cls.__name__
        params = {k: self.encode(v, f"{where}.{k}", state=False)
                  for k, v in est.get_params(deep=False).items()}
        fitted = state and getattr(est, "is_fitted_", False)
        return {"class": names[0], "params": params,
                "state": est._artifact_state(self) if fitted else None}


class ArtifactReader:
    """Rebuilds predictors from the JSON values and blobs of a file (used by :func:`load`).

    Every value is checked against the few forms :class:`ArtifactWriter` makes; anything else
    raises :class:`IncompatibleArtifactError`. Nothing in the file is imported or executed.
    """

    def __init__(self, blobs: dict[str, bytes]):
        self._blobs = blobs

    def blob(self, name) -> bytes:
        if not isinstance(name, str) or name not in self._blobs:
            raise IncompatibleArtifactError(f"it refers to a missing blob {str(name)[:40]!r}")
        return self._blobs[name]

    def array(self, name, where: str) -> np.ndarray:
        try:
            arr = np.load(io.BytesIO(self.blob(name)), allow_pickle=False)
        except ValueError as exc:  # object arrays (a pickle inside) land here
            raise IncompatibleArtifactError(f"{where} is not a plain array ({exc})") from None
        if not isinstance(arr, np.ndarray) or arr.dtype.kind not in _ARRAY_KINDS:
            raise IncompatibleArtifactError(f"{where} is not a bool/int/float array")
        return arr

    def decode(self, value, where: str):
        """The Python value of a JSON value made by :meth:`ArtifactWriter.encode`."""
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, list):
            return [self.decode(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, dict) and len(value) == 1:
            ((tag, inner),) = value.items()
            if tag == "$array":
                return self.array(inner, where)
            if tag == "$tuple" and isinstance(inner, list):
                return tuple(self.decode(v, f"{where}[{i}]") for i, v in enumerate(inner))
            if tag == "$dict" and isinstance(inner, dict):
                return {k: self.decode(v, f"{where}[{k!r}]") for k, v in inner.items()}
            if tag == "$predictor":
                return self.predictor(inner, where)
        raise IncompatibleArtifactError(f"{where} holds an unreadable value {str(value)[:60]}")

    def predictor(self, record, where: str = "predictor"):
        """A predictor from its record (class from the registry, then parameters, then state)."""
        from predictors.base import PREDICTORS

        if not (isinstance(record, dict) and isinstance(record.get("class"), str)
                and isinstance(record.get("params"), dict)):
            raise IncompatibleArtifactError(f"{where} has no predictor record")
        cls = PREDICTORS.get(record["class"])
        params = record["params"]
        bad = [k for k in params if not _PARAM_NAME.match(k)]
        if bad:
            raise IncompatibleArtifactError(f"{where} has invalid parameter names {bad[:5]}")
        est = cls(**{k: self.decode(v, f"{where}.{k}") for k, v in params.items()})
        state = record.get("state")
        if state is not None:
            if not isinstance(state, dict) or not all(_FITTED_NAME.match(k) for k in state):
                raise IncompatibleArtifactError(
                    f"{where} has a fitted state that is not a dict of fitted attributes")
            est._load_artifact_state(state, self)
        return est


def save(predictor, path: str | os.PathLike, pipeline=None) -> Path:
    """Write a fitted ``predictor`` (and the ``pipeline`` that makes its features) to ``path``.

    The file holds no pickle (see the module docstring): loading it never runs code. It is
    written atomically.
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
    writer = ArtifactWriter()
    record = writer.predictor(predictor)
    payload = b"".join(data for _, data in writer.blobs)
    header = {"format_version": FORMAT_VERSION,
              "predictor_class": f"{type(predictor).__module__}.{type(predictor).__qualname__}",
              "predictor": record,
              "space": cfg["space"] if cfg else None,
              "feature_names": cfg["feature_names"] if cfg else None,
              "pipeline": cfg,
              "blobs": [{"name": name, "size": len(data)} for name, data in writer.blobs],
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
    """The JSON description and the checked blob bytes of a predictor file."""
    path = Path(path)
    where = repr(str(path))
    if not path.exists():
        raise DataNotFoundError(f"predictor file {where} does not exist")
    if path.is_dir():
        raise IncompatibleArtifactError(f"{where} is a directory, not a predictor file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise IncompatibleArtifactError(f"cannot read predictor file {where}: {exc}") from None
    if not data.startswith(MAGIC):
        raise IncompatibleArtifactError(f"{where} is not a prednas predictor file (wrong header)")
    line, sep, payload = data[len(MAGIC):].partition(b"\n")
    if not sep:
        raise IncompatibleArtifactError(f"{where} is truncated: its description ends early "
                                        f"({len(data)} bytes in all)")
    try:
        header = json.loads(line.decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IncompatibleArtifactError(
            f"{where} is corrupted: unreadable description ({exc})") from None
    if not isinstance(header, dict):
        raise IncompatibleArtifactError(f"{where} is corrupted: the description is not a dict")
    version = header.get("format_version")
    if version in _PICKLE_FORMATS:
        raise IncompatibleArtifactError(
            f"{where} uses predictor format {version}, an old unsafe format (a pickle, which "
            f"could run code) that is no longer loaded; re-create it with `prednas pretrain "
            f"--out FILE` or predictors.save (format {FORMAT_VERSION})")
    if version != FORMAT_VERSION:
        newer = isinstance(version, int) and version > FORMAT_VERSION
        raise IncompatibleArtifactError(
            f"{where} has format version {version!r}"
            f"{' (written by a newer prednas)' if newer else ''}; this prednas reads version "
            f"{FORMAT_VERSION}")
    expected = header.get("payload_bytes")
    if isinstance(expected, int) and len(payload) < expected:
        raise IncompatibleArtifactError(
            f"{where} is truncated: {len(payload)} of {expected} bytes of model data")
    if hashlib.sha256(payload).hexdigest() != header.get("sha256"):
        raise IncompatibleArtifactError(
            f"{where} is corrupted: payload checksum does not match ({len(payload)} bytes, "
            f"expected {expected})")
    return header, payload


def _split_blobs(header: dict, payload: bytes, where: str) -> dict[str, bytes]:
    blobs, offset = {}, 0
    listing = header.get("blobs")
    if not isinstance(listing, list):
        raise IncompatibleArtifactError(f"{where} is corrupted: no blob list")
    for b in listing:
        name, size = (b.get("name"), b.get("size")) if isinstance(b, dict) else (None, None)
        if (not isinstance(name, str) or not _BLOB_NAME.match(name) or name in blobs
                or not isinstance(size, int) or isinstance(size, bool) or size < 0):
            raise IncompatibleArtifactError(f"{where} is corrupted: bad blob entry {str(b)[:60]}")
        blobs[name] = payload[offset:offset + size]
        offset += size
    if offset != len(payload):
        raise IncompatibleArtifactError(
            f"{where} is corrupted: blobs cover {offset} of {len(payload)} payload bytes")
    return blobs


def load(path: str | os.PathLike, space=None, *, task=None, supernet=None, proxy_table=None,
         device: str = "auto"):
    """Read ``(predictor, pipeline)`` written by :func:`save` (``pipeline`` may be ``None``).

    Nothing in the file is executed: a file that is foreign, truncated, corrupted, of an old
    (pickle-based) format or made for another space raises :class:`IncompatibleArtifactError`.

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

    where = repr(str(path))
    header, payload = read_header(path)
    blobs = _split_blobs(header, payload, where)
    saved_space = header.get("space")
    if space is not None:
        want = space if isinstance(space, str) else getattr(space, "name", str(space))
        if saved_space is not None and saved_space != want:
            raise IncompatibleArtifactError(
                f"predictor {where} was trained for space {saved_space!r}, not {want!r}")
    cfg = header.get("pipeline")
    pipeline = None
    if cfg is not None:
        if not isinstance(cfg, dict):
            raise IncompatibleArtifactError(f"{where} is corrupted: the pipeline is not a dict")
        if cfg.get("supernet") and supernet is None:
            raise IncompatibleArtifactError(
                f"predictor {where} needs features missing here: ['supernet'] (pass "
                "supernet=prednas.warmup(...))")
        pipeline = FeaturePipeline.from_config(cfg, task=task, supernet=supernet,
                                               proxy_table=proxy_table, device=device)
        check_compatible(header.get("feature_names") or [], pipeline.feature_names, where)
    try:
        predictor = ArtifactReader(blobs).predictor(header.get("predictor"))
    except Exception as exc:  # noqa: BLE001 - the data is parsed, never run: a failure = bad file
        why = str(exc) if isinstance(exc, PredNASError) else f"{type(exc).__name__}: {exc}"
        why = (why.strip().splitlines() or [""])[0][:300]
        raise IncompatibleArtifactError(
            f"{where} is corrupted: cannot restore the predictor ({why})") from None
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
