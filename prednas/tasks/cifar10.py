"""CIFAR-10 read from a path: a ``cifar-10-batches-py`` folder or an ``.npz`` file.

Neither is trusted: the official python batches are read by an unpickler that accepts only what
that format contains, ``.npz`` files are read with ``allow_pickle=False``, and every array is
checked (numeric images of shape 3x32x32, one integer label in [0, 10) per image) before use.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import torch

from prednas.errors import DataNotFoundError, InvalidParameterError
from prednas.params import PATH, Interval
from prednas.tasks import register_task
from prednas.tasks.base import Task
from prednas.utils import prednas_home

__all__ = ["load_cifar10", "CIFAR10_MEAN", "CIFAR10_STD"]

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
NUM_CLASSES = 10
_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
_BATCH_KEYS = ("data", "labels")
_BATCH_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)
_CHW, _HWC = (3, 32, 32), (32, 32, 3)


@register_task("cifar10", constraints={"path": [None, PATH],
                                      "val_fraction": [Interval(float, 0, 1, "neither")],
                                      "seed": [Interval(int, 0, 2**63 - 1)]})
def load_cifar10(path: str | os.PathLike | None = None, val_fraction: float = 0.1,
                 seed: int = 0) -> Task:
    """CIFAR-10 from ``path`` (argument, else ``$PREDNAS_HOME/cifar10``), normalised per channel.

    ``path`` may be the official ``cifar-10-batches-py`` folder or an ``.npz`` holding
    ``x_train, y_train, x_test, y_test`` (uint8 images, NCHW or NHWC). A ``val_fraction`` of
    the training images is held out (seeded) for validation; both parts must keep at least one
    image (:class:`prednas.InvalidParameterError` otherwise). Malformed data raises
    :class:`prednas.DataNotFoundError` naming the file, the key and the bad value; nothing in the
    files is executed.
    """
    p = Path(path) if path is not None else prednas_home() / "cifar10"
    if not p.exists():
        raise DataNotFoundError(
            f"CIFAR-10 not found at {str(p)!r}; pass path= a 'cifar-10-batches-py' folder or an "
            f".npz with keys {', '.join(_NPZ_KEYS)} (nothing is downloaded)")
    if p.is_dir():
        xtr, ytr, xte, yte = _read_batches(p)
    else:
        xtr, ytr, xte, yte = _read_npz(p)
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)

    def prep(x: np.ndarray) -> torch.Tensor:  # checked by _check_images: (n, 3, 32, 32) or NHWC
        if x.shape[1:] == _HWC:
            x = x.transpose(0, 3, 1, 2)
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        if t.max() > 1.5:
            t = t / 255.0
        return ((t - mean) / std).contiguous()

    x_train, x_test = prep(xtr), prep(xte)
    y_train = torch.from_numpy(ytr).long()
    y_test = torch.from_numpy(yte).long()
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(y_train), generator=g)
    n_val = int(round(len(perm) * val_fraction))
    if n_val < 1 or n_val >= len(perm):
        raise InvalidParameterError(
            f"cifar10 at {str(p)!r} has {len(perm)} training images; val_fraction={val_fraction} "
            f"leaves {n_val} for validation and {len(perm) - n_val} for training; both must be "
            ">= 1")
    val, tr = perm[:n_val], perm[n_val:]
    return Task("cifar10", x_train[tr], y_train[tr], x_train[val], y_train[val], x_test, y_test,
                (3, 32, 32), 10, {"source": str(p)})


def _read_npz(p: Path):
    where = repr(str(p))
    try:
        archive = np.load(p, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - zip, zlib and format errors alike: not an .npz
        raise DataNotFoundError(
            f"{where} is not a readable .npz file ({_first_line(exc)})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataNotFoundError(f"{where} is not an .npz archive (a single array); an .npz for "
                                f"cifar10 needs keys {', '.join(_NPZ_KEYS)}")
    with archive as d:
        missing = [k for k in _NPZ_KEYS if k not in d.files]
        if missing:
            raise DataNotFoundError(
                f"{where} lacks key(s) {', '.join(missing)}; an .npz for cifar10 needs "
                f"{', '.join(_NPZ_KEYS)} (has: {', '.join(d.files) or 'nothing'})")
        arrays = {}
        for k in _NPZ_KEYS:
            try:
                arrays[k] = d[k]
            except Exception as exc:  # noqa: BLE001 - truncated/corrupt member or object array
                raise DataNotFoundError(
                    f"{k} in {where} cannot be read ({_first_line(exc)})") from None
    xtr = _check_images(arrays["x_train"], "x_train", where)
    xte = _check_images(arrays["x_test"], "x_test", where)
    ytr = _check_labels(arrays["y_train"], "y_train", where, len(xtr), "x_train")
    yte = _check_labels(arrays["y_test"], "y_test", where, len(xte), "x_test")
    return xtr, ytr, xte, yte


def _read_batches(p: Path):
    parts = [_read_batch(p / name) for name in _BATCH_FILES]
    xtr = np.concatenate([x for x, _ in parts[:-1]])
    ytr = np.concatenate([y for _, y in parts[:-1]])
    return xtr, ytr, parts[-1][0], parts[-1][1]


def _reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # pragma: no cover - numpy < 2
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class _RefusedGlobal(pickle.UnpicklingError):
    def __init__(self, module: str, name: str):
        super().__init__(f"{module}.{name}")
        self.qualname = f"{module}.{name}"


class _BatchUnpickler(pickle.Unpickler):
    """Reads what the official ``cifar-10-batches-py`` files contain, and nothing else.

    Those files (Python 2 ``cPickle``, protocol 2) hold a dict of strings, lists of ints and
    strings, and one uint8 array, which numpy pickles through exactly three globals:
    ``numpy.core.multiarray._reconstruct``, ``numpy.ndarray`` and ``numpy.dtype`` (numpy 2
    names the first one's module ``numpy._core.multiarray``). Any other global is refused
    before it is looked up, so no code named by the file is ever imported or called.
    """

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"),
                ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise _RefusedGlobal(module, name)
        if name == "_reconstruct":
            return _reconstruct()
        return np.ndarray if name == "ndarray" else np.dtype

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent ids are not part of the CIFAR-10 format")


def _read_batch(f: Path) -> tuple[np.ndarray, np.ndarray]:
    where = repr(str(f))
    expected = f"a cifar-10-batches-py folder holds the files {', '.join(_BATCH_FILES)}"
    if not f.exists():
        raise DataNotFoundError(f"{where} missing; {expected}")
    if f.is_dir():
        raise DataNotFoundError(f"{where} is a directory, not a batch file; {expected}")
    try:
        with open(f, "rb") as fh:
            d = _BatchUnpickler(fh, encoding="latin1").load()
    except _RefusedGlobal as exc:
        allowed = "numpy.core.multiarray._reconstruct, numpy.ndarray, numpy.dtype"
        raise DataNotFoundError(
            f"{where} is not an official CIFAR-10 batch file: it refers to {exc.qualname}, "
            f"which that format never contains (allowed: {allowed}); nothing was run") from None
    except Exception as exc:  # noqa: BLE001 - restricted unpickling: any failure = bad file
        raise DataNotFoundError(
            f"{where} is not a CIFAR-10 batch file ({_first_line(exc)})") from None
    if not isinstance(d, dict):
        raise DataNotFoundError(f"{where} holds a {type(d).__name__}, not a CIFAR-10 batch (a "
                                f"dict with keys {', '.join(_BATCH_KEYS)})")
    d = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in d.items()}
    missing = [k for k in _BATCH_KEYS if k not in d]
    if missing:
        has = ", ".join(sorted(str(k) for k in d)) or "nothing"
        raise DataNotFoundError(f"{where} lacks key(s) {', '.join(missing)}; a CIFAR-10 batch "
                                f"holds {', '.join(_BATCH_KEYS)} (has: {has})")
    data = np.asarray(d["data"])
    if data.ndim == 2 and data.shape[1] == int(np.prod(_CHW)):
        data = data.reshape(-1, *_CHW)
    elif data.ndim != 4:
        raise DataNotFoundError(f"data in {where} has shape {data.shape}; a CIFAR-10 batch holds "
                                f"rows of {int(np.prod(_CHW))} pixel values, shape (n, 3072)")
    x = _check_images(data, "data", where)
    return x, _check_labels(d["labels"], "labels", where, len(x), "data")


def _check_images(x, key: str, where: str) -> np.ndarray:
    """Numeric, non-empty, ``(n, 3, 32, 32)`` or ``(n, 32, 32, 3)``, finite."""
    x = np.asarray(x)
    if x.dtype.kind not in "uif":
        raise DataNotFoundError(f"{key} in {where} holds {x.dtype} values; CIFAR-10 images must "
                                "be numbers (uint8 0..255 or floats)")
    if x.size == 0:
        raise DataNotFoundError(f"{key} in {where} is empty (shape {x.shape}); it needs at least "
                                "one image")
    if x.ndim != 4 or x.shape[1:] not in (_CHW, _HWC):
        raise DataNotFoundError(f"{key} in {where} has shape {x.shape}; CIFAR-10 images must be "
                                f"(n, 3, 32, 32) or (n, 32, 32, 3)")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        bad = int(np.size(x) - np.isfinite(x).sum())
        raise DataNotFoundError(f"{key} in {where} has {bad} NaN or infinite pixel values")
    return x


def _check_labels(y, key: str, where: str, n_images: int, image_key: str) -> np.ndarray:
    """One integer label in ``[0, 10)`` per image."""
    y = np.asarray(y)
    valid = f"labels must be integers in [0, {NUM_CLASSES})"
    if y.dtype.kind not in "iu":
        raise DataNotFoundError(f"{key} in {where} holds {y.dtype} values; {valid}")
    if y.ndim != 1:
        raise DataNotFoundError(f"{key} in {where} has shape {y.shape}; {valid}, one per image")
    if len(y) != n_images:
        raise DataNotFoundError(f"{image_key} in {where} has {n_images} images but {key} has "
                                f"{len(y)} labels; there must be one label per image")
    bad = (y < 0) | (y >= NUM_CLASSES)
    if bad.any():
        raise DataNotFoundError(
            f"{key} in {where} has {int(bad.sum())} labels outside [0, {NUM_CLASSES}) "
            f"(from {int(y[bad].min())} to {int(y[bad].max())}); {valid}")
    return y.astype(np.int64)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]
