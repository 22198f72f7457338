"""CIFAR-10 read from a path: a ``cifar-10-batches-py`` folder or an ``.npz`` file."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import torch

from prednas.errors import DataNotFoundError
from prednas.tasks import register_task
from prednas.tasks.base import Task
from prednas.utils import prednas_home

__all__ = ["load_cifar10", "CIFAR10_MEAN", "CIFAR10_STD"]

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


@register_task("cifar10")
def load_cifar10(path: str | os.PathLike | None = None, val_fraction: float = 0.1,
                 seed: int = 0) -> Task:
    """CIFAR-10 from ``path`` (argument, else ``$PREDNAS_HOME/cifar10``), normalised per channel.

    ``path`` may be the official ``cifar-10-batches-py`` folder or an ``.npz`` holding
    ``x_train, y_train, x_test, y_test`` (uint8 images, NCHW or NHWC). A ``val_fraction`` of
    the training images is held out (seeded) for validation.
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

    def prep(x: np.ndarray) -> torch.Tensor:
        x = np.asarray(x)
        if x.ndim != 4:
            raise DataNotFoundError(f"CIFAR-10 images in {str(p)!r} must be 4-D, got shape {x.shape}")
        if x.shape[-1] == 3 and x.shape[1] != 3:
            x = x.transpose(0, 3, 1, 2)
        t = torch.from_numpy(np.ascontiguousarray(x)).float()
        if t.max() > 1.5:
            t = t / 255.0
        return ((t - mean) / std).contiguous()

    x_train, x_test = prep(xtr), prep(xte)
    y_train = torch.from_numpy(np.asarray(ytr)).long()
    y_test = torch.from_numpy(np.asarray(yte)).long()
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(y_train), generator=g)
    n_val = int(round(len(perm) * val_fraction))
    val, tr = perm[:n_val], perm[n_val:]
    return Task("cifar10", x_train[tr], y_train[tr], x_train[val], y_train[val], x_test, y_test,
                (3, 32, 32), 10, {"source": str(p)})


def _read_npz(p: Path):
    try:
        with np.load(p) as d:
            missing = [k for k in _NPZ_KEYS if k not in d]
            if missing:
                raise DataNotFoundError(
                    f"{str(p)!r} lacks key(s) {', '.join(missing)}; an .npz for cifar10 needs "
                    f"{', '.join(_NPZ_KEYS)} (has: {', '.join(d.files) or 'nothing'})")
            return tuple(d[k] for k in _NPZ_KEYS)
    except (OSError, ValueError, EOFError) as exc:
        raise DataNotFoundError(f"{str(p)!r} is not a readable .npz file ({exc})") from None


def _read_batches(p: Path):
    def load(name: str):
        f = p / name
        if not f.exists():
            raise DataNotFoundError(
                f"{str(f)!r} missing; a cifar-10-batches-py folder holds data_batch_1..5 and test_batch")
        try:
            with open(f, "rb") as fh:
                d = pickle.load(fh, encoding="latin1")
            return np.asarray(d["data"]).reshape(-1, 3, 32, 32), np.asarray(d["labels"])
        except (pickle.UnpicklingError, KeyError, EOFError, ValueError) as exc:
            raise DataNotFoundError(f"{str(f)!r} is not a CIFAR-10 batch file ({exc})") from None

    parts = [load(f"data_batch_{i}") for i in range(1, 6)]
    xte, yte = load("test_batch")
    return (np.concatenate([a for a, _ in parts]), np.concatenate([b for _, b in parts]), xte, yte)
