"""A space's architectures as a sequence of categorical decisions (for fair sampling and ST-NAS).

A :class:`Choices` object lists the decisions of a space (``nb201``: the op of each of the six cell
edges; ``blocks1d``: the depth, then per block slot its op, its width and, when the space has skips,
its skip source) and turns an architecture into one choice index per decision and back. A decision
is *active* for an architecture when it matters for it (a ``blocks1d`` slot beyond the depth is
not); a factorised distribution over the decisions is a distribution over architectures whose
probability is the product over the active decisions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from prednas.errors import InvalidParameterError

__all__ = ["Decision", "Choices", "choices_for", "FairPicker", "SAMPLINGS"]

#: path sampling rules of a supernet warm-up: uniform (SPOS) or fair (:class:`FairPicker`)
SAMPLINGS = ("uniform", "fair")


@dataclass(frozen=True)
class Decision:
    """One categorical decision: a name and the labels of its choices (JSON-able strings)."""

    name: str
    labels: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)


class Choices:
    """The decisions of a space and the maps between architectures and choice indices."""

    space = None
    decisions: tuple[Decision, ...] = ()

    def encode(self, arch) -> list[int | None]:
        """One index per decision (``None`` where the decision is inactive for ``arch``)."""
        raise NotImplementedError

    def build(self, pick: Callable[[int], int]) -> tuple[object, list[int | None]]:
        """The architecture made by calling ``pick(k)`` for each active decision ``k`` in order
        (later decisions may depend on earlier ones), and its indices."""
        raise NotImplementedError

    def decode(self, indices: Sequence[int | None]):
        return self.build(lambda k: int(indices[k]))[0]

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.decisions]


class _NB201Choices(Choices):
    def __init__(self, space):
        from spaces.nb201 import EDGES, OPS

        self.space = space
        self.ops = OPS
        self.decisions = tuple(Decision(f"edge {j}<-{i}", OPS) for j, i in EDGES)

    def encode(self, arch) -> list[int | None]:
        return [self.ops.index(op) for op in self.space.coerce(arch).ops]

    def build(self, pick):
        from spaces.nb201 import NB201Arch

        idx = [int(pick(k)) for k in range(len(self.decisions))]
        return NB201Arch(tuple(self.ops[i] for i in idx)), idx


class _Blocks1DChoices(Choices):
    """Depth first, then ``op s``, ``width s`` (and ``skip s`` for ``s >= 2``) per slot."""

    def __init__(self, space):
        self.space = space
        self.depths = tuple(range(space.min_blocks, space.max_blocks + 1))
        decisions = [Decision("depth", tuple(map(str, self.depths)))]
        self.slot_index: list[dict[str, int]] = []
        for s in range(1, space.max_blocks + 1):
            where = {}
            where["op"] = len(decisions)
            decisions.append(Decision(f"op {s}", tuple(space.ops)))
            where["width"] = len(decisions)
            decisions.append(Decision(f"width {s}", tuple(map(str, space.widths))))
            if space.skips and s >= 2:
                where["skip"] = len(decisions)
                decisions.append(Decision(f"skip {s}", ("none",) + tuple(map(str, range(s - 1)))))
            self.slot_index.append(where)
        self.decisions = tuple(decisions)

    def encode(self, arch) -> list[int | None]:
        arch = self.space.coerce(arch)
        out: list[int | None] = [None] * len(self.decisions)
        out[0] = self.depths.index(len(arch.blocks))
        for s, b in enumerate(arch.blocks):
            where = self.slot_index[s]
            out[where["op"]] = self.space.ops.index(b.op)
            out[where["width"]] = self.space.widths.index(b.width)
            if "skip" in where:
                out[where["skip"]] = 0 if b.skip is None else b.skip + 1
        return out

    def build(self, pick):
        from spaces.blocks1d import Block, Blocks1DArch

        idx: list[int | None] = [None] * len(self.decisions)
        idx[0] = int(pick(0))
        blocks = []
        for s in range(self.depths[idx[0]]):
            where = self.slot_index[s]
            for key in ("op", "width", "skip"):
                if key in where:
                    idx[where[key]] = int(pick(where[key]))
            skip = idx[where["skip"]] - 1 if "skip" in where and idx[where["skip"]] else None
            blocks.append(Block(self.space.ops[idx[where["op"]]],
                                self.space.widths[idx[where["width"]]], skip))
        return Blocks1DArch(tuple(blocks)), idx


def choices_for(space) -> Choices:
    """The :class:`Choices` of ``space`` (``nb201`` or ``blocks1d``)."""
    name = getattr(space, "name", None)
    if name == "nb201":
        return _NB201Choices(space)
    if name == "blocks1d":
        return _Blocks1DChoices(space)
    raise InvalidParameterError(
        f"space {name!r} has no factorisation into per-edge/per-slot choices (fair sampling and "
        "ST-NAS support nb201 and blocks1d)")


class FairPicker:
    """Fair sampling: every decision cycles through a fresh random permutation of its choices, so
    over a cycle each choice of an (active) decision is taken exactly as often as the others
    (FairNAS's strict fairness, Chu et al., ICCV 2021, per edge/slot)."""

    def __init__(self, choices: Choices, rng: np.random.Generator):
        self.choices = choices
        self.rng = rng
        self.queues: list[list[int]] = [[] for _ in choices.decisions]

    def _pick(self, k: int) -> int:
        q = self.queues[k]
        if not q:
            q.extend(int(i) for i in self.rng.permutation(len(self.choices.decisions[k])))
        return q.pop()

    def sample(self):
        return self.choices.build(self._pick)[0]
