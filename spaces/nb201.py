"""The NAS-Bench-201 cell space (Dong & Yang, ICLR 2020).

A cell is a DAG of 4 nodes; each of its 6 edges ``j <- i`` (``i < j``) carries one of five ops. The
text format is NAS-Bench-201's own, so strings can be pasted from NATS-Bench::

    |nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|

The network follows NB201's macro skeleton: a 3x3 stem, three stages of ``N`` cells with ``C``,
``2C`` and ``4C`` channels separated by residual reduction blocks, then BN-ReLU, global pooling and
a linear classifier (``C=16, N=5`` by default, as in the benchmark).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from prednas.errors import InvalidArchitectureError, choices_message
from prednas.params import Interval, validate_params
from spaces import register_space
from spaces.base import Space

__all__ = ["NB201Arch", "NB201Space", "OPS", "EDGES"]

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: edges in NB201 string order, as (to_node, from_node)
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
NUM_NODES = 4
#: every input->output path of the cell, as edge positions in EDGES
_PATHS: tuple[tuple[int, ...], ...] = ((3,), (0, 4), (1, 5), (0, 2, 5))
_LIVE_OPS = OPS[1:]
_PATH_INDEX: dict[tuple[str, ...], int] = {
    seq: i for i, seq in enumerate(
        itertools.chain.from_iterable(itertools.product(_LIVE_OPS, repeat=k) for k in (1, 2, 3)))
}
_OP_COST = {"none": 0.0, "skip_connect": 0.0, "avg_pool_3x3": 0.0, "nor_conv_1x1": 1 / 9,
            "nor_conv_3x3": 1.0}


@dataclass(frozen=True)
class NB201Arch:
    """An NB201 cell: the op on each edge, in :data:`EDGES` order."""

    ops: tuple[str, ...]

    def __str__(self) -> str:
        parts, k = [], 0
        for j in range(1, NUM_NODES):
            parts.append("|" + "|".join(f"{self.ops[k + i]}~{i}" for i in range(j)) + "|")
            k += j
        return "+".join(parts)

    def op(self, to_node: int, from_node: int) -> str:
        return self.ops[EDGES.index((to_node, from_node))]


def _parse(text: str) -> NB201Arch:
    if not isinstance(text, str):
        raise InvalidArchitectureError(f"NB201 architecture must be a string, got {text!r}")
    s = text.strip()
    parts = s.split("+")
    if len(parts) != NUM_NODES - 1:
        raise InvalidArchitectureError(
            f"Malformed NB201 architecture {text!r}: expected {NUM_NODES - 1} node groups joined "
            f"by '+', got {len(parts)}; e.g. '|nor_conv_3x3~0|+|skip_connect~0|none~1|+|...|'")
    ops: list[str] = []
    for j, part in enumerate(parts, start=1):
        if not (part.startswith("|") and part.endswith("|") and len(part) > 2):
            raise InvalidArchitectureError(
                f"Malformed NB201 node group {part!r} in {text!r}: expected '|op~i|op~i|...|'")
        tokens = part[1:-1].split("|")
        if len(tokens) != j:
            raise InvalidArchitectureError(
                f"Node {j} in {text!r} has {len(tokens)} inputs; it must have exactly {j} "
                f"(from nodes {', '.join(map(str, range(j)))})")
        for i, tok in enumerate(tokens):
            op, sep, idx = tok.partition("~")
            if not sep:
                raise InvalidArchitectureError(f"Malformed edge {tok!r} in {text!r}: expected 'op~i'")
            if op not in OPS:
                raise InvalidArchitectureError(
                    choices_message(f"Unknown op {op!r} in {text!r}", op, OPS))
            try:
                src = int(idx)
            except ValueError:
                raise InvalidArchitectureError(
                    f"Node index {idx!r} in edge {tok!r} is not an integer") from None
            if src != i:
                raise InvalidArchitectureError(
                    f"Node index {src} out of range in edge {tok!r} of {text!r}: input {i + 1} of "
                    f"node {j} must come from node {i} (valid: {', '.join(map(str, range(j)))})")
            ops.append(op)
    return NB201Arch(tuple(ops))


# --------------------------------------------------------------------------------------------
# network
# --------------------------------------------------------------------------------------------
class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, affine: bool = True,
                 track_running_stats: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out, affine=affine, track_running_stats=track_running_stats),
        )


def make_op(name: str, channels: int, **bn) -> nn.Module | None:
    """The module for one NB201 op (``None`` for ``none``)."""
    if name == "none":
        return None
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, **bn)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, **bn)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise InvalidArchitectureError(choices_message(f"Unknown op {name!r}", name, OPS))


class Cell(nn.Module):
    """One NB201 cell; ``none`` edges are dropped, a node with no live input is zero."""

    def __init__(self, arch: NB201Arch, channels: int):
        super().__init__()
        self.arch_str = str(arch)
        self.edges = nn.ModuleDict()
        for (j, i), op in zip(EDGES, arch.ops):
            mod = make_op(op, channels)
            if mod is not None:
                self.edges[f"{j}_{i}"] = mod

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for j in range(1, NUM_NODES):
            acc = None
            for i in range(j):
                key = f"{j}_{i}"
                if key in self.edges:
                    out = self.edges[key](nodes[i])
                    acc = out if acc is None else acc + out
            nodes.append(acc if acc is not None else x.mul(0.0))
        return nodes[-1]


class ResNetBasicBlock(nn.Module):
    """NB201's reduction block: two ReLU-Conv-BN and an avg-pool + 1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int = 2):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(2, stride=2, padding=0),
            nn.Conv2d(c_in, c_out, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class NB201Network(nn.Module):
    """The NB201 macro skeleton around one cell type (or around supernet cells)."""

    def __init__(self, cell_factory, num_classes: int, input_shape: Sequence[int], C: int = 16,
                 N: int = 5):
        super().__init__()
        in_ch = int(input_shape[0])
        self.stem = nn.Sequential(nn.Conv2d(in_ch, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        layers: list[nn.Module] = []
        c = C
        for stage in range(3):
            if stage > 0:
                layers.append(ResNetBasicBlock(c, 2 * c))
                c *= 2
            layers.extend(cell_factory(c) for _ in range(N))
        self.cells = nn.Sequential(*layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=False))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.lastact(self.cells(self.stem(x)))
        return self.classifier(torch.flatten(self.pool(x), 1))


# --------------------------------------------------------------------------------------------
# the space
# --------------------------------------------------------------------------------------------
@register_space("nb201")
class NB201Space(Space):
    """The NAS-Bench-201 cell space: 5 ops on 6 edges, 15,625 architectures."""

    ops = OPS
    edges = EDGES
    node_types: tuple[str, ...] = ("input", "output") + OPS
    encodings = ("onehot", "path")
    default_input_shape = (3, 32, 32)

    #: the macro skeleton: a stem of C channels (doubled at each of the two reductions), N cells
    #: per stage; bounded to sizes a network can have (a configuration read from a file may hold
    #: anything)
    _parameter_constraints = {"C": [Interval(int, 1, 1024)], "N": [Interval(int, 1, 64)]}

    def __init__(self, C: int = 16, N: int = 5):
        validate_params("NB201Space", self._parameter_constraints, {"C": C, "N": N})
        self.C = C
        self.N = N

    def __repr__(self) -> str:
        return f"NB201Space(C={self.C}, N={self.N})"

    def cost_key(self, arch) -> tuple[int, int]:
        """Every cell of the network is the same and only convolutions hold parameters and
        (counted) FLOPs, so both depend only on how many 1x1 and 3x3 convolutions the cell has."""
        ops = self.coerce(arch).ops
        return ops.count("nor_conv_1x1"), ops.count("nor_conv_3x3")

    def config(self) -> dict:
        """The macro skeleton when it differs from NB201's own (C=16, N=5)."""
        return {} if (self.C, self.N) == (16, 5) else {"C": self.C, "N": self.N}

    @property
    def is_finite(self) -> bool:
        return True

    def __len__(self) -> int:
        return len(OPS) ** len(EDGES)

    def is_arch(self, obj: object) -> bool:
        return isinstance(obj, NB201Arch)

    def enumerate(self) -> Iterator[NB201Arch]:
        for ops in itertools.product(OPS, repeat=len(EDGES)):
            yield NB201Arch(ops)

    def parse(self, text: str) -> NB201Arch:
        return _parse(text)

    def default_arch(self) -> NB201Arch:
        return NB201Arch(("nor_conv_3x3",) * 6)

    def sample(self, rng: np.random.Generator) -> NB201Arch:
        return NB201Arch(tuple(OPS[k] for k in rng.integers(0, len(OPS), size=len(EDGES))))

    def mutate(self, arch: NB201Arch, rng: np.random.Generator) -> NB201Arch:
        arch = self.coerce(arch)
        pos = int(rng.integers(len(EDGES)))
        choices = [o for o in OPS if o != arch.ops[pos]]
        ops = list(arch.ops)
        ops[pos] = choices[int(rng.integers(len(choices)))]
        return NB201Arch(tuple(ops))

    def neighbours(self, arch: NB201Arch) -> list[NB201Arch]:
        arch = self.coerce(arch)
        out = []
        for pos in range(len(EDGES)):
            for op in OPS:
                if op != arch.ops[pos]:
                    ops = list(arch.ops)
                    ops[pos] = op
                    out.append(NB201Arch(tuple(ops)))
        return out

    def canonical(self, arch: NB201Arch) -> NB201Arch:
        """Prune edges off every input->output path, then order nodes 1/2 when they commute.

        Edges that leave a node no input reaches, or enter a node that reaches no output, cannot
        change the cell's output, so they become ``none``. When edge ``2<-1`` is ``none`` the two
        intermediate nodes are interchangeable and the lexicographically smaller labelling wins.
        """
        ops = list(self.coerce(arch).ops)
        live = lambda j, i: ops[EDGES.index((j, i))] != "none"  # noqa: E731
        changed = True
        while changed:
            changed = False
            reach = [True, False, False, False]  # reachable from the input
            for j in range(1, NUM_NODES):
                reach[j] = any(reach[i] and live(j, i) for i in range(j))
            to_out = [False, False, False, True]  # reaches the output
            for i in range(NUM_NODES - 2, -1, -1):
                to_out[i] = any(to_out[j] and live(j, i) for j in range(i + 1, NUM_NODES))
            for k, (j, i) in enumerate(EDGES):
                if ops[k] != "none" and not (reach[i] and to_out[j]):
                    ops[k] = "none"
                    changed = True
        if ops[2] == "none":  # nodes 1 and 2 commute: swap (1<-0, 2<-0) and (3<-1, 3<-2)
            swapped = [ops[1], ops[0], ops[2], ops[3], ops[5], ops[4]]
            ops = min(ops, swapped)
        return NB201Arch(tuple(ops))

    def to_optuna(self, arch: NB201Arch | str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The op on each edge, ``edge_j_i`` for the edge from node ``j`` to node ``i``, in
        :data:`EDGES` order."""
        from optuna.distributions import CategoricalDistribution

        arch = self.coerce(arch)
        names = [f"edge_{j}_{i}" for i, j in EDGES]
        return dict(zip(names, arch.ops)), {n: CategoricalDistribution(OPS) for n in names}

    # -- encodings ------------------------------------------------------------------------------
    def to_vector(self, arch: NB201Arch, encoding: str = "onehot") -> np.ndarray:
        self.check_encoding(encoding)
        arch = self.coerce(arch)
        if encoding == "onehot":
            v = np.zeros((len(EDGES), len(OPS)), np.float32)
            for k, op in enumerate(arch.ops):
                v[k, OPS.index(op)] = 1.0
            return v.ravel()
        v = np.zeros(len(_PATH_INDEX), np.float32)
        for path in _PATHS:
            seq = tuple(arch.ops[k] for k in path)
            if "none" not in seq:
                v[_PATH_INDEX[seq]] += 1.0
        return v

    def to_graph(self, arch: NB201Arch):
        """Op-on-node DAG: an input node, one node per edge op, an output node (8 nodes).

        Node features are the one-hot of :attr:`node_types` followed by two attributes: the op's
        relative parameter cost and whether it lies on a live input->output path. ``none`` ops keep
        their node but carry no edges.
        """
        from torch_geometric.data import Data

        arch = self.coerce(arch)
        canon = self.canonical(arch)
        n = len(EDGES) + 2
        out_node = n - 1
        x = np.zeros((n, len(self.node_types) + 2), np.float32)
        x[0, self.node_types.index("input")] = 1
        x[out_node, self.node_types.index("output")] = 1
        for k, op in enumerate(arch.ops):
            x[k + 1, self.node_types.index(op)] = 1
            x[k + 1, -2] = _OP_COST[op]
            x[k + 1, -1] = float(canon.ops[k] != "none")
        x[0, -1] = x[out_node, -1] = 1.0
        src, dst = [], []
        for k, ((j, i), op) in enumerate(zip(EDGES, arch.ops)):
            if op == "none":
                continue
            feeders = [0] if i == 0 else [m + 1 for m, (jj, _) in enumerate(EDGES)
                                          if jj == i and arch.ops[m] != "none"]
            for f in feeders:
                src.append(f)
                dst.append(k + 1)
            if j == NUM_NODES - 1:
                src.append(k + 1)
                dst.append(out_node)
        edge_index = torch.tensor([src, dst], dtype=torch.long).reshape(2, -1)
        return Data(x=torch.from_numpy(x), edge_index=edge_index, num_nodes=n)

    # -- networks -----------------------------------------------------------------------------
    def build(self, arch: NB201Arch | str, num_classes: int = 10,
              input_shape: Sequence[int] = (3, 32, 32), C: int | None = None,
              N: int | None = None) -> nn.Module:
        arch = self.coerce(arch)
        net = NB201Network(lambda c: Cell(arch, c), num_classes, input_shape,
                           C=C or self.C, N=N or self.N)
        net.arch_str = str(arch)
        return net

    def build_supernet(self, num_classes: int = 10, input_shape: Sequence[int] = (3, 32, 32),
                       **kwargs) -> nn.Module:
        from spaces._supernet_nb201 import NB201Supernet

        return NB201Supernet(self, num_classes=num_classes, input_shape=input_shape, **kwargs)
