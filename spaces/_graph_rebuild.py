"""Rebuilding the layers of a user's network for :mod:`spaces.from_model`.

A candidate network is the user's model, deep-copied, with some layers replaced. Which shapes the
replacements need is only known once the data reaches them (a wider convolution changes the
``BatchNorm`` after it, a flatten-linear head's ``in_features``, a GRU's ``input_size``...). So
every layer that is a slot, or whose parameters depend on its input width, is first wrapped in a
:class:`Pending` module; one forward pass on the example input builds each layer from the input it
actually receives, in execution order, and :func:`assemble` then swaps the built layers in.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

__all__ = ["SLOT_TYPES", "ADAPTABLE_TYPES", "Pending", "Assembler", "kind_of", "rebuild",
           "shapes_of", "reset_parameters", "same_padding", "module_kwargs", "run_model",
           "one_thread", "lcm"]

#: exact module types that can become slots, by the slot kind they make
SLOT_TYPES: dict[type, str] = {
    nn.Conv1d: "conv", nn.Conv2d: "conv", nn.Linear: "linear", nn.LSTM: "rnn", nn.GRU: "rnn",
    nn.MultiheadAttention: "mha", nn.TransformerEncoderLayer: "tel",
}
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.InstanceNorm1d, nn.InstanceNorm2d,
          nn.InstanceNorm3d)
#: exact module types whose parameters are rebuilt when the width of their input changes
ADAPTABLE_TYPES: tuple[type, ...] = (*SLOT_TYPES, nn.Conv3d, *_NORMS, nn.LayerNorm, nn.GroupNorm,
                                     nn.PReLU)


def kind_of(module: nn.Module) -> str | None:
    """The slot kind of ``module`` (exact type match), or ``None``."""
    kind = SLOT_TYPES.get(type(module))
    if kind == "conv" and module.groups != 1:
        return None  # grouped / depthwise convolutions follow their input instead
    if kind == "rnn" and module.proj_size:
        return None
    return kind


def module_kwargs(module: nn.Module) -> dict[str, Any]:
    """``device``/``dtype`` of a module's first parameter, for building its replacement."""
    for p in module.parameters():
        return {"device": p.device, "dtype": p.dtype}
    return {}


def same_padding(conv: nn.Module) -> bool:
    """Whether a convolution keeps the length of its input ("same" padding, odd kernel)."""
    if conv.padding == "same":
        return True
    if isinstance(conv.padding, str):
        return False
    return all(k % 2 == 1 and p == d * (k - 1) // 2
               for k, p, d in zip(conv.kernel_size, conv.padding, conv.dilation))


# --------------------------------------------------------------------------------------------
# LSTM <-> GRU with the interface of the layer they replace
# --------------------------------------------------------------------------------------------
class LSTMAsGRU(nn.Module):
    """An LSTM behind a GRU's interface: ``forward(x, h0=None) -> (output, h_n)``."""

    def __init__(self, **kwargs):
        super().__init__()
        self.rnn = nn.LSTM(**kwargs)

    def forward(self, x, hx=None):
        if hx is not None:
            hx = (hx, torch.zeros_like(hx))
        out, (h, _) = self.rnn(x, hx)
        return out, h


class GRUAsLSTM(nn.Module):
    """A GRU behind an LSTM's interface: ``forward(x, (h0, c0)=None) -> (output, (h_n, c_n))``;
    ``c_n`` is zeros (a GRU has no cell state)."""

    def __init__(self, **kwargs):
        super().__init__()
        self.rnn = nn.GRU(**kwargs)

    def forward(self, x, hx=None):
        if hx is not None:
            hx = hx[0]
        out, h = self.rnn(x, hx)
        return out, (h, torch.zeros_like(h))


# --------------------------------------------------------------------------------------------
# one layer, rebuilt for the input it receives
# --------------------------------------------------------------------------------------------
def _first_tensor(args: Sequence, kwargs: Mapping, *names: str):
    if args:
        return args[0]
    for n in names:
        if n in kwargs:
            return kwargs[n]
    return next(iter(kwargs.values()), None)


def _features(x) -> int:
    return int((x.data if isinstance(x, PackedSequence) else x).shape[-1])


def _channels(x: torch.Tensor, spatial: int) -> int:
    return int(x.shape[-(spatial + 1)])


