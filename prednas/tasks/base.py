"""The task container: train / validation / test tensors plus shape and class count."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["Task"]


@dataclass
class Task:
    """A supervised classification task held in memory as tensors.

    Attributes:
        name: registry name of the task.
        x_train, y_train, x_val, y_val, x_test, y_test: the splits; ``x`` is float32 of shape
            ``(n, *input_shape)``, ``y`` int64 labels.
        input_shape: shape of one example.
        num_classes: number of classes.
        info: free-form provenance (source path, seed, sizes).
        options: the loader options that rebuild this task with ``tasks.get(name, **options)``
            (set by :func:`prednas.tasks.get`); ``None`` for a task made by hand or derived
            (e.g. :meth:`subset`), which a resumed search must be given again.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    input_shape: tuple[int, ...]
    num_classes: int
    info: dict = field(default_factory=dict)
    options: dict | None = field(default=None, compare=False)

    def split(self, which: str) -> tuple[torch.Tensor, torch.Tensor]:
        from prednas.errors import UnknownNameError

        splits = {"train": (self.x_train, self.y_train), "val": (self.x_val, self.y_val),
                  "test": (self.x_test, self.y_test)}
        if which not in splits:
            raise UnknownNameError("split", which, splits)
        return splits[which]

    def check_splits(self, owner: str = "Search") -> None:
        """Raise :class:`prednas.InvalidParameterError` when a split is empty: training needs
        examples, and a search's objective (the validation accuracy) and its test figures are
        undefined without them."""
        from prednas.errors import InvalidParameterError

        sizes = {"train": len(self.y_train), "validation": len(self.y_val),
                 "test": len(self.y_test)}
        empty = [k for k, n in sizes.items() if n == 0]
        if empty:
            how = ", ".join(f"{k} {n}" for k, n in sizes.items())
            raise InvalidParameterError(
                f"{owner}: task {self.name!r} has an empty {' and '.join(empty)} split ({how} "
                "examples); every split needs at least one example (the objective is the "
                "validation accuracy)")

    def batch(self, n: int = 64, split: str = "train", seed: int = 0,
              balanced: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """A fixed random batch of ``n`` examples (for zero-cost proxies and supernet scoring)."""
        x, y = self.split(split)
        g = torch.Generator().manual_seed(seed)
        if balanced:
            per = max(1, n // self.num_classes)
            idx = torch.cat([torch.nonzero(y == c).flatten()[
                torch.randperm(int((y == c).sum()), generator=g)[:per]] for c in range(self.num_classes)])
            idx = idx[torch.randperm(len(idx), generator=g)][:n]
        else:
            idx = torch.randperm(len(y), generator=g)[:n]
        return x[idx], y[idx]

    def subset(self, fraction: float, seed: int = 0) -> Task:
        """The same task with a random ``fraction`` of its training split."""
        n = max(1, int(round(len(self.y_train) * fraction)))
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(self.y_train), generator=g)[:n]
        return Task(self.name, self.x_train[idx], self.y_train[idx], self.x_val, self.y_val,
                    self.x_test, self.y_test, self.input_shape, self.num_classes,
                    {**self.info, "train_fraction": fraction})

    def downsample(self, side: int) -> Task:
        """The same image task with its images average-pooled to at most ``side`` pixels a side
        (by a whole factor); ``self`` when they are no larger. A cheaper input for supernets."""
        from prednas.errors import InvalidParameterError, check_param

        check_param("Task.downsample", "side", side, kind=int, low=1)
        if len(self.input_shape) != 3:
            raise InvalidParameterError(
                f"Task.downsample resizes images (input shape (C, H, W)); task {self.name!r} has "
                f"input shape {tuple(self.input_shape)}")
        full = max(self.input_shape[1:])
        if side >= full:
            return self
        k = -(-full // side)  # the smallest whole factor that brings the side down to `side`
        pool = lambda x: torch.nn.functional.avg_pool2d(x, k, ceil_mode=True)  # noqa: E731
        x_train, x_val, x_test = pool(self.x_train), pool(self.x_val), pool(self.x_test)
        return Task(self.name, x_train, self.y_train, x_val, self.y_val, x_test, self.y_test,
                    tuple(x_train.shape[1:]), self.num_classes, {**self.info, "resolution": side})

    def __repr__(self) -> str:
        return (f"Task({self.name!r}, train={len(self.y_train)}, val={len(self.y_val)}, "
                f"test={len(self.y_test)}, input_shape={self.input_shape}, "
                f"num_classes={self.num_classes})")
