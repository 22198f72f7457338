"""A Model-Search-style space of block stacks for 1-D signals (MNIST-1D, keyword spotting).

An architecture is a stack of 1-8 blocks. Block ``i`` (1-based) reads the output of block
``i - 1`` (block 0 is the input signal) and may also add a skip input from an earlier node
``j < i - 1``. Each block has an op, a width, and that optional skip. Text form::

    conv5:32|sepconv5:64@0|gru:32

``@j`` marks a skip from node ``j``. The head flattens the last block's ``(width, length)``
output into a linear classifier, so position information survives.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from prednas.errors import InvalidArchitectureError, choices_message
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


def _validate(blocks: Sequence[Block], text: object) -> Blocks1DArch:
    if not 1 <= len(blocks) <= MAX_BLOCKS:
        raise InvalidArchitectureError(
            f"{text!r} has {len(blocks)} blocks; valid: 1 to {MAX_BLOCKS}")
    for i, b in enumerate(blocks, start=1):
        if b.op not in OPS:
            raise InvalidArchitectureError(choices_message(f"Unknown op {b.op!r} in {text!r}",
                                                           b.op, OPS))
        if b.width not in WIDTHS:
            raise InvalidArchitectureError(
                f"Width {b.width} of block {i} in {text!r} is not allowed; valid choices: "
                + ", ".join(map(str, WIDTHS)))
        if b.skip is not None and not 0 <= b.skip <= i - 2:
            valid = ", ".join(map(str, range(i - 1))) or "none (block 1 reads the input already)"
            raise InvalidArchitectureError(
                f"Skip source node {b.skip} out of range for block {i} in {text!r}; "
                f"valid: {valid}")
    return Blocks1DArch(tuple(blocks))


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
    """Stacks of 1-8 blocks (conv k3/5/7, dilated, separable, LSTM, GRU, attention, MLP)."""

    ops = OPS
    widths = WIDTHS
    max_blocks = MAX_BLOCKS
    node_types: tuple[str, ...] = ("input", "output") + OPS
    encodings = ("onehot", "path")
    default_input_shape = (1, 40)

    def __init__(self, skip_prob: float = 0.25, max_blocks: int = MAX_BLOCKS):
        self.skip_prob = skip_prob
        self.max_blocks = max_blocks

    def is_arch(self, obj: object) -> bool:
        return isinstance(obj, Blocks1DArch)

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
        return _validate(blocks, text)

    def default_arch(self) -> Blocks1DArch:
        """The hand-designed CNN baseline: three 5-wide convolutions of 64 channels."""
        return self.parse("conv5:64|conv5:64|conv5:64")

    def _random_block(self, rng: np.random.Generator, position: int) -> Block:
        skip = None
        if position >= 2 and rng.random() < self.skip_prob:
            skip = int(rng.integers(0, position - 1))
        return Block(OPS[int(rng.integers(len(OPS)))], WIDTHS[int(rng.integers(len(WIDTHS)))], skip)

    def sample(self, rng: np.random.Generator) -> Blocks1DArch:
        n = int(rng.integers(1, self.max_blocks + 1))
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
        if n > 1:
            kinds.append("remove")
        kinds += ["op", "width"]
        if n >= 2:
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
                vals = [o for o in OPS if o != b.op]
                nb = replace(b, op=vals[int(rng.integers(len(vals)))])
            elif kind == "width":
                vals = [w for w in WIDTHS if w != b.width]
                nb = replace(b, width=vals[int(rng.integers(len(vals)))])
            else:
                vals = [s for s in [None, *range(pos)] if s != b.skip]
                nb = replace(b, skip=vals[int(rng.integers(len(vals)))])
            return [_replace_block(arch, pos, nb)]
        out = []
        for pos in range(n + 1 if "add" in kinds else 0):
            for op in OPS:
                for w in WIDTHS:
                    out.append(self._insert(arch, pos, Block(op, w)))
        if "remove" in kinds:
            out += [self._remove(arch, pos) for pos in range(n)]
        for pos, b in enumerate(arch.blocks):
            out += [_replace_block(arch, pos, replace(b, op=o)) for o in OPS if o != b.op]
            out += [_replace_block(arch, pos, replace(b, width=w)) for w in WIDTHS if w != b.width]
            if pos >= 1:
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
        return _validate(self.coerce(arch).blocks, str(arch))

    # -- encodings ------------------------------------------------------------------------------
    def to_vector(self, arch: Blocks1DArch, encoding: str = "onehot") -> np.ndarray:
        """``onehot``: per block slot, presence + op + width + skip source (8 x 21 values).

        ``path``: counts of each op, and of each (source type -> destination type) data path edge
        in the graph of :meth:`to_graph` (input and output included).
        """
        self.check_encoding(encoding)
        arch = self.coerce(arch)
        if encoding == "onehot":
            slot = 1 + len(OPS) + len(WIDTHS) + (MAX_BLOCKS - 1)
            v = np.zeros((MAX_BLOCKS, slot), np.float32)
            for i, b in enumerate(arch.blocks):
                v[i, 0] = 1
                v[i, 1 + OPS.index(b.op)] = 1
                v[i, 1 + len(OPS) + WIDTHS.index(b.width)] = 1
                if b.skip is not None:
                    v[i, 1 + len(OPS) + len(WIDTHS) + b.skip] = 1
            return v.ravel()
        t = len(self.node_types)
        types = self._node_type_ids(arch)
        v = np.zeros(len(OPS) + t * t, np.float32)
        for b in arch.blocks:
            v[OPS.index(b.op)] += 1
        src, dst = self._edges(arch)
        for s, d in zip(src, dst):
            v[len(OPS) + types[s] * t + types[d]] += 1
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
            x[i, -1] = i / MAX_BLOCKS
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
