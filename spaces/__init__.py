"""Search spaces: architectures as graphs, samplers, mutators and network builders.

>>> import spaces
>>> space = spaces.get("nb201")
>>> text = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
>>> arch = space.parse(text)
"""

from __future__ import annotations

from prednas.registry import Registry
from spaces.base import Architecture, Space

_REGISTRY: Registry[type[Space]] = Registry("space")
_INSTANCES: dict[tuple, Space] = {}


def register_space(name: str):
    """Class decorator registering a :class:`Space` subclass under ``name``."""
    return _REGISTRY.register_class(name)


def get(name: str | Space, **kwargs) -> Space:
    """The space registered as ``name`` (instances without arguments are shared)."""
    if isinstance(name, Space):
        return name
    cls = _REGISTRY.get(name)
    if kwargs:
        return cls(**kwargs)
    key = (name,)
    if key not in _INSTANCES:
        _INSTANCES[key] = cls()
    return _INSTANCES[key]


def list_spaces() -> list[str]:
    """Names of every registered space."""
    return _REGISTRY.names()


from spaces import blocks1d, nb201  # noqa: E402,F401  (registers the spaces)
from spaces.blocks1d import Block, Blocks1DArch, Blocks1DSpace  # noqa: E402
from spaces.from_model import ModelArch, ModelSpace, from_model  # noqa: E402
from spaces.nb201 import NB201Arch, NB201Space  # noqa: E402

__all__ = ["Space", "Architecture", "get", "list_spaces", "register_space", "NB201Space",
           "NB201Arch", "Blocks1DSpace", "Blocks1DArch", "Block", "from_model", "ModelSpace",
           "ModelArch"]
