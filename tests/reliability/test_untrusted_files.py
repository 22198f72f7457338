"""A file a user hands us never runs code: predictor files, ensemble.pt, CIFAR-10 batch files.

Each test plants a pickle whose ``__reduce__`` would create a marker directory (standing in for any
code an attacker could run) and checks that loading raised a clear ``PredNASError`` and that the
marker was never created.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import struct

import numpy as np
import pytest
import torch

import predictors
import spaces
from prednas import ensemble, tasks
from prednas.errors import DataNotFoundError, IncompatibleArtifactError, InvalidParameterError, PredNASError


class _Plant:
    """Unpickling this object runs ``os.mkdir(marker)``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def _fitted_xgb():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3))
    return predictors.XGBPredictor(n_estimators=5, random_state=0).fit(X, X[:, 0])


def _split(path):
    """(magic line, header dict, payload) of a predictor file."""
    data = path.read_bytes()
    magic, rest = data.split(b"\n", 1)
    line, payload = rest.split(b"\n", 1)
    return magic + b"\n", json.loads(line), payload


def _join(path, magic, header, payload):
    header = dict(header, sha256=hashlib.sha256(payload).hexdigest(), payload_bytes=len(payload))
    path.write_bytes(magic + json.dumps(header, sort_keys=True).encode() + b"\n" + payload)


def test_predictor_file_with_valid_header_and_pickle_payload_runs_nothing(tmp_path):
    marker = tmp_path / "marker"
    path = predictors.save(_fitted_xgb(), tmp_path / "p.pred")
    magic, header, _ = _split(path)
    # a header written by this very prednas, a checksum that matches: only the payload is evil
    _join(path, magic, header, pickle.dumps({"predictor": _Plant(marker)}))
    with pytest.raises(PredNASError):
        predictors.load(path)
    assert not marker.exists()


def test_old_pickle_predictor_file_is_refused_in_one_line(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "old.pkl"
    payload = pickle.dumps({"predictor": _Plant(marker)})
    _join(path, b"PREDNAS-PREDICTOR\n",
          {"format_version": 1, "space": "nb201", "feature_names": None, "pipeline": None},
          payload)
    with pytest.raises(IncompatibleArtifactError, match="old.*prednas pretrain") as info:
        predictors.load(path)
    assert "\n" not in str(info.value)
    assert not marker.exists()


def test_predictor_file_array_blob_holding_a_pickle_runs_nothing(tmp_path):
    """Format 2 stores arrays as .npy blobs; an object-dtype .npy (a pickle inside) is refused."""
    marker = tmp_path / "marker"
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3))
    path = predictors.save(predictors.RidgePredictor().fit(X, X[:, 0]), tmp_path / "r.pred")
    magic, header, payload = _split(path)
    blobs, offset, out = header["blobs"], 0, b""
    for blob in blobs:
        data = payload[offset:offset + blob["size"]]
        offset += blob["size"]
        if blob["name"].endswith(".npy"):
            buf = io.BytesIO()
            np.save(buf, np.array([_Plant(marker)], dtype=object), allow_pickle=True)
            data = buf.getvalue()
            blob["size"] = len(data)
        out += data
    _join(path, magic, header, out)
    with pytest.raises(IncompatibleArtifactError, match="corrupted"):
        predictors.load(path)
    assert not marker.exists()


