"""A weight-sharing supernet for the NAS-Bench-201 cell space.

Every edge of every cell holds one module per live op (``skip_connect``, ``nor_conv_1x1``,
``nor_conv_3x3``, ``avg_pool_3x3``; ``none`` needs no module). ``supernet(x, arch)`` runs the single
path that ``arch`` picks on every edge (all cells share the architecture, as in NB201), so training
with one uniformly sampled architecture per step is single-path one-shot training (SPOS, Guo et al.
2020). The macro skeleton (stem, reduction blocks, classifier) is shared by every path.

Batch-norm layers keep running statistics, but these mix many paths during training; before a
sub-network is evaluated its statistics must be recalibrated (:meth:`NB201Supernet.recalibrating`).

``supernet.subnet(arch)`` returns a stand-alone :class:`spaces.nb201.NB201Network` whose parameters
and buffers *are* the supernet's own tensors (same objects), with the same ``state_dict`` keys as
``space.build(arch, C=..., N=...)``, so its weights can also be handed to
:func:`prednas.training.inherit_weights`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from spaces.nb201 import EDGES, NUM_NODES, OPS, NB201Network, make_op

__all__ = ["NB201Supernet", "MixedCell", "bind_tensors", "build_on_meta", "recalibrating"]

_LIVE = tuple(op for op in OPS if op != "none")


class MixedCell(nn.Module):
    """An NB201 cell whose every edge holds all live ops; the forward picks one per edge."""

    def __init__(self, channels: int):
        super().__init__()
        self.edges = nn.ModuleDict()
        for j, i in EDGES:
            self.edges[f"{j}_{i}"] = nn.ModuleDict({op: make_op(op, channels) for op in _LIVE})

    def forward(self, x: torch.Tensor, ops: Sequence[str]) -> torch.Tensor:
        nodes = [x]
        k = 0
        for j in range(1, NUM_NODES):
            acc = None
            for i in range(j):
                op = ops[k]
                k += 1
                if op == "none":
                    continue
                out = self.edges[f"{j}_{i}"][op](nodes[i])
                acc = out if acc is None else acc + out
            nodes.append(acc if acc is not None else x.mul(0.0))
        return nodes[-1]


class NB201Supernet(NB201Network):
    """NB201's skeleton around :class:`MixedCell` s (``C=16, N=5`` unless the space or kwargs say).

    Args:
        space: the :class:`spaces.nb201.NB201Space` (its ``C``/``N`` are the defaults).
        num_classes: classifier outputs.
        input_shape: ``(channels, height, width)`` of one example.
        C: channels of the first stage (smaller, e.g. 8, makes a cheaper CPU supernet).
        N: cells per stage.
    """

    def __init__(self, space, num_classes: int = 10, input_shape: Sequence[int] = (3, 32, 32),
                 C: int | None = None, N: int | None = None):
        C = int(C or space.C)
        N = int(N or space.N)
        super().__init__(MixedCell, num_classes, input_shape, C=C, N=N)
        self.space = space
        self.C, self.N = C, N
        self.num_classes = int(num_classes)
        self.input_shape = tuple(int(s) for s in input_shape)

    def forward(self, x: torch.Tensor, arch) -> torch.Tensor:  # type: ignore[override]
        """Run the sub-network ``arch`` (an :class:`NB201Arch` or its string) on ``x``."""
        ops = self.space.coerce(arch).ops
        x = self.stem(x)
        for layer in self.cells:
            x = layer(x, ops) if isinstance(layer, MixedCell) else layer(x)
        x = self.lastact(x)
        return self.classifier(torch.flatten(self.pool(x), 1))

    def subnet(self, arch) -> nn.Module:
        """The stand-alone network of ``arch`` built on the supernet's own parameter tensors."""
        arch = self.space.coerce(arch)
        net = build_on_meta(lambda: self.space.build(arch, self.num_classes, self.input_shape,
                                                     C=self.C, N=self.N))
        ops = arch.ops
        edge_pos = {f"{j}_{i}": k for k, (j, i) in enumerate(EDGES)}

        def source_name(name: str) -> str:
            parts = name.split(".")
            # cells.<layer>.edges.<j_i>.<rest>  ->  cells.<layer>.edges.<j_i>.<op>.<rest>
            if len(parts) > 4 and parts[0] == "cells" and parts[2] == "edges":
                parts.insert(4, ops[edge_pos[parts[3]]])
            return ".".join(parts)

        bind_tensors(net, self, source_name, share="same")
        net.arch_str = str(arch)
        return net

    def batchnorms(self) -> Iterator[nn.modules.batchnorm._BatchNorm]:
        for m in self.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                yield m

    @contextlib.contextmanager
    def recalibrating(self) -> Iterator[None]:
        """Reset every BN's running statistics and average them over the batches run inside.

        Inside the block BN layers use a cumulative average (``momentum=None``); run the supernet in
        train mode on a few training batches with one architecture, then evaluate in eval mode.
        """
        with recalibrating(self.batchnorms()):
            yield


@contextlib.contextmanager
def recalibrating(batchnorms) -> Iterator[None]:
    bns = list(batchnorms)
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    try:
        yield
    finally:
        for m, mom in zip(bns, saved):
            m.momentum = mom


# --------------------------------------------------------------------------------------------
# helpers shared with the blocks1d supernet
# --------------------------------------------------------------------------------------------
def build_on_meta(factory):
    """Build a module on the meta device (no memory, no init cost, global RNG untouched)."""
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        return factory()


def leading_slice(src: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """The leading block ``src[:s0, :s1, ...]`` of ``src`` with ``shape`` (a view)."""
    if tuple(src.shape) == tuple(shape):
        return src
    if src.dim() != len(shape) or any(s > t for s, t in zip(shape, src.shape)):
        raise ValueError(f"cannot slice a {tuple(src.shape)} tensor down to {tuple(shape)}")
    return src[tuple(slice(0, s) for s in shape)]


def bind_tensors(net: nn.Module, supernet: nn.Module, source_name, share: str = "same") -> None:
    """Rebind every parameter and buffer of ``net`` to the supernet tensor named ``source_name(n)``.

    ``share="same"`` installs the supernet's very tensor objects (shapes must match);
    ``share="view"`` installs a new ``nn.Parameter`` over the leading slice of the supernet tensor,
    sharing its storage, so in-place changes through either module show in the other.
    """
    sources = dict(supernet.named_parameters())
    buffers = dict(supernet.named_buffers())
    for name, tensor in list(net.named_parameters()) + list(net.named_buffers()):
        src_name = source_name(name)
        is_param = src_name in sources
        src = sources.get(src_name, buffers.get(src_name))
        if src is None:
            raise KeyError(f"supernet has no tensor {src_name!r} for sub-network tensor {name!r}")
        owner_name, _, attr = name.rpartition(".")
        owner = net.get_submodule(owner_name) if owner_name else net
        if share == "same":
            if tuple(src.shape) != tuple(tensor.shape):
                raise ValueError(f"shape mismatch for {name!r}: {tuple(tensor.shape)} vs "
                                 f"{tuple(src.shape)}")
            new = src
        else:
            view = leading_slice(src.detach(), tensor.shape)
            new = nn.Parameter(view, requires_grad=src.requires_grad) if is_param else view
        if is_param:
            setattr(owner, attr, new)  # setattr keeps RNN flat-weight lists in sync
        else:
            owner._buffers[attr] = new
