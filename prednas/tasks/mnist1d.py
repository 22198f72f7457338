"""MNIST-1D (Greydanus, 2020), generated offline by the ``mnist1d`` package: the default task."""

from __future__ import annotations

import torch

from prednas.errors import InvalidParameterError
from prednas.params import Interval
from prednas.tasks import register_task
from prednas.tasks.base import Task
from prednas.utils import numpy_global_seed

__all__ = ["load_mnist1d", "EXTRA_SEED_OFFSET", "MAX_SAMPLES"]

_CACHE: dict[tuple, Task] = {}
#: extra evaluation examples (``val_size``/``test_size`` beyond the base split) come from a second
#: generation seeded ``seed + EXTRA_SEED_OFFSET``, so the base splits never change
EXTRA_SEED_OFFSET = 100_003
#: the evaluation splits of ``prednas search``'s default task, those of the ``blocks1d-mnist1d-v2``
#: table: at the table's median accuracy the test split's sampling error is about 0.2 points
SEARCH_SPLITS = {"val_size": 5000, "test_size": 20000}


#: the arrays of a generation that the task uses (and the disk cache keeps)
_KEYS = ("x", "y", "x_test", "y_test")


def _cache_path(num_samples: int, seed: int):
    """Where a generation is kept between processes: ``$PREDNAS_CACHE_DIR`` (default
    ``~/.cache/prednas``), named by the package's version and the generation's arguments."""
    import os
    from importlib.metadata import PackageNotFoundError, version
    from pathlib import Path

    try:
        ver = version("mnist1d")
    except PackageNotFoundError:
        ver = "unknown"
    root = os.environ.get("PREDNAS_CACHE_DIR") or Path.home() / ".cache" / "prednas"
    return Path(root) / "mnist1d" / f"mnist1d-{ver}-n{int(num_samples)}-s{int(seed)}.npz"


def _generate(num_samples: int, seed: int) -> dict:
    """One generation of the ``mnist1d`` package (tens of seconds for tens of thousands of
    examples), kept in a disk cache of plain arrays (read without pickle; a damaged or foreign
    file is generated again)."""
    import numpy as np

    path = _cache_path(num_samples, seed)
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in _KEYS}
        n = int(num_samples)
        if (len(data["x"]) + len(data["x_test"]) == n and len(data["y"]) == len(data["x"])
                and len(data["y_test"]) == len(data["x_test"])):
            return data
    except (OSError, ValueError, KeyError):
        pass
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = int(num_samples)
    args.seed = int(seed)
    with numpy_global_seed(seed):  # the package reseeds global np.random; put it back afterwards
        data = make_dataset(args)
    try:
        from prednas.utils import atomic_path

        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **{k: np.asarray(data[k]) for k in _KEYS})
    except OSError:  # a read-only home: generate each time
        pass
    return data


def _tensor(x) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float32).unsqueeze(1)


#: the largest generation accepted (each example is 40 floats; more is a typo, not a data set)
MAX_SAMPLES = 1_000_000


@register_task("mnist1d", constraints={
    "num_samples": [Interval(int, 10, MAX_SAMPLES)],
    "seed": [Interval(int, 0, 2**31 - 1)],  # numpy's global seed (plus EXTRA_SEED_OFFSET)
    "val_fraction": [Interval(float, 0, 1, "neither")],
    "val_size": [None, Interval(int, 1, MAX_SAMPLES)],
    "test_size": [None, Interval(int, 1, MAX_SAMPLES)]})
def load_mnist1d(num_samples: int = 10000, seed: int = 42, val_fraction: float = 0.125,
                 val_size: int | None = None, test_size: int | None = None) -> Task:
    """Generate MNIST-1D deterministically (40-sample signals, 10 classes).

    Args:
        num_samples: examples of the base generation; 80% train (of which ``val_fraction`` is
            held out for validation) and 20% test, as in the package's own split.
        seed: generation seed (the package's default is 42).
        val_fraction: share of the base training split kept for validation; in ``(0, 1)``.
        val_size: the validation split's size when larger (or smaller) than the held-out share:
            the held-out examples first, then examples of a second generation (seeded ``seed +
            EXTRA_SEED_OFFSET``). The training split never changes.
        test_size: the same for the test split (base test examples first).
    """
    # every option is checked against the constraints declared above before this runs
    key = (num_samples, seed, val_fraction, val_size, test_size)
    if key in _CACHE:
        return _CACHE[key]
    data = _generate(num_samples, seed)
    x, y = _tensor(data["x"]), torch.tensor(data["y"], dtype=torch.long)
    n_val = int(round(len(y) * val_fraction))
    if n_val < 1 or n_val >= len(y):
        raise InvalidParameterError(
            f"mnist1d with num_samples={num_samples} and val_fraction={val_fraction} leaves "
            f"{n_val} validation and {len(y) - n_val} training examples; both must be >= 1")
    x_val, y_val = x[:n_val], y[:n_val]
    x_test, y_test = _tensor(data["x_test"]), torch.tensor(data["y_test"], dtype=torch.long)
    extra_val = max(0, (val_size or 0) - n_val)
    extra_test = max(0, (test_size or 0) - len(y_test))
    if extra_val or extra_test:
        # the package keeps 80% of a generation in "x" and 20% in "x_test": use both
        more = _generate(extra_val + extra_test, seed + EXTRA_SEED_OFFSET)
        xe = torch.cat([_tensor(more["x"]), _tensor(more["x_test"])])
        ye = torch.cat([torch.tensor(more["y"]), torch.tensor(more["y_test"])]).long()
        x_val, y_val = torch.cat([x_val, xe[:extra_val]]), torch.cat([y_val, ye[:extra_val]])
        x_test = torch.cat([x_test, xe[extra_val:extra_val + extra_test]])
        y_test = torch.cat([y_test, ye[extra_val:extra_val + extra_test]])
    if val_size is not None:
        x_val, y_val = x_val[:val_size], y_val[:val_size]
    if test_size is not None:
        x_test, y_test = x_test[:test_size], y_test[:test_size]
    task = Task("mnist1d", x[n_val:], y[n_val:], x_val, y_val, x_test, y_test, (1, x.shape[-1]), 10,
                {"source": "mnist1d package (generated)", "num_samples": num_samples, "seed": seed,
                 "sizes": {"train": len(y) - n_val, "val": len(y_val), "test": len(y_test)}})
    _CACHE[key] = task
    return task