def _conv(m: nn.Module, x: torch.Tensor, choice: Mapping | None) -> nn.Module:
    nd = len(m.kernel_size)
    c_in = _channels(x, nd)
    choice = dict(choice or {})
    if choice.get("identity"):
        return nn.Identity()
    k = int(choice.get("kernel", m.kernel_size[0]))
    c_out = int(choice.get("out", m.out_channels))
    sep = bool(choice.get("sep", False))
    if m.groups != 1:  # depthwise / grouped: channels follow the input
        if m.groups == m.in_channels:
            mult = m.out_channels // m.in_channels
            groups, c_out = c_in, c_in * mult
        else:
            groups = m.groups
        if c_in == m.in_channels and c_out == m.out_channels:
            return m
        return type(m)(c_in, c_out, m.kernel_size, m.stride, m.padding, m.dilation, groups,
                       m.bias is not None, m.padding_mode, **module_kwargs(m))
    if (c_in == m.in_channels and c_out == m.out_channels and k == m.kernel_size[0]
            and not sep):
        return m
    if isinstance(m.padding, str):
        padding: Any = m.padding
    elif same_padding(m):
        padding = tuple(d * (k - 1) // 2 for d in m.dilation)
    else:
        padding = m.padding
    kw = module_kwargs(m)
    cls = type(m)
    if not sep:
        return cls(c_in, c_out, k, m.stride, padding, m.dilation, 1, m.bias is not None,
                   m.padding_mode, **kw)
    return nn.Sequential(
        cls(c_in, c_in, k, m.stride, padding, m.dilation, c_in, False, m.padding_mode, **kw),
        cls(c_in, c_out, 1, bias=m.bias is not None, **kw))


def _linear(m: nn.Linear, x: torch.Tensor, choice: Mapping | None) -> nn.Module:
    c_in, c_out = _features(x), int((choice or {}).get("out", m.out_features))
    if c_in == m.in_features and c_out == m.out_features:
        return m
    return nn.Linear(c_in, c_out, m.bias is not None, **module_kwargs(m))


def _rnn(m: nn.Module, x, choice: Mapping | None) -> nn.Module:
    choice = dict(choice or {})
    own = "lstm" if isinstance(m, nn.LSTM) else "gru"
    cell = choice.get("cell", own)
    hidden = int(choice.get("hidden", m.hidden_size))
    c_in = _features(x)
    if c_in == m.input_size and hidden == m.hidden_size and cell == own:
        return m
    kw = dict(input_size=c_in, hidden_size=hidden, num_layers=m.num_layers, bias=m.bias,
              batch_first=m.batch_first, dropout=m.dropout, bidirectional=m.bidirectional,
              **module_kwargs(m))
    if cell == own:
        return type(m)(**kw)
    return LSTMAsGRU(**kw) if cell == "lstm" else GRUAsLSTM(**kw)


def _mha(m: nn.MultiheadAttention, args: Sequence, kwargs: Mapping,
         choice: Mapping | None) -> nn.Module:
    q = _first_tensor(args, kwargs, "query")
    k = args[1] if len(args) > 1 else kwargs.get("key", q)
    v = args[2] if len(args) > 2 else kwargs.get("value", k)
    embed, kdim, vdim = int(q.shape[-1]), int(k.shape[-1]), int(v.shape[-1])
    heads = int((choice or {}).get("heads", m.num_heads))
    if (embed, kdim, vdim, heads) == (m.embed_dim, m.kdim, m.vdim, m.num_heads):
        return m
    return nn.MultiheadAttention(
        embed, heads, dropout=m.dropout, bias=m.in_proj_bias is not None,
        add_bias_kv=m.bias_k is not None, add_zero_attn=m.add_zero_attn,
        kdim=kdim if kdim != embed else None, vdim=vdim if vdim != embed else None,
        batch_first=m.batch_first, **module_kwargs(m))


def _tel(m: nn.TransformerEncoderLayer, x: torch.Tensor, choice: Mapping | None) -> nn.Module:
    choice = dict(choice or {})
    d = int(x.shape[-1])
    heads = int(choice.get("heads", m.self_attn.num_heads))
    ff = int(choice.get("ff", m.linear1.out_features))
    if (d, heads, ff) == (m.self_attn.embed_dim, m.self_attn.num_heads, m.linear1.out_features):
        return m
    return nn.TransformerEncoderLayer(
        d, heads, dim_feedforward=ff, dropout=m.dropout.p, activation=m.activation,
        layer_norm_eps=m.norm1.eps, batch_first=m.self_attn.batch_first, norm_first=m.norm_first,
        bias=m.linear1.bias is not None, **module_kwargs(m))


def _norm(m: nn.Module, x: torch.Tensor) -> nn.Module:
    kw = module_kwargs(m)
    if isinstance(m, nn.LayerNorm):
        shape = tuple(int(s) for s in x.shape[-len(m.normalized_shape):])
        if shape == tuple(m.normalized_shape):
            return m
        return nn.LayerNorm(shape, m.eps, m.elementwise_affine, bias=getattr(m, "bias", None)
                            is not None, **kw)
    if isinstance(m, nn.GroupNorm):
        c = int(x.shape[1])
        if c == m.num_channels:
            return m
        return nn.GroupNorm(m.num_groups, c, m.eps, m.affine, **kw)
    if isinstance(m, nn.PReLU):
        c = int(x.shape[1]) if x.dim() > 1 else 1
        if m.num_parameters in (1, c):
            return m
        return nn.PReLU(c, **kw)
    # batch / instance norms: channels are dim 1 (dim 0 for an unbatched instance norm input)
    spatial = {nn.BatchNorm1d: None, nn.InstanceNorm1d: 1, nn.BatchNorm2d: 2, nn.InstanceNorm2d: 2,
               nn.BatchNorm3d: 3, nn.InstanceNorm3d: 3}[type(m)]
    c = int(x.shape[1]) if spatial is None else _channels(x, spatial)
    if c == m.num_features:
        return m
    return type(m)(c, m.eps, m.momentum, m.affine, m.track_running_stats, **kw)


def rebuild(m: nn.Module, choice: Mapping | None, args: Sequence, kwargs: Mapping) -> nn.Module:
    """``m`` itself when nothing changes, else a new layer for the input it receives and the
    slot ``choice`` (keys ``kernel``, ``out``, ``sep``, ``identity``, ``cell``, ``hidden``,
    ``heads``, ``ff``)."""
    if isinstance(m, nn.MultiheadAttention):
        return _mha(m, args, kwargs, choice)
    x = _first_tensor(args, kwargs, "input", "x", "src")
    if isinstance(m, nn.modules.conv._ConvNd):
        return _conv(m, x, choice)
    if isinstance(m, nn.Linear):
        return _linear(m, x, choice)
    if isinstance(m, (nn.LSTM, nn.GRU)):
        return _rnn(m, x, choice)
    if isinstance(m, nn.TransformerEncoderLayer):
        return _tel(m, x, choice)
    return _norm(m, x)


class Pending(nn.Module):
    """Stands for a layer until the first forward call shows what input it receives."""

    def __init__(self, original: nn.Module, choice: Mapping | None):
        super().__init__()
        self.original = original
        self.choice = choice
        self.built: nn.Module | None = None

    def forward(self, *args, **kwargs):
        if self.built is None:
            self.built = rebuild(self.original, self.choice, args, kwargs)
        return self.built(*args, **kwargs)

    def __getattr__(self, name: str):  # user code reading e.g. ``self.conv.out_channels``
        try:
            return super().__getattr__(name)
        except AttributeError:
            modules = self.__dict__["_modules"]
            target = modules.get("built")
            return getattr(modules["original"] if target is None else target, name)


def _wrap(parent: nn.Module, prefix: str, choices: Mapping[str, Mapping | None],
          out: list[tuple[nn.Module, str, Pending]], seen: set[int]) -> None:
    for attr, child in list(parent._modules.items()):
        if child is None:
            continue
        name = f"{prefix}{attr}"
        if type(child) in ADAPTABLE_TYPES:
            if id(child) in seen:  # a shared layer: wrap it once, point every name at it
                pend = next(p for _, _, p in out if p.original is child)
            else:
                seen.add(id(child))
                pend = Pending(child, choices.get(name))
            setattr(parent, attr, pend)
            out.append((parent, attr, pend))
        else:
            _wrap(child, f"{name}.", choices, out, seen)


def run_model(model: nn.Module, example: tuple) -> Any:
    """One forward pass in eval mode without gradients (training mode is restored)."""
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(*example)
    finally:
        model.train(was)


def reset_parameters(model: nn.Module) -> None:
    """Re-initialise every layer that knows how (``reset_parameters``), running stats included."""
    mods = list(model.modules())
    for m in mods:
        fn = getattr(m, "reset_parameters", None)
        if callable(fn):
            fn()
    for m in mods:  # after their children: attention zeroes its output projection's bias
        fn = getattr(m, "_reset_parameters", None)
        if callable(fn):
            fn()


def shapes_of(out) -> Any:
    if isinstance(out, torch.Tensor):
        return tuple(out.shape)
    if isinstance(out, (list, tuple)):
        return tuple(shapes_of(o) for o in out)
    if isinstance(out, Mapping):
        return {k: shapes_of(v) for k, v in out.items()}
    return type(out).__name__


@contextlib.contextmanager
def one_thread():
    """Run torch on one intra-op thread inside the block (restored afterwards): the building
    passes work on two examples, where more threads only contend for the cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


class Assembler:
    """Builds variants of a network: deep copy, wrap, one forward pass, unwrap.

    Args:
        template: the user's network, on the CPU (left untouched).
        example: the example inputs (a tuple of positional arguments), on the CPU.
    """

    def __init__(self, template: nn.Module, example: tuple):
        self.template = template
        self.example = example

    def assemble(self, choices: Mapping[str, Mapping | None], *, init: bool = True,
                 check: Callable[[Any], None] | None = None) -> nn.Module:
        """A copy of the template whose slot layers follow ``choices`` (layer name -> choice)
        and whose other layers are rebuilt where their input width changed.

        Args:
            choices: slot choices; empty gives a plain copy.
            init: re-initialise every layer (a fresh network in training mode); ``False`` for
                shape checks.
            check: called with the output of the building pass (raise to reject).
        """
        model = copy.deepcopy(self.template)
        if choices or check is not None:
            wrapped: list[tuple[nn.Module, str, Pending]] = []
            if choices:
                _wrap(model, "", choices, wrapped, set())
            with one_thread():
                out = run_model(model, self.example)
            if check is not None:
                check(out)
            for parent, attr, pend in wrapped:
                setattr(parent, attr, pend.built if pend.built is not None else pend.original)
        if init:
            reset_parameters(model)
            model.train()
        return model


def lcm(*values: int) -> int:
    out = 1
    for v in values:
        out = out * int(v) // math.gcd(out, int(v))
    return out
