"""A weight-sharing supernet for the ``blocks1d`` space (stacks of 1-8 blocks on 1-D signals).

Layout (``W = 128``, the widest choice; ``C = max(input channels, W)``):

- 8 block slots; each slot holds, built by :func:`spaces.blocks1d.make_block`, one module per op:
  ``conv3/conv5/conv7/dilconv3/sepconv5/mlp`` once at full size ``C -> W``. A block of width ``w``
  reading ``c`` channels uses the leading slice of every tensor (conv weights ``[:w, :c]``, the
  depthwise kernel ``[:c]``, batch-norm weights and running statistics ``[:w]``): channel slicing as
  in Once-for-All (Cai et al., ICLR 2020).
- ``lstm``, ``gru`` and ``attn`` keep **one module per width** (16/32/64/128), because slicing
  the gate blocks of a recurrent cell or the heads of an attention layer would not give the module
  :func:`make_block` builds; only their input projections (``weight_ih``, the attention ``proj``,
  always present here) are sliced to the input width ``[:, :c]``.
- one 1x1 skip projection per slot (``C -> W``, sliced ``[:w, :c]``; identity when widths agree);
- one linear head over the flattened ``(W, L)`` output, sliced to the first ``w * L`` inputs.

``supernet(x, arch)`` runs each block of ``arch`` as its stand-alone module (from a small cache of
meta-device templates) on the sliced supernet tensors, so gradients flow into the shared weights.
``supernet.subnet(arch)`` builds the stand-alone :class:`spaces.blocks1d.Blocks1DNetwork` and
installs, as its parameters, ``nn.Parameter`` views on the supernet's storage (same ``state_dict``
keys as ``space.build(arch)``); in-place changes through it show in the supernet.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from spaces._supernet_nb201 import bind_tensors, build_on_meta, leading_slice, recalibrating
from spaces.blocks1d import MAX_BLOCKS, OPS, WIDTHS, _Attention, make_block

__all__ = ["Blocks1DSupernet"]

_PER_WIDTH = ("lstm", "gru", "attn")


def _attention_block(c_in: int, width: int) -> nn.Module:
    block = _Attention(c_in, width)
    if isinstance(block.proj, nn.Identity):  # the supernet always needs the projection
        block.proj = nn.Conv1d(c_in, width, 1)
    return block


class Blocks1DSupernet(nn.Module):
    """Shared weights for every block stack of :class:`spaces.blocks1d.Blocks1DSpace`.

    Args:
        space: the ``blocks1d`` space.
        num_classes: classifier outputs.
        input_shape: ``(channels, length)`` of one example.
        max_blocks: block slots (default: the space's ``max_blocks``).
    """

    def __init__(self, space, num_classes: int = 10, input_shape: Sequence[int] = (1, 40),
                 max_blocks: int | None = None):
        super().__init__()
        self.space = space
        self.num_classes = int(num_classes)
        self.input_shape = tuple(int(s) for s in input_shape)
        self.in_channels, self.length = self.input_shape[0], self.input_shape[-1]
        self.max_blocks = int(max_blocks or getattr(space, "max_blocks", MAX_BLOCKS))
        ops = tuple(getattr(space, "ops", OPS))
        widths = tuple(getattr(space, "widths", WIDTHS))
        W = max(widths)
        C = max(self.in_channels, W)
        self.max_width, self.max_in = W, C
        self.slots = nn.ModuleList()
        self.skips = nn.ParameterList()
        for _ in range(self.max_blocks):
            slot = nn.ModuleDict()
            for op in ops:
                if op in _PER_WIDTH:
                    slot[op] = nn.ModuleDict({
                        str(w): (_attention_block(C, w) if op == "attn" else make_block(op, C, w))
                        for w in widths})
                else:
                    slot[op] = make_block(op, C, W)
            self.slots.append(slot)
            skip = nn.Conv1d(C, W, 1, bias=False)
            self.skips.append(skip.weight)
        self.head = nn.Linear(W * self.length, self.num_classes)
        self._templates: dict[tuple[str, int, int], nn.Module] = {}
        self._bn_momentum: float | None = 0.1

    # -- forward --------------------------------------------------------------------------------
    def _source(self, slot: int, op: str, width: int) -> nn.Module:
        mod = self.slots[slot][op]
        return mod[str(width)] if op in _PER_WIDTH else mod

    def _template(self, op: str, c_in: int, width: int) -> nn.Module:
        key = (op, c_in, width)
        tpl = self._templates.get(key)
        if tpl is None:
            tpl = build_on_meta(lambda: make_block(op, c_in, width))
            for m in tpl.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.momentum = self._bn_momentum
            self._templates[key] = tpl
        tpl.train(self.training)
        return tpl

    def _run_block(self, slot: int, op: str, c_in: int, width: int,
                   x: torch.Tensor) -> torch.Tensor:
        tpl = self._template(op, c_in, width)
        src = self._source(slot, op, width)
        params = _named_tensors(src)  # an attn block with c_in == width uses no projection
        shapes = _named_tensors(tpl)
        args = {name: leading_slice(params[name], t.shape) for name, t in shapes.items()}
        if x.is_cuda and op in ("lstm", "gru"):  # cuDNN wants dense weights (copies keep grads)
            args = {k: v.contiguous() for k, v in args.items()}
        return functional_call(tpl, args, (x,))

    def forward(self, x: torch.Tensor, arch) -> torch.Tensor:
        """Run the sub-network ``arch`` (a :class:`Blocks1DArch` or its string) on ``x``."""
        arch = self.space.coerce(arch)
        if len(arch.blocks) > self.max_blocks:
            from prednas.errors import InvalidArchitectureError

            raise InvalidArchitectureError(
                f"{arch} has {len(arch.blocks)} blocks; this supernet has {self.max_blocks} slots")
        if x.dim() == 2:
            x = x.unsqueeze(1)
        nodes = [x]
        widths = [self.in_channels]
        for i, b in enumerate(arch.blocks, start=1):
            out = self._run_block(i - 1, b.op, widths[-1], b.width, nodes[-1])
            if b.skip is not None:
                src = widths[b.skip]
                s = nodes[b.skip]
                if src != b.width:
                    s = F.conv1d(s, self.skips[i - 1][:b.width, :src])
                out = out + s
            nodes.append(out)
            widths.append(b.width)
        flat = torch.flatten(nodes[-1], 1)
        return F.linear(flat, self.head.weight[:, :flat.shape[1]], self.head.bias)

    # -- sub-networks ---------------------------------------------------------------------------
    def subnet(self, arch) -> nn.Module:
        """The stand-alone network of ``arch`` whose parameters are views of the supernet's."""
        arch = self.space.coerce(arch)
        net = build_on_meta(lambda: self.space.build(arch, self.num_classes, self.input_shape))
        ops = {str(i): b for i, b in enumerate(arch.blocks)}

        def source_name(name: str) -> str:
            parts = name.split(".")
            if parts[0] == "blocks":
                b = ops[parts[1]]
                rest = parts[2:]
                prefix = ["slots", parts[1], b.op] + ([str(b.width)] if b.op in _PER_WIDTH else [])
                return ".".join(prefix + rest)
            if parts[0] == "skip_proj":  # skip_proj.<i>.weight, i is 1-based
                return f"skips.{int(parts[1]) - 1}"
            return name

        bind_tensors(net, self, source_name, share="view")
        return net

    # -- batch-norm recalibration -----------------------------------------------------------
    def batchnorms(self) -> Iterator[nn.modules.batchnorm._BatchNorm]:
        for m in list(self.modules()) + [m for t in self._templates.values() for m in t.modules()]:
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                yield m

    @contextlib.contextmanager
    def recalibrating(self) -> Iterator[None]:
        """Reset every BN's running statistics and average them over the batches run inside."""
        self._bn_momentum = None
        try:
            with recalibrating(self.batchnorms()):
                yield
        finally:
            self._bn_momentum = 0.1
            for t in self._templates.values():
                for m in t.modules():
                    if isinstance(m, nn.modules.batchnorm._BatchNorm):
                        m.momentum = 0.1


def _named_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    out = dict(module.named_parameters())
    out.update(module.named_buffers())
    return out
