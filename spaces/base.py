"""The abstract search space every space implements."""

from __future__ import annotations

import abc
import functools
import inspect
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from prednas.errors import InvalidArchitectureError, InvalidParameterError, PredNASError, UnknownNameError

__all__ = ["Space", "Architecture"]

Architecture = Any  # each space defines an immutable, hashable architecture type


class Space(abc.ABC):
    """A family of architectures that can be sampled, mutated, encoded and built.

    Architectures are immutable and hashable; ``str(arch)`` is canonical text that
    :meth:`parse` turns back into an equal architecture.
    """

    #: registry name of the space
    name: str = ""
    #: vector encodings :meth:`to_vector` accepts
    encodings: tuple[str, ...] = ("onehot", "path")
    #: ops that label graph nodes (one-hot position = index in this tuple)
    node_types: tuple[str, ...] = ()
    #: the input shape networks are built for by default, e.g. ``(3, 32, 32)``; every
    #: ``input_shape`` given to :meth:`build` must have as many dimensions (``()``: unchecked)
    default_input_shape: tuple[int, ...] = ()
    #: zero-cost proxies a search computes on its filter's survivors by default (fast ones; a
    #: space where they were measured not to help its predictor lists none)
    live_proxies: tuple[str, ...] = ("params", "synflow", "snip")

    def __init_subclass__(cls, **kwargs):
        """Every ``build``/``build_supernet`` a space defines checks ``input_shape`` first, so a
        space/task mismatch is one clear error wherever a network is built (training, proxies,
        search, ensembles), not a torch traceback from the first forward pass."""
        super().__init_subclass__(**kwargs)
        for method in ("build", "build_supernet"):
            if method in cls.__dict__:
                setattr(cls, method, _checks_input_shape(cls.__dict__[method]))

    # -- required -----------------------------------------------------------------------------
    @abc.abstractmethod
    def parse(self, text: str) -> Architecture:
        """Turn canonical text (``str(arch)``) into an architecture; raises InvalidArchitectureError."""

    @abc.abstractmethod
    def sample(self, rng: np.random.Generator) -> Architecture:
        """Draw one architecture uniformly (or from the space's natural prior)."""

    @abc.abstractmethod
    def mutate(self, arch: Architecture, rng: np.random.Generator) -> Architecture:
        """One random edit of ``arch``; never returns ``arch`` itself."""

    @abc.abstractmethod
    def neighbours(self, arch: Architecture) -> list[Architecture]:
        """All architectures one edit away."""

    @abc.abstractmethod
    def to_graph(self, arch: Architecture):
        """A ``torch_geometric.data.Data`` with one-hot node types (+ numeric attributes)."""

    @abc.abstractmethod
    def to_vector(self, arch: Architecture, encoding: str = "onehot") -> np.ndarray:
        """A flat float32 encoding; ``encoding`` is one of :attr:`encodings`."""

    @abc.abstractmethod
    def build(self, arch: Architecture, num_classes: int, input_shape: Sequence[int],
              **kwargs) -> nn.Module:
        """A freshly initialised ``nn.Module`` mapping ``(B, *input_shape)`` to logits."""

    @abc.abstractmethod
    def canonical(self, arch: Architecture) -> Architecture:
        """A representative of the arch's functional-equivalence class (for de-duplication)."""

    # -- optional -----------------------------------------------------------------------------
    def cost_key(self, arch: Architecture) -> Any:
        """What a network's parameter and FLOP counts depend on (architectures with equal keys
        cost the same), so counts can be cached; the architecture itself by default."""
        return str(arch)

    def to_optuna(self, arch: Architecture) -> tuple[dict[str, Any], dict[str, Any]]:
        """The architecture's choices as Optuna parameters: ``(params, distributions)``, the
        distributions being ``optuna.distributions`` objects keyed like the params (a run's
        Optuna study, :func:`prednas.study`, shows them). ``({}, {})`` for a space that names no
        choices; the architecture's text is in the trial's user attributes either way."""
        return {}, {}

    def config(self) -> dict[str, Any]:
        """The constructor settings that make this instance differ from ``spaces.get(name)``;
        part of the space's identity and stored in every saved artifact. ``{}`` by default."""
        return {}

    def build_supernet(self, num_classes: int, input_shape: Sequence[int], **kwargs) -> nn.Module:
        raise PredNASError(f"space {self.name!r} has no weight-sharing supernet")

    def enumerate(self) -> Iterator[Architecture]:
        raise PredNASError(f"space {self.name!r} is not finite and cannot be enumerated")

    def __len__(self) -> int:
        raise PredNASError(f"space {self.name!r} is not finite")

    @property
    def is_finite(self) -> bool:
        return False

    def default_arch(self) -> Architecture:
        """A sensible hand-designed starting architecture."""
        return self.sample(np.random.default_rng(0))

    # -- shared helpers -----------------------------------------------------------------------
    def coerce(self, arch: Architecture | str) -> Architecture:
        """Accept an architecture object of this space or its string."""
        if isinstance(arch, str):
            return self.parse(arch)
        if not self.is_arch(arch):
            raise InvalidArchitectureError(
                f"{arch!r} is not an architecture of space {self.name!r}")
        return arch

    def is_arch(self, obj: object) -> bool:
        return False

    def check_input_shape(self, input_shape: Sequence[int], task: str | None = None) -> None:
        """Raise :class:`InvalidParameterError` unless networks of this space can take inputs of
        ``input_shape`` (one example; ``task`` names where it comes from, for the message)."""
        shape: Any
        try:
            shape = tuple(int(d) for d in input_shape)
            valid = all(d >= 1 and d == d_in for d, d_in in zip(shape, input_shape))
        except (TypeError, ValueError):
            shape, valid = input_shape, False
        expected = tuple(self.default_input_shape)
        if valid and (not expected or len(shape) == len(expected)):
            return
        source = f"the inputs of task {task!r}, of" if task else "inputs of"
        if not valid:
            raise InvalidParameterError(
                f"space {self.name!r} cannot take {source} shape {shape!r}; an input shape is "
                f"a tuple of positive ints such as {expected or (3, 32, 32)}")
        import spaces

        fits = [n for n in spaces.list_spaces()
                if len(spaces.get(n).default_input_shape) == len(shape)]
        hint = (f"; spaces for inputs of shape {_dim_names(len(shape))}: {', '.join(fits)}"
                if fits else "")
        raise InvalidParameterError(
            f"space {self.name!r} cannot take {source} shape {shape}: its networks expect "
            f"{_dim_names(len(expected))} such as {expected}{hint}")

    def check_encoding(self, encoding: str) -> None:
        if encoding not in self.encodings:
            raise UnknownNameError("encoding", encoding, self.encodings)

    def to_vectors(self, archs: Sequence[Architecture], encoding: str = "onehot") -> np.ndarray:
        """Stack :meth:`to_vector` over many architectures into a ``(n, d)`` array."""
        if not archs:
            return np.zeros((0, len(self.to_vector(self.default_arch(), encoding))), np.float32)
        return np.stack([self.to_vector(self.coerce(a), encoding) for a in archs])

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _dim_names(ndim: int) -> str:
    return {1: "(length,)", 2: "(channels, length)",
            3: "(channels, height, width)"}.get(ndim, f"{ndim} dimensions")


def _checks_input_shape(method):
    """Wrap a space's ``build``-like ``method`` to call ``check_input_shape`` first."""
    sig = inspect.signature(method)
    if "input_shape" not in sig.parameters:
        return method

    @functools.wraps(method)
    def checked(self, *args, **kwargs):
        try:
            bound = sig.bind(self, *args, **kwargs)
        except TypeError:  # let the method itself report bad arguments
            return method(self, *args, **kwargs)
        bound.apply_defaults()
        if bound.arguments["input_shape"] is not None:  # None: the space's own shape
            self.check_input_shape(bound.arguments["input_shape"])
        return method(self, *args, **kwargs)

    return checked


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def zero_like(x: torch.Tensor) -> torch.Tensor:
    return x.mul(0.0)
