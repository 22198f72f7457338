"""MNIST-1D (Greydanus, 2020), generated offline by the ``mnist1d`` package: the default task."""

from __future__ import annotations

import torch

from prednas.tasks import register_task
from prednas.tasks.base import Task
from prednas.utils import numpy_global_seed

__all__ = ["load_mnist1d"]

_CACHE: dict[tuple, Task] = {}


@register_task("mnist1d")
def load_mnist1d(num_samples: int = 10000, seed: int = 42, val_fraction: float = 0.125) -> Task:
    """Generate MNIST-1D deterministically (40-sample signals, 10 classes).

    Args:
        num_samples: total examples; 80% train (of which ``val_fraction`` is held out for
            validation) and 20% test, as in the package's own split.
        seed: generation seed (the package's default is 42).
        val_fraction: share of the training split kept for validation.
    """
    key = (num_samples, seed, val_fraction)
    if key in _CACHE:
        return _CACHE[key]
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = int(num_samples)
    args.seed = int(seed)
    with numpy_global_seed(seed):  # the package reseeds global np.random; put it back afterwards
        data = make_dataset(args)
    x = torch.tensor(data["x"], dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(data["y"], dtype=torch.long)
    n_val = int(round(len(y) * val_fraction))
    task = Task("mnist1d", x[n_val:], y[n_val:], x[:n_val], y[:n_val],
                torch.tensor(data["x_test"], dtype=torch.float32).unsqueeze(1),
                torch.tensor(data["y_test"], dtype=torch.long), (1, x.shape[-1]), 10,
                {"source": "mnist1d package (generated)", "num_samples": num_samples, "seed": seed})
    _CACHE[key] = task
    return task
