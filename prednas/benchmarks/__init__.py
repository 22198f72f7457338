"""Tabular NAS benchmarks shipped with prednas.

>>> from prednas import benchmarks
>>> bench = benchmarks.load("nb201")
>>> arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
>>> bench.query(arch, "cifar10_test_200ep")
"""

from __future__ import annotations

import functools

from prednas.benchmarks.base import Benchmark
from prednas.benchmarks.blocks1d_mnist1d import load_blocks1d_mnist1d
from prednas.benchmarks.nb201 import load_nb201
from prednas.registry import Registry

_REGISTRY: Registry = Registry("benchmark")
_REGISTRY.add("nb201", load_nb201)
_REGISTRY.add("blocks1d-mnist1d", load_blocks1d_mnist1d)
_REGISTRY.add("blocks1d-mnist1d-v2", functools.partial(load_blocks1d_mnist1d, version=2))


def load(name: str, **kwargs) -> Benchmark:
    """Load the benchmark table ``name`` (``"nb201"``, ``"blocks1d-mnist1d"``)."""
    return _REGISTRY.get(name)(**kwargs)


def list_benchmarks() -> list[str]:
    return _REGISTRY.names()


__all__ = ["Benchmark", "load", "list_benchmarks"]
