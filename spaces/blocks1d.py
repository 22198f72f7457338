"""A Model-Search-style space of block stacks for 1-D signals (MNIST-1D, keyword spotting).

An architecture is a stack of 1-8 blocks. Block ``i`` (1-based) reads the output of block
``i - 1`` (block 0 is the input signal) and may also add a skip input from an earlier node
``j < i - 1``. Each block has an op, a width, and that optional skip. Text form::

    conv5:32|sepconv5:64@0|gru:32

``@j`` marks a skip from node ``j``. The head flattens the last block's ``(width, length)``
output into a linear classifier, so position information survives.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from prednas.errors import (
    InvalidArchitectureError,
    InvalidParameterError,
    PredNASError,
    check_param,
    choices_message,
)
from prednas.params import Interval, SequenceOf, validate_params
from spaces import register_space
from spaces.base import Space

__all__ = ["Block", "Blocks1DArch", "Blocks1DSpace", "OPS", "WIDTHS", "MAX_BLOCKS"]

OPS: tuple[str, ...] = ("conv3", "conv5", "conv7", "dilconv3", "sepconv5", "lstm", "gru", "attn",
                        "mlp")
WIDTHS: tuple[int, ...] = (16, 32, 64, 128)
MAX_BLOCKS = 8
_KERNEL = {"conv3": 3, "conv5": 5, "conv7": 7, "dilconv3": 3, "sepconv5": 5}
_DILATION = {"dilconv3": 2}
_TOKEN = re.compile(r"^([a-z0-9_]+):(\d+)(?:@(\d+))?$")


@dataclass(frozen=True)
class Block:
    op: str
    width: int
    skip: int | None = None

    def __str__(self) -> str:
        return f"{self.op}:{self.width}" + (f"@{self.skip}" if self.skip is not None else "")


@dataclass(frozen=True)
class Blocks1DArch:
    blocks: tuple[Block, ...]

    def __str__(self) -> str:
        return "|".join(map(str, self.blocks))

    def __len__(self) -> int:
        return len(self.blocks)


# --------------------------------------------------------------------------------------------
# network
# --------------------------------------------------------------------------------------------
class _Recurrent(nn.Module):
    def __init__(self, cls, c_in: int, width: int):
        super().__init__()
        self.rnn = cls(c_in, width // 2, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, L)
        out, _ = self.rnn(x.transpose(1, 2))
        return out.transpose(1, 2)


class _Attention(nn.Module):
    def __init__(self, c_in: int, width: int):
        super().__init__()
        self.proj = nn.Conv1d(c_in, width, 1) if c_in != width else nn.Identity()
        heads = 4 if width >= 64 else 2
        self.layer = nn.TransformerEncoderLayer(width, heads, dim_feedforward=2 * width,
                                                dropout=0.0, batch_first=True, norm_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(self.proj(x).transpose(1, 2)).transpose(1, 2)


def make_block(op: str, c_in: int, width: int) -> nn.Module:
    """The module of one block op mapping ``(B, c_in, L)`` to ``(B, width, L)``."""
    if op in ("conv3", "conv5", "conv7", "dilconv3"):
        k, d = _KERNEL[op], _DILATION.get(op, 1)
        return nn.Sequential(nn.Conv1d(c_in, width, k, padding=d * (k // 2), dilation=d, bias=False),
                             nn.BatchNorm1d(width), nn.ReLU())
    if op == "sepconv5":
        return nn.Sequential(nn.Conv1d(c_in, c_in, 5, padding=2, groups=c_in, bias=False),
                             nn.Conv1d(c_in, width, 1, bias=False), nn.BatchNorm1d(width), nn.ReLU())
    if op == "lstm":
        return _Recurrent(nn.LSTM, c_in, width)
    if op == "gru":
        return _Recurrent(nn.GRU, c_in, width)
    if op == "attn":
        return _Attention(c_in, width)
    if op == "mlp":
        return nn.Sequential(nn.Conv1d(c_in, width, 1, bias=False), nn.BatchNorm1d(width), nn.ReLU())
    raise InvalidArchitectureError(choices_message(f"Unknown op {op!r}", op, OPS))


class Blocks1DNetwork(nn.Module):
    """A stack of blocks with optional skips and a flatten-linear head."""

    def __init__(self, arch: Blocks1DArch, num_classes: int, input_shape: Sequence[int],
                 dropout: float = 0.0):
        super().__init__()
        c_in, length = int(input_shape[0]), int(input_shape[-1])
        widths = [c_in] + [b.width for b in arch.blocks]
        self.skips = [b.skip for b in arch.blocks]
        self.blocks = nn.ModuleList()
        self.skip_proj = nn.ModuleDict()
        for i, b in enumerate(arch.blocks, start=1):
            self.blocks.append(make_block(b.op, widths[i - 1], b.width))
            if b.skip is not None:
                src = widths[b.skip]
                self.skip_proj[str(i)] = (nn.Identity() if src == b.width
                                          else nn.Conv1d(src, b.width, 1, bias=False))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(widths[-1] * length, num_classes)
        self.arch_str = str(arch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(1)
        nodes = [x]
        for i, (block, skip) in enumerate(zip(self.blocks, self.skips), start=1):
            out = block(nodes[-1])
            if skip is not None:
                out = out + self.skip_proj[str(i)](nodes[skip])
            nodes.append(out)
        return self.head(self.dropout(torch.flatten(nodes[-1], 1)))


# --------------------------------------------------------------------------------------------
# the space
# --------------------------------------------------------------------------------------------
@register_space("blocks1d")
class Blocks1DSpace(Space):
    """Stacks of blocks (conv k3/5/7, dilated, separable, LSTM, GRU, attention, MLP).

    The space is configurable: ``spaces.get("blocks1d", ops=("conv3", "gru"), widths=(16, 32),
    max_blocks=3, skips=False)`` is the sub-space of stacks of 1-3 such blocks without skips. The
    configuration is part of the space's identity (:meth:`config`, stored in every saved artifact):
    encodings are laid out over the configured ops, widths and depth, and an architecture outside
    the configuration is refused with an error that names it.

    Args:
        ops: the block ops on offer (a subset of :data:`OPS`, in any order).
        widths: the block widths on offer (a subset of :data:`WIDTHS`).
        max_blocks: the deepest stack (1 to :data:`MAX_BLOCKS`).
        min_blocks: the shallowest stack.
        skips: whether a block may add a skip input from an earlier node.
        skip_prob: probability that :meth:`sample` gives a block (from the second on) a skip.
    """

    encodings = ("onehot", "path")
    default_input_shape = (1, 40)
    #: none: on blocks1d-mnist1d the fast proxies added nothing to the predictor at 100 training
    #: architectures (0.869 vs 0.878 Spearman) and cost 0.07 at 20 (benchmarks/predictors-blocks1d.md)
    live_proxies = ()

    #: types first (a configuration read from a file may hold anything); the subsets and the
    #: block counts are checked against the space's own values below
    _parameter_constraints = {"ops": [SequenceOf(str, min_len=1)],
                              "widths": [SequenceOf(Interval(int, 1, None), min_len=1)],
                              "max_blocks": [Interval(int, 1, None)],
                              "min_blocks": [Interval(int, 1, None)],
                              "skips": ["boolean"],
                              "skip_prob": [Interval(float, 0, 1)]}

    def __init__(self, ops: Sequence[str] = OPS, widths: Sequence[int] = WIDTHS,
                 max_blocks: int = MAX_BLOCKS, min_blocks: int = 1, skips: bool = True,
                 skip_prob: float = 0.25):
        validate_params("Blocks1DSpace", self._parameter_constraints, {
            "ops": ops, "widths": widths, "max_blocks": max_blocks, "min_blocks": min_blocks,
            "skips": skips, "skip_prob": skip_prob})
        ops, widths = tuple(ops), tuple(int(w) for w in widths)
        bad = [o for o in ops if o not in OPS]
        if not ops or bad:
            raise InvalidParameterError(choices_message(
                f"The 'ops' parameter of Blocks1DSpace must be a non-empty subset of the block "
                f"ops. Got {bad[0] if bad else 'none'!r} instead", bad[0] if bad else "", OPS))
        badw = [w for w in widths if w not in WIDTHS]
        if not widths or badw:
            raise InvalidParameterError(
                f"The 'widths' parameter of Blocks1DSpace must be a non-empty subset of "
                f"{', '.join(map(str, WIDTHS))}. Got {badw[0] if badw else 'none'!r} instead.")
        if len(set(ops)) != len(ops) or len(set(widths)) != len(widths):
            raise InvalidParameterError(
                f"Blocks1DSpace got repeated ops or widths: ops={ops}, widths={widths}")
        check_param("Blocks1DSpace", "max_blocks", max_blocks, low=1, high=MAX_BLOCKS)
        check_param("Blocks1DSpace", "min_blocks", min_blocks, low=1, high=max_blocks)
        check_param("Blocks1DSpace", "skip_prob", skip_prob, kind=(float, int), low=0, high=1)
        self.ops = ops
        self.widths = widths
        self.max_blocks = int(max_blocks)
        self.min_blocks = int(min_blocks)
        self.skips = bool(skips)
        self.skip_prob = float(skip_prob) if skips else 0.0
        self.node_types: tuple[str, ...] = ("input", "output") + ops

    def config(self) -> dict:
        """The configuration that defines this (sub-)space; ``{}`` for the full default space."""
        full = {"ops": list(OPS), "widths": list(WIDTHS), "max_blocks": MAX_BLOCKS,
                "min_blocks": 1, "skips": True}
        mine = {"ops": list(self.ops), "widths": list(self.widths),
                "max_blocks": self.max_blocks, "min_blocks": self.min_blocks,
                "skips": self.skips}
        return {} if mine == full else mine

    def describe(self) -> str:
        """One line naming the configuration (used in error messages)."""
        return (f"blocks1d with ops {', '.join(self.ops)}; widths "
                f"{', '.join(map(str, self.widths))}; {self.min_blocks} to {self.max_blocks} "
                f"blocks; {'with' if self.skips else 'no'} skips")

    def __repr__(self) -> str:
        cfg = self.config()
        return "Blocks1DSpace(" + ", ".join(f"{k}={v!r}" for k, v in cfg.items()) + ")"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Blocks1DSpace) and self.config() == other.config()

    def __hash__(self) -> int:
        return hash(("blocks1d", repr(self.config())))

    def _validate(self, blocks: Sequence[Block], text: object) -> Blocks1DArch:
        where = "" if not self.config() else f" (the space is {self.describe()})"
        if not self.min_blocks <= len(blocks) <= self.max_blocks:
            raise InvalidArchitectureError(
                f"{text!r} has {len(blocks)} blocks; valid: {self.min_blocks} to "
                f"{self.max_blocks}{where}")
        for i, b in enumerate(blocks, start=1):
            if b.op not in self.ops:
                raise InvalidArchitectureError(choices_message(
                    f"Unknown op {b.op!r} in {text!r}{where}", b.op, self.ops))
            if b.width not in self.widths:
                raise InvalidArchitectureError(
                    f"Width {b.width} of block {i} in {text!r} is not allowed; valid choices: "
                    + ", ".join(map(str, self.widths)) + where)
            if b.skip is not None and not self.skips:
                raise InvalidArchitectureError(
                    f"Block {i} of {text!r} has a skip, but the space has none{where}")
            if b.skip is not None and not 0 <= b.skip <= i - 2:
                valid = ", ".join(map(str, range(i - 1))) or "none (block 1 reads the input already)"
                raise InvalidArchitectureError(
                    f"Skip source node {b.skip} out of range for block {i} in {text!r}; "
                    f"valid: {valid}")
        return Blocks1DArch(tuple(blocks))

    # -- finite enumeration ---------------------------------------------------------------------
    def _block_choices(self, position: int) -> list[Block]:
        skips = [None] + (list(range(position - 1)) if self.skips else [])
        return [Block(o, w, s) for o in self.ops for w in self.widths for s in skips]

    def __len__(self) -> int:
        total = 0
        for depth in range(self.min_blocks, self.max_blocks + 1):
            n = 1
            for pos in range(1, depth + 1):
                n *= len(self._block_choices(pos))
            total += n
        return total

    #: spaces larger than this are treated as infinite (sampled, never enumerated)
    MAX_ENUMERABLE = 1_000_000

    @property
    def is_finite(self) -> bool:
        return len(self) <= self.MAX_ENUMERABLE

    def enumerate(self) -> Iterator[Blocks1DArch]:
        """Every architecture of the space, shallow stacks first (sub-spaces only)."""
        if not self.is_finite:
            raise PredNASError(
                f"space {self.describe()} has {len(self):.3g} architectures, too many to "
                f"enumerate (at most {self.MAX_ENUMERABLE:,}); configure a sub-space")
        return (Blocks1DArch(tuple(combo))
                for depth in range(self.min_blocks, self.max_blocks + 1)
                for combo in itertools.product(*[self._block_choices(pos)
                                                 for pos in range(1, depth + 1)]))

    def is_arch(self, obj: object) -> bool:
        return isinstance(obj, Blocks1DArch)

    def coerce(self, arch: Blocks1DArch | str) -> Blocks1DArch:
        arch = super().coerce(arch)
        if self.config() and isinstance(arch, Blocks1DArch):
            self._validate(arch.blocks, str(arch))
        return arch

    def parse(self, text: str) -> Blocks1DArch:
        if not isinstance(text, str) or not text.strip():
            raise InvalidArchitectureError(
                f"Malformed blocks1d architecture {text!r}: expected e.g. 'conv5:32|gru:64@0'")
        blocks = []
        for tok in text.strip().split("|"):
            m = _TOKEN.match(tok.strip())
            if not m:
                raise InvalidArchitectureError(
                    f"Malformed block {tok!r} in {text!r}: expected 'op:width' or 'op:width@j'")
            op, width, skip = m.group(1), int(m.group(2)), m.group(3)
            blocks.append(Block(op, width, None if skip is None else int(skip)))
        return self._validate(blocks, text)

    def default_arch(self) -> Blocks1DArch:
        """The hand-designed CNN baseline: three 5-wide convolutions of 64 channels (in a
        configured sub-space: the nearest stack of its own ops and widths)."""
        op = "conv5" if "conv5" in self.ops else next(
            (o for o in ("conv3", "conv7", "sepconv5", "dilconv3") if o in self.ops), self.ops[0])
        width = min(self.widths, key=lambda w: (abs(w - 64), -w))
        depth = min(max(3, self.min_blocks), self.max_blocks)
        return Blocks1DArch(tuple(Block(op, width) for _ in range(depth)))

    def _random_block(self, rng: np.random.Generator, position: int) -> Block:
        skip = None
        if self.skips and position >= 2 and rng.random() < self.skip_prob:
            skip = int(rng.integers(0, position - 1))
        return Block(self.ops[int(rng.integers(len(self.ops)))],
                     self.widths[int(rng.integers(len(self.widths)))], skip)

    def sample(self, rng: np.random.Generator) -> Blocks1DArch:
        n = int(rng.integers(self.min_blocks, self.max_blocks + 1))
        return Blocks1DArch(tuple(self._random_block(rng, i) for i in range(1, n + 1)))

    # -- edits ----------------------------------------------------------------------------------
    @staticmethod
    def _insert(arch: Blocks1DArch, pos: int, block: Block) -> Blocks1DArch:
        """Insert ``block`` as block ``pos + 1`` (0-based ``pos`` in the tuple), fixing skips."""
        new = []
        for i, b in enumerate(arch.blocks):
            if i == pos:
                new.append(block)
            s = b.skip
            if s is not None and s > pos:
                s += 1
            new.append(replace(b, skip=s))
        if pos == len(arch.blocks):
            new.append(block)
        return Blocks1DArch(tuple(_clean_skips(new)))

    @staticmethod
    def _remove(arch: Blocks1DArch, pos: int) -> Blocks1DArch:
        new = []
        for i, b in enumerate(arch.blocks):
            if i == pos:
                continue
            s = b.skip
            if s is not None:
                if s == pos + 1:  # the removed block's output: take its input instead
                    s = pos
                elif s > pos + 1:
                    s -= 1
            new.append(replace(b, skip=s))
        return Blocks1DArch(tuple(_clean_skips(new)))

    def _edits(self, arch: Blocks1DArch, rng: np.random.Generator | None):
        """Yield every one-edit neighbour, or (with ``rng``) one random edit."""
        n = len(arch.blocks)
        kinds = []
        if n < self.max_blocks:
            kinds.append("add")
        if n > self.min_blocks:
            kinds.append("remove")
        if len(self.ops) > 1:
            kinds.append("op")
        if len(self.widths) > 1:
            kinds.append("width")
        if n >= 2 and self.skips:
            kinds.append("skip")
        if rng is not None:
            kind = kinds[int(rng.integers(len(kinds)))]
            if kind == "add":
                pos = int(rng.integers(n + 1))
                new = self._random_block(rng, pos + 1)
                return [self._insert(arch, pos, replace(new, skip=None))]
            if kind == "remove":
                return [self._remove(arch, int(rng.integers(n)))]
            pos = int(rng.integers(n if kind != "skip" else n - 1)) + (kind == "skip")
            b = arch.blocks[pos]
            if kind == "op":
                vals = [o for o in self.ops if o != b.op]
                nb = replace(b, op=vals[int(rng.integers(len(vals)))])
            elif kind == "width":
                vals = [w for w in self.widths if w != b.width]
                nb = replace(b, width=vals[int(rng.integers(len(vals)))])
            else:
                vals = [s for s in [None, *range(pos)] if s != b.skip]
                nb = replace(b, skip=vals[int(rng.integers(len(vals)))])
            return [_replace_block(arch, pos, nb)]
        out = []
        for pos in range(n + 1 if "add" in kinds else 0):
            for op in self.ops:
                for w in self.widths:
                    out.append(self._insert(arch, pos, Block(op, w)))
        if "remove" in kinds:
            out += [self._remove(arch, pos) for pos in range(n)]
        for pos, b in enumerate(arch.blocks):
            out += [_replace_block(arch, pos, replace(b, op=o)) for o in self.ops if o != b.op]
            out += [_replace_block(arch, pos, replace(b, width=w))
                    for w in self.widths if w != b.width]
            if pos >= 1 and self.skips:
                out += [_replace_block(arch, pos, replace(b, skip=s))
                        for s in [None, *range(pos)] if s != b.skip]
        return out

    def mutate(self, arch: Blocks1DArch, rng: np.random.Generator) -> Blocks1DArch:
        """Model Search's edit: add a block, remove one, or reset one block parameter."""
        arch = self.coerce(arch)
        for _ in range(100):
            child = self._edits(arch, rng)[0]
            if child != arch:
                return child
        raise InvalidArchitectureError(f"could not mutate {arch}")  # pragma: no cover

    def neighbours(self, arch: Blocks1DArch) -> list[Blocks1DArch]:
        arch = self.coerce(arch)
        seen, out = {arch}, []
        for child in self._edits(arch, None):
            if child not in seen:
                seen.add(child)
                out.append(child)
        return out

    def canonical(self, arch: Blocks1DArch) -> Blocks1DArch:
        """Block stacks have one labelling each; validity is checked and the arch returned."""
        return self._validate(self.coerce(arch).blocks, str(arch))

    def to_optuna(self, arch: Blocks1DArch | str) -> tuple[dict[str, Any], dict[str, Any]]:
        """``depth``, then per block ``op_i`` and ``width_i`` (and ``skip_i``, the skip source
        node or None, from the second block on when the space has skips)."""
        from optuna.distributions import CategoricalDistribution, IntDistribution

        arch = self.coerce(arch)
        params: dict[str, Any] = {"depth": len(arch)}
        dists: dict[str, Any] = {"depth": IntDistribution(self.min_blocks, self.max_blocks)}
        for i, b in enumerate(arch.blocks, start=1):
            params[f"op_{i}"], dists[f"op_{i}"] = b.op, CategoricalDistribution(self.ops)
            params[f"width_{i}"], dists[f"width_{i}"] = b.width, CategoricalDistribution(self.widths)
            if self.skips and i >= 2:
                params[f"skip_{i}"] = b.skip
                dists[f"skip_{i}"] = CategoricalDistribution((None, *range(i - 1)))
        return params, dists

    # -- encodings ------------------------------------------------------------------------------
    def to_vector(self, arch: Blocks1DArch, encoding: str = "onehot") -> np.ndarray:
        """``onehot``: per block slot, presence + op + width + skip source (8 x 21 values in the full
        space; laid out over the configured ops, widths and depth in a sub-space).

        ``path``: counts of each op, and of each (source type -> destination type) data path edge
        in the graph of :meth:`to_graph` (input and output included).
        """
        self.check_encoding(encoding)
        arch = self.coerce(arch)
        ops, widths, depth = self.ops, self.widths, self.max_blocks
        if encoding == "onehot":
            n_skip = depth - 1 if self.skips else 0
            slot = 1 + len(ops) + len(widths) + n_skip
            v = np.zeros((depth, slot), np.float32)
            for i, b in enumerate(arch.blocks):
                v[i, 0] = 1
                v[i, 1 + ops.index(b.op)] = 1
                v[i, 1 + len(ops) + widths.index(b.width)] = 1
                if b.skip is not None:
                    v[i, 1 + len(ops) + len(widths) + b.skip] = 1
            return v.ravel()
        t = len(self.node_types)
        types = self._node_type_ids(arch)
        v = np.zeros(len(ops) + t * t, np.float32)
        for b in arch.blocks:
            v[ops.index(b.op)] += 1
        src, dst = self._edges(arch)
        for s, d in zip(src, dst):
            v[len(ops) + types[s] * t + types[d]] += 1
        return v

    def _node_type_ids(self, arch: Blocks1DArch) -> list[int]:
        return ([self.node_types.index("input")] + [self.node_types.index(b.op) for b in arch.blocks]
                + [self.node_types.index("output")])

    @staticmethod
    def _edges(arch: Blocks1DArch) -> tuple[list[int], list[int]]:
        n = len(arch.blocks)
        src, dst = [], []
        for i, b in enumerate(arch.blocks, start=1):
            src.append(i - 1)
            dst.append(i)
            if b.skip is not None:
                src.append(b.skip)
                dst.append(i)
        src.append(n)
        dst.append(n + 1)
        return src, dst

    def to_graph(self, arch: Blocks1DArch):
        """Input node, a node per block, output node; an edge per data path.

        Node features: one-hot of :attr:`node_types`, then width/128, kernel/7, dilation/2 and
        position/8.
        """
        from torch_geometric.data import Data

        arch = self.coerce(arch)
        types = self._node_type_ids(arch)
        n = len(types)
        x = np.zeros((n, len(self.node_types) + 4), np.float32)
        for k, t in enumerate(types):
            x[k, t] = 1
        for i, b in enumerate(arch.blocks, start=1):
            x[i, -4] = b.width / max(WIDTHS)
            x[i, -3] = _KERNEL.get(b.op, 1) / 7
            x[i, -2] = _DILATION.get(b.op, 1) / 2
            x[i, -1] = i / self.max_blocks
        src, dst = self._edges(arch)
        return Data(x=torch.from_numpy(x), edge_index=torch.tensor([src, dst], dtype=torch.long),
                    num_nodes=n)

    # -- networks -------------------------------------------------------------------------------
    def build(self, arch: Blocks1DArch | str, num_classes: int = 10,
              input_shape: Sequence[int] = (1, 40), dropout: float = 0.0) -> nn.Module:
        return Blocks1DNetwork(self.coerce(arch), num_classes, input_shape, dropout=dropout)

    def build_supernet(self, num_classes: int = 10, input_shape: Sequence[int] = (1, 40),
                       **kwargs) -> nn.Module:
        from spaces._supernet_blocks1d import Blocks1DSupernet

        return Blocks1DSupernet(self, num_classes=num_classes, input_shape=input_shape, **kwargs)


def _replace_block(arch: Blocks1DArch, pos: int, block: Block) -> Blocks1DArch:
    blocks = list(arch.blocks)
    blocks[pos] = block
    return Blocks1DArch(tuple(blocks))


def _clean_skips(blocks: list[Block]) -> list[Block]:
    """Drop skips that became redundant (from the block's own input) or invalid."""
    out = []
    for i, b in enumerate(blocks, start=1):
        if b.skip is not None and not 0 <= b.skip <= i - 2:
            b = replace(b, skip=None)
        out.append(b)
    return out
