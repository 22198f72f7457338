"""A tiny synthetic task for tests: class-dependent sinusoids in noise (1-D) or blobs (2-D)."""

from __future__ import annotations

import torch

from prednas.tasks import register_task
from prednas.tasks.base import Task

__all__ = ["load_synthetic"]


@register_task("synthetic")
def load_synthetic(n: int = 512, num_classes: int = 4, length: int = 40, channels: int = 1,
                   image: bool = False, seed: int = 0, noise: float = 0.5) -> Task:
    """A small learnable task: each class is a sinusoid of its own frequency plus noise.

    With ``image=True`` examples are ``(channels, 8, 8)`` images (for the nb201 space).
    """
    g = torch.Generator().manual_seed(seed)
    total = int(n * 1.5)
    y = torch.randint(0, num_classes, (total,), generator=g)
    if image:
        side = 8
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
