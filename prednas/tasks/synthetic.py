"""A tiny synthetic task for tests: class-dependent sinusoids in noise (1-D) or blobs (2-D)."""

from __future__ import annotations

import torch

from prednas.errors import InvalidParameterError
from prednas.params import Interval
from prednas.tasks import register_task
from prednas.tasks.base import Task

__all__ = ["load_synthetic", "MAX_VALUES"]

#: the most float values the task may hold (examples x channels x length): 400 MB
MAX_VALUES = 100_000_000
_SIDE = 8  # image side with image=True


def _check(n: int, num_classes: int, length: int, channels: int, image: bool, seed: int,
           noise: float) -> None:
    values = int(n * 1.5) * channels * (_SIDE * _SIDE if image else length)
    if values > MAX_VALUES:
        raise InvalidParameterError(
            f"task 'synthetic' with n={n}, channels={channels} and "
            f"{'image=True' if image else f'length={length}'} would hold {values:,} values; at "
            f"most {MAX_VALUES:,} (make n, channels or length smaller)")


@register_task("synthetic", check=_check, constraints={
    "n": [Interval(int, 4, 1_000_000)],  # 4: one validation and one test example at least
    "num_classes": [Interval(int, 2, 1000)],
    "length": [Interval(int, 1, 100_000)],
    "channels": [Interval(int, 1, 1024)],
    "image": ["boolean"],
    "seed": [Interval(int, 0, 2**63 - 1)],
    "noise": [Interval(float, 0, 1e6)]})
def load_synthetic(n: int = 512, num_classes: int = 4, length: int = 40, channels: int = 1,
                   image: bool = False, seed: int = 0, noise: float = 0.5) -> Task:
    """A small learnable task: each class is a sinusoid of its own frequency plus noise.

    With ``image=True`` examples are ``(channels, 8, 8)`` images (for the nb201 space).
    """
    g = torch.Generator().manual_seed(seed)
    total = int(n * 1.5)
    y = torch.randint(0, num_classes, (total,), generator=g)
    if image:
        side = _SIDE
        t = torch.linspace(0, 1, side)
        grid = t[None, :, None] * (1 + y[:, None, None]) + t[None, None, :]
        base = torch.sin(2 * torch.pi * grid).unsqueeze(1).expand(-1, channels, -1, -1)
        shape: tuple[int, ...] = (channels, side, side)
    else:
        t = torch.linspace(0, 1, length)
        phase = torch.rand(total, 1, generator=g) * 0.5
        base = torch.sin(2 * torch.pi * (1 + y[:, None]) * (t[None, :] + phase)).unsqueeze(1)
        base = base.expand(-1, channels, -1)
        shape = (channels, length)
    x = base + noise * torch.randn(base.shape, generator=g)
    x = x.float().contiguous()
    a, b = n, n + total // 6
    return Task("synthetic", x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:], shape, num_classes,
                {"source": "synthetic", "seed": seed})