def test_ensemble_artifact_with_planted_payload_runs_nothing(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "ensemble.pt"
    # torch's own container, our kind and format: only the metadata is evil
    torch.save({"kind": "prednas-ensemble", "format": ensemble.FORMAT_VERSION,
                "meta": {"space": _Plant(marker)}, "weights": [1.0], "states": []}, path)
    with pytest.raises(IncompatibleArtifactError):
        ensemble.load(path)
    assert not marker.exists()
    path.write_bytes(pickle.dumps(_Plant(marker)))  # a bare pickle instead of a torch zip
    with pytest.raises(IncompatibleArtifactError):
        ensemble.load(path)
    assert not marker.exists()


def _blocks1d_ensemble(meta_overrides=None):
    space = spaces.get("blocks1d")
    arch = space.parse("mlp:16")
    meta = {"space": "blocks1d", "archs": [str(arch)], "num_classes": 3, "input_shape": [1, 12]}
    meta.update(meta_overrides or {})
    return ensemble.Ensemble([space.build(arch, 3, (1, 12))], meta=meta)


def test_ensemble_metadata_must_be_plain_json_values(tmp_path):
    ens = _blocks1d_ensemble({"num_classes": np.int64(3)})
    with pytest.raises(InvalidParameterError, match="num_classes"):
        ens.save(tmp_path / "e.pt")
    ens = _blocks1d_ensemble({"task": object()})
    with pytest.raises(InvalidParameterError, match="task"):
        ens.save(tmp_path / "e.pt")


def test_ensemble_artifact_with_malformed_metadata_names_the_key(tmp_path):
    path = tmp_path / "e.pt"
    _blocks1d_ensemble().save(path)
    payload = torch.load(path, weights_only=True)
    del payload["meta"]["archs"]
    torch.save(payload, path)
    with pytest.raises(IncompatibleArtifactError, match="archs"):
        ensemble.load(path)


# -- CIFAR-10 batch files ------------------------------------------------------------------------
def _write_batches(folder, batch):
    folder.mkdir(exist_ok=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as f:
            f.write(batch)


def _official_style_batch(n=4) -> bytes:
    """A batch pickled as the official Python 2 files are: protocol 2, byte strings as str,
    ``numpy.core.multiarray._reconstruct``, ``numpy.ndarray`` and ``numpy.dtype``."""

    class Py2Pickler(pickle._Pickler):
        dispatch = pickle._Pickler.dispatch.copy()

        def save_bytes(self, obj):  # Python 2 str: BINSTRING, read back with encoding="latin1"
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
            self.memoize(obj)

        dispatch[bytes] = save_bytes

    rng = np.random.default_rng(0)
    d = {"batch_label": "training batch 1 of 5", "labels": [int(v) for v in rng.integers(0, 10, n)],
         "data": rng.integers(0, 255, (n, 3072), dtype=np.uint8),
         "filenames": [f"img_{i}.png" for i in range(n)]}
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(d)
    out = buf.getvalue()
    new = b"cnumpy._core.multiarray\n_reconstruct\n"
    if new in out:  # numpy 2 names the module numpy._core; the official files say numpy.core
        out = out.replace(new, b"cnumpy.core.multiarray\n_reconstruct\n")
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in out
    return out


def test_official_cifar10_batch_layout_still_loads(tmp_path):
    _write_batches(tmp_path / "cifar-10-batches-py", _official_style_batch())
    t = tasks.get("cifar10", path=tmp_path / "cifar-10-batches-py")
    assert len(t.y_train) + len(t.y_val) == 20 and t.x_test.shape == (4, 3, 32, 32)


def test_cifar10_batch_file_with_planted_payload_runs_nothing(tmp_path):
    marker = tmp_path / "marker"
    batch = pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1],
                          "batch_label": _Plant(marker)})
    _write_batches(tmp_path / "cifar-10-batches-py", batch)
    with pytest.raises(DataNotFoundError, match="mkdir") as info:
        tasks.get("cifar10", path=tmp_path / "cifar-10-batches-py")
    assert "\n" not in str(info.value)
    assert not marker.exists()


def test_cifar10_npz_with_pickled_object_array_runs_nothing(tmp_path):
    marker = tmp_path / "marker"
    x = np.zeros((2, 3, 32, 32), np.uint8)
    np.savez(tmp_path / "c.npz", x_train=x, y_train=np.array([_Plant(marker), 1], dtype=object),
             x_test=x, y_test=np.array([0, 1]))
    with pytest.raises(DataNotFoundError, match="y_train"):
        tasks.get("cifar10", path=tmp_path / "c.npz")
    assert not marker.exists()
