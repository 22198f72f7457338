"""The abstract search space every space implements."""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from prednas.errors import InvalidArchitectureError, PredNASError, UnknownNameError

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


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def zero_like(x: torch.Tensor) -> torch.Tensor:
    return x.mul(0.0)
