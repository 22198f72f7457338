"""Search spaces: architectures as graphs, samplers, mutators and network builders.

>>> import spaces
>>> space = spaces.get("nb201")
>>> text = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
>>> arch = space.parse(text)
"""

from __future__ import annotations

from prednas.errors import PredNASError
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


def restore(name: str, config: dict | None = None, given: Space | str | None = None, *,
            error: type = PredNASError, where: str = "", how: str = "space=...") -> Space:
    """The space an artifact or run recorded as ``name`` and ``config``.

    With ``given`` (a space made from a model cannot be rebuilt by name), it is checked to be that
    space and returned; otherwise the space is rebuilt with ``get(name, **config)``. Raises
    ``error`` with ``where`` in the message (and ``how`` to pass the space again) when the given
    space differs, the recorded one is not registered, or its configuration is not one the
    space accepts (checked by the space's constructor before anything is built).
    """
    prefix = f"{where}: " if where else ""
    if config is not None and not isinstance(config, dict):
        raise error(f"{prefix}the recorded configuration of space {name!r} is a "
                    f"{type(config).__name__}, not a dict")
    config = dict(config or {})
    if given is not None:
        given = get(given)
        if given.name != name or given.config() != config:
            raise error(f"{prefix}the space given, {given.name!r}, is not the recorded "
                        f"{name!r} {config or ''}".rstrip())
        return given
    if name not in _REGISTRY:
        raise error(f"{prefix}the recorded space {name!r} is not registered by name (a space "
                    f"made by spaces.from_model, say); pass it again: {how}")
    try:
        return get(name, **config)
    except TypeError as exc:  # an option the space does not take
        raise error(f"{prefix}the recorded configuration of space {name!r} is not valid: "
                    f"{exc}") from None
    except PredNASError as exc:
        if isinstance(exc, error):
            raise
        raise error(f"{prefix}the recorded configuration of space {name!r} is not valid: "
                    f"{exc}") from None


def list_spaces() -> list[str]:
    """Names of every registered space."""
    return _REGISTRY.names()


from spaces import blocks1d, nb201  # noqa: E402,F401  (registers the spaces)
from spaces.blocks1d import Block, Blocks1DArch, Blocks1DSpace  # noqa: E402
from spaces.from_model import ModelArch, ModelSpace, from_model  # noqa: E402
from spaces.nb201 import NB201Arch, NB201Space  # noqa: E402

__all__ = ["restore", "Space", "Architecture", "get", "list_spaces", "register_space", "NB201Space",
           "NB201Arch", "Blocks1DSpace", "Blocks1DArch", "Block", "from_model", "ModelSpace",
           "ModelArch"]
