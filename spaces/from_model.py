"""A search space generated from a user's own PyTorch network: :func:`from_model`.

The network is traced (``torch.fx``; the module tree where tracing fails), and each replaceable
layer becomes a **slot** with candidate choices:

==========================  =======================================================================
layer                       choices (``choices=`` keys)
==========================  =======================================================================
``Conv1d``/``Conv2d``       kernel 3/5/7 around the original, "same" padding kept (``kernel``);
                            width 0.5/0.75/1.0 of the out-channels (``width``); depthwise-separable
                            instead of dense (``separable``); identity where stride 1 and
                            in == out channels (``identity``)
``Linear`` (hidden)         width 0.5/0.75/1.0 (``width``); not the classifier
``LSTM``/``GRU``            hidden size 0.5/0.75/1.0 (``hidden``); LSTM <-> GRU (``cell``)
``MultiheadAttention``      number of heads, divisors of the embedding width (``heads``)
``TransformerEncoderLayer`` number of heads (``heads``); feed-forward width 0.5/1/2 (``ffn``)
==========================  =======================================================================

Width changes propagate: the layers that read a changed layer (``BatchNorm``, the next layer, a
flatten-``Linear`` head) are rebuilt for the width they receive. Layers whose outputs meet in a
residual ``add`` share one width choice, a **residual group** named ``res@<first layer>``. Every
candidate value is tried once on the example input when the space is generated; values that break
the network (a hard-coded ``view``, a changed output shape...) are not offered, so sampled
architectures build. The original value of every choice is always offered, and the original
network is :meth:`ModelSpace.default_arch`.

An architecture is one choice per slot; its text form, in execution order::

    features.0=k5,w0.75|features.3=k3,w1.0,sep|gru=gru,h1.0|res@conv1=w0.5|layer1.0.conv1=id

(``k`` kernel, ``w`` width, ``sep`` depthwise-separable, ``id`` identity, ``lstm``/``gru`` cell,
``h`` hidden-size multiplier, ``heads`` attention heads, ``ff`` feed-forward multiplier). Slots
missing from the text take their original choice.

>>> import torch, spaces
>>> from torch import nn
>>> net = nn.Sequential(nn.Conv1d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(320, 10))
>>> space = spaces.from_model(net, torch.randn(2, 1, 40))
>>> str(space.default_arch())
'0=k3,w1.0'
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from prednas.errors import InvalidArchitectureError, InvalidParameterError, UnknownNameError, choices_message
from spaces._graph_choices import CELLS, layer_spec, parse_choices, sorted_with
from spaces._graph_flow import check_static_flow
from spaces._graph_rebuild import Assembler, lcm, same_padding, shapes_of
from spaces._graph_trace import Analysis, Layer, analyse
from spaces.base import Space

__all__ = ["from_model", "ModelSpace", "ModelArch", "Slot"]

log = logging.getLogger(__name__)

_TYPE = {"conv": "conv", "linear": "linear", "rnn": "rnn", "mha": "attn", "tel": "transformer"}


# --------------------------------------------------------------------------------------------
# architectures and slots
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelArch:
    """One choice label per slot, in the space's slot order."""

    choices: tuple[tuple[str, str], ...]

    def __str__(self) -> str:
        return "|".join(f"{name}={label}" for name, label in self.choices)

    def __getitem__(self, slot: str) -> str:
        for name, label in self.choices:
            if name == slot:
                return label
        raise UnknownNameError("slot", slot, [n for n, _ in self.choices])

    def as_dict(self) -> dict[str, str]:
        return dict(self.choices)


@dataclass(frozen=True, eq=False)
class Slot:
    """A decision of a generated space: one layer's choices, or a residual group's width.

    Attributes:
        name: the layer's module name, or ``res@<first member>`` for a residual group.
        kind: ``conv``, ``linear``, ``rnn``, ``mha``, ``tel`` or ``group``.
        layer_type: the class name of the original layer (``""`` for a group).
        labels: the choice labels, as written in architecture text.
        values: per label, the choice as a dict (``kernel``, ``width``, ``sep``, ``cell``,
            ``hidden``, ``heads``, ``ffn``; ``{"identity": True}`` for the identity).
        default: index of the original network's choice.
        members: the layers a group's width applies to (the layer itself for a layer slot).
        dims: per dimension, its values in order (what the one-hot encoding lays out).
        identity: whether the identity is one of the choices.
    """

    name: str
    kind: str
    layer_type: str
    labels: tuple[str, ...]
    values: tuple[dict, ...]
    default: int
    members: tuple[str, ...]
    dims: tuple[tuple[str, tuple], ...]
    identity: bool

    @property
    def default_label(self) -> str:
        return self.labels[self.default]


def _fmt(dim: str, value) -> str:
    if dim == "kernel":
        return f"k{value}"
    if dim == "width":
        return f"w{float(value)}"
    if dim == "hidden":
        return f"h{float(value)}"
    if dim == "sep":
        return "sep" if value else ""
    if dim == "cell":
        return str(value)
    if dim == "heads":
        return f"heads{value}"
    if dim == "ffn":
        return f"ff{float(value)}"
    raise AssertionError(dim)  # pragma: no cover


_LEADING = {"conv": "kernel", "linear": "width", "rnn": "cell", "mha": "heads", "tel": "heads",
            "group": "width"}
_PART = re.compile(r"^(k|w|h|heads|ff)(\d+(?:\.\d*)?)$")
_PART_DIM = {"k": "kernel", "w": "width", "h": "hidden", "heads": "heads", "ff": "ffn"}


@dataclass
class _Draft:
    """A slot while the space is generated: dimensions that survive the trials."""

    name: str
    kind: str
    layer: Layer | None
    members: list[str]
    dims: dict[str, list]
    original: dict[str, Any]
    identity: bool = False
    group: int | None = None
    dropped: list[tuple[str, str]] = field(default_factory=list)

    def label(self, value: Mapping) -> str:
        if value.get("identity"):
            return "id"
        parts = []
        for dim, opts in self.dims.items():
            if dim == _LEADING[self.kind] or len(opts) > 1:
                part = _fmt(dim, value[dim])
                if part:
                    parts.append(part)
        return ",".join(parts)

    def freeze(self) -> Slot:
        values = [dict(zip(self.dims, combo)) for combo in itertools.product(*self.dims.values())]
        if self.identity:
            values.append({"identity": True})
        labels = tuple(self.label(v) for v in values)
        layer_type = type(self.layer.module).__name__ if self.layer is not None else ""
        dims = tuple((d, tuple(o)) for d, o in self.dims.items())
        return Slot(self.name, self.kind, layer_type, labels, tuple(values),
                    values.index(self.original), tuple(self.members), dims, self.identity)

    @property
    def size(self) -> int:
        n = 1
        for opts in self.dims.values():
            n *= len(opts)
        return n + int(self.identity)


# --------------------------------------------------------------------------------------------
# the space
# --------------------------------------------------------------------------------------------
@dataclass
class _Wiring:
    """How slot choices become layer rebuilds: layers, width groups and their channel tables."""

    layers: dict[str, Layer]
    group_of: dict[str, int]  # producer layer -> width group
    channels: dict[int, dict[float, int]]  # group -> width multiplier -> channels
    group_names: dict[int, str]  # residual group (several members) -> its slot name

    def group_slot(self, layer: str) -> str | None:
        """The residual-group slot that holds ``layer``'s width, if any."""
        g = self.group_of.get(layer)
        return None if g is None else self.group_names.get(g)

    def width(self, layer: str, values: Mapping[str, Mapping]) -> int:
        own = values.get(layer, {})
        group = self.group_slot(layer)
        mult = values[group]["width"] if group is not None else own.get(
            "width", own.get("hidden", 1.0))
        return self.channels[self.group_of[layer]][float(mult)]

    def rel_width(self, layer: str, values: Mapping[str, Mapping]) -> float:
        """Output width relative to the original (1 for an identity or a width-keeping layer)."""
        lay = self.layers[layer]
        if values.get(layer, {}).get("identity") or not lay.producer:
            return 1.0
        return self.width(layer, values) / lay.base

    def plan(self, values: Mapping[str, Mapping]) -> dict[str, dict]:
        """Layer name -> rebuild choice, from slot name -> choice values (every slot)."""
        plan: dict[str, dict] = {}
        for name, layer in self.layers.items():
            own = values.get(name, {})
            if own.get("identity"):
                plan[name] = {"identity": True}
                continue
            c: dict[str, Any] = {}
            if layer.producer:
                width = self.width(name, values)
                if layer.kind == "rnn":
                    c["hidden"] = width // layer.directions
                else:
                    c["out"] = width
            for key in ("kernel", "sep", "cell", "heads"):
                if key in own:
                    c[key] = own[key]
            if "ffn" in own:
                c["ff"] = max(1, int(round(layer.module.linear1.out_features * own["ffn"])))
            plan[name] = c
        return plan


class ModelSpace(Space):
    """The search space of a user's network; made by :func:`from_model`, not registered by name.

    Attributes:
        model_name: the class name of the user's network.
        slots: the decisions, in execution order (residual groups before their first layer).
        input_shape: the per-example input shape (the example input's, without the batch).
        num_classes: the width of the network's output.
        trace_mode: ``"fx"`` (data flow from the traced graph) or ``"modules"`` (module tree).
        trace_error: why ``torch.fx`` could not be used (``None`` when it was).
        dropped: ``(slot, value, reason)`` for every candidate value the trials rejected (the
            value as in architecture text: ``w0.5``, ``k7``, ``sep``, ``id``...).
    """

    encodings = ("onehot", "path")

    def __init__(self, assembler: Assembler, analysis: Analysis, drafts: list[_Draft],
                 wiring: _Wiring):
        self._assembler = assembler
        example = assembler.example
        self.model_name = type(assembler.template).__name__
        self._wiring = wiring
        self.trace_mode = analysis.mode
        self.trace_error = analysis.reason
        self._fixed = {d.name: d.original for d in drafts}
        kept = [d for d in drafts if d.size > 1]
        self.slots: tuple[Slot, ...] = tuple(d.freeze() for d in kept)
        self.dropped = [(d.name, c, r) for d in drafts for c, r in d.dropped]
        self._index = {s.name: i for i, s in enumerate(self.slots)}
        self._label_index = [{lab: j for j, lab in enumerate(s.labels)} for s in self.slots]
        self.input_shape = tuple(int(s) for s in example[0].shape[1:])
        out = analysis.output
        self.num_classes = int(out.shape[1])
        # graph: a node per layer slot, edges contracted through the layers that are not slots
        self._graph_slots = [s for s in self.slots if s.kind != "group"]
        self.edges = self._contract(analysis.edges)
        types: list[str] = []
        for s in self._graph_slots:
            for v in s.values:
                t = self._node_type(s, v)
                if t not in types:
                    types.append(t)
        self.node_types = ("input", "output", *types)
        self._onehot_layout()
        table = [[s.name, list(s.labels)] for s in self.slots]
        digest = hashlib.sha1(json.dumps(
            [self.model_name, list(self.input_shape), self.num_classes, table]).encode())
        self.name = f"from_model:{self.model_name}:{digest.hexdigest()[:8]}"

    # -- description ----------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Number of architectures in the space."""
        n = 1
        for s in self.slots:
            n *= len(s.labels)
        return n

    def __repr__(self) -> str:
        return f"ModelSpace({self.name!r}, slots={len(self.slots)}, size={self.size})"

    def describe(self) -> str:
        """A table of the slots (the original choice as "now"), their dimensions, the residual
        groups' members, and the values the generation-time trials rejected (with the reason)."""
        lines = [f"{self.name}: {len(self.slots)} slots, {self.size:,} architectures "
                 f"(traced with {'torch.fx' if self.trace_mode == 'fx' else 'the module tree'})"]
        if self.trace_error:
            lines.append(f"  torch.fx could not trace the network: {self.trace_error}")
        for s in self.slots:
            what = f"width of {', '.join(s.members)}" if s.kind == "group" else s.layer_type
            dims = [f"{d} {'/'.join(_fmt(d, v) or 'dense' for v in opts)}"
                    for d, opts in s.dims if len(opts) > 1]
            if s.identity:
                dims.append("or id")
            lines.append(f"  {s.name} ({what}, now {s.default_label}): {'; '.join(dims)}")
        for name, choice, reason in self.dropped:
            lines.append(f"  not offered: {name} {choice} ({reason})")
        return "\n".join(lines)

    # -- text -----------------------------------------------------------------------------------
    def is_arch(self, obj: object) -> bool:
        if not isinstance(obj, ModelArch) or len(obj.choices) != len(self.slots):
            return False
        return all(n == s.name and lab in idx for (n, lab), s, idx
                   in zip(obj.choices, self.slots, self._label_index))

    def _label(self, slot: Slot, label: str, text: str) -> str:
        if label in self._label_index[self._index[slot.name]]:
            return label
        parts = [p.strip() for p in label.split(",") if p.strip()]
        norm: dict[str, str] = {}
        for p in parts:
            m = _PART.match(p)
            if m:
                dim = _PART_DIM[m.group(1)]
                if dim == "width" and slot.kind == "rnn":
                    dim = "hidden"
                value = m.group(2)
                norm[dim] = _fmt(dim, int(value) if dim in ("kernel", "heads") else float(value))
            else:
                norm[{"sep": "sep", "lstm": "cell", "gru": "cell"}.get(p, p)] = p
        order = [d for d, _ in slot.dims]
        cand = ",".join(norm[d] for d in order if d in norm)
        if set(norm) <= set(order) and cand in self._label_index[self._index[slot.name]]:
            return cand
        raise InvalidArchitectureError(choices_message(
            f"Unknown choice {label!r} for slot {slot.name!r} in {text!r}", label, slot.labels))

    def parse(self, text: str) -> ModelArch:
        """Parse ``slot=choice|slot=choice|...``; missing slots take the original choice."""
        if not isinstance(text, str) or not text.strip():
            raise InvalidArchitectureError(
                f"Malformed architecture {text!r} of space {self.name!r}: expected "
                f"'slot=choice|...', e.g. {str(self.default_arch())!r}")
        given: dict[str, str] = {}
        for tok in text.strip().split("|"):
            name, eq, label = tok.partition("=")
            name, label = name.strip(), label.strip()
            if not eq or not name or not label:
                raise InvalidArchitectureError(
                    f"Malformed slot {tok!r} in {text!r}: expected 'slot=choice', e.g. "
                    f"{str(self.default_arch()).split('|')[0]!r}")
            if name not in self._index:
                raise InvalidArchitectureError(choices_message(
                    f"Unknown slot {name!r} in {text!r}", name, list(self._index)))
            if name in given:
                raise InvalidArchitectureError(f"Slot {name!r} appears twice in {text!r}")
            given[name] = self._label(self.slots[self._index[name]], label, text)
        return ModelArch(tuple((s.name, given.get(s.name, s.default_label)) for s in self.slots))

    # -- sampling and edits ---------------------------------------------------------------------
    def default_arch(self) -> ModelArch:
        """The user's network as it is."""
        return ModelArch(tuple((s.name, s.default_label) for s in self.slots))

    def sample(self, rng: np.random.Generator) -> ModelArch:
        """Each slot's choice uniformly and independently."""
        return ModelArch(tuple((s.name, s.labels[int(rng.integers(len(s.labels)))])
                               for s in self.slots))

    def _with(self, arch: ModelArch, i: int, label: str) -> ModelArch:
        items = list(arch.choices)
        items[i] = (items[i][0], label)
        return ModelArch(tuple(items))

    def mutate(self, arch: ModelArch, rng: np.random.Generator) -> ModelArch:
        """Another choice, uniformly, for one slot drawn uniformly."""
        arch = self.coerce(arch)
        i = int(rng.integers(len(self.slots)))
        current = arch.choices[i][1]
        others = [lab for lab in self.slots[i].labels if lab != current]
        return self._with(arch, i, others[int(rng.integers(len(others)))])

    def neighbours(self, arch: ModelArch) -> list[ModelArch]:
        """Every architecture that differs in exactly one slot."""
        arch = self.coerce(arch)
        return [self._with(arch, i, lab) for i, s in enumerate(self.slots)
                for lab in s.labels if lab != arch.choices[i][1]]

    def canonical(self, arch: ModelArch) -> ModelArch:
        """The architecture itself: an identity choice carries no other option, and widths that
        round to the same channel count were merged when the space was generated."""
        return self.coerce(arch)

    def to_optuna(self, arch: ModelArch | str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Each slot's choice label, under the slot's name, among the slot's labels."""
        from optuna.distributions import CategoricalDistribution

        arch = self.coerce(arch)
        return (dict(arch.choices),
                {s.name: CategoricalDistribution(s.labels) for s in self.slots})

    # -- networks -------------------------------------------------------------------------------
    def _values(self, arch: ModelArch) -> dict[str, dict]:
        values = dict(self._fixed)
        for (name, label), s, idx in zip(arch.choices, self.slots, self._label_index):
            values[name] = s.values[idx[label]]
        return values

    def build(self, arch: ModelArch | str, num_classes: int | None = None,
              input_shape: Sequence[int] | None = None, **kwargs) -> nn.Module:
        """A deep copy of the user's network with the slots' choices, freshly initialised.

        Layers are re-initialised with their own ``reset_parameters`` (the constructors'
        initialisation); parameters a user module holds directly are copied as they are.
        ``num_classes`` and ``input_shape`` must be the network's own (or ``None``).
        """
        if kwargs:
            raise InvalidParameterError(
                f"from_model spaces take no build options; got {', '.join(sorted(kwargs))}")
        if num_classes is not None and int(num_classes) != self.num_classes:
            raise InvalidParameterError(
                f"Space {self.name!r} builds {self.model_name} as it is, with "
                f"{self.num_classes} outputs; num_classes={num_classes} does not match (give the "
                "network the head you need before calling from_model)")
        if input_shape is not None and tuple(int(s) for s in input_shape) != self.input_shape:
            raise InvalidParameterError(
                f"Space {self.name!r} was generated for inputs of shape {self.input_shape}; "
                f"input_shape={tuple(input_shape)} does not match (generate it with an example "
                "input of that shape)")
        arch = self.coerce(arch)
        plan = {} if arch == self.default_arch() else self._wiring.plan(self._values(arch))
        return self._assembler.assemble(plan, init=True)

    # -- encodings ------------------------------------------------------------------------------
    def _onehot_layout(self) -> None:
        self._offsets: list[int] = []
        n = 0
        for s in self.slots:
            self._offsets.append(n)
            n += sum(len(o) for _, o in s.dims if len(o) > 1) + int(s.identity)
        self._onehot_len = n

    def _onehot_slot(self, i: int, value: Mapping, v: np.ndarray) -> None:
        s, k = self.slots[i], self._offsets[i]
        for dim, opts in s.dims:
            if len(opts) > 1:
                if not value.get("identity"):
                    v[k + opts.index(value[dim])] = 1
                k += len(opts)
        if s.identity and value.get("identity"):
            v[k] = 1

    def _node_type(self, s: Slot, value: Mapping) -> str:
        if value.get("identity"):
            return "identity"
        if s.kind == "conv":
            return f"{'sep' if value['sep'] else ''}conv{value['kernel']}"
        if s.kind == "rnn":
            return value["cell"]
        return _TYPE[s.kind]

    def to_vector(self, arch: ModelArch, encoding: str = "onehot") -> np.ndarray:
        """``onehot``: per slot, a one-hot block per dimension with choices (kernel, width,
        separable, cell, heads, ...; zeros when the identity is chosen) plus an identity flag.

        ``path``: counts of each node type, of each (source type -> destination type) edge of
        :meth:`to_graph`, then each slotted layer's output width relative to the original.
        """
        self.check_encoding(encoding)
        arch = self.coerce(arch)
        values = self._values(arch)
        if encoding == "onehot":
            v = np.zeros(self._onehot_len, np.float32)
            for i, s in enumerate(self.slots):
                self._onehot_slot(i, values[s.name], v)
            return v
        t = len(self.node_types)
        types = self._type_ids(values)
        v = np.zeros(t + t * t + len(self._graph_slots), np.float32)
        for ty in types[1:-1]:
            v[ty] += 1
        for a, b in self.edges:
            v[t + types[a] * t + types[b]] += 1
        for j, s in enumerate(self._graph_slots):
            v[t + t * t + j] = self._wiring.rel_width(s.name, values)
        return v

    def _type_ids(self, values: Mapping[str, Mapping]) -> list[int]:
        return ([0] + [self.node_types.index(self._node_type(s, values[s.name]))
                       for s in self._graph_slots] + [1])

    def to_graph(self, arch: ModelArch):
        """Input node, a node per layer slot (execution order), output node; an edge per traced
        data path between them (through layers that are not slots).

        Node features: one-hot of :attr:`node_types`; the slot's one-hot choice block (that of
        :meth:`to_vector`'s ``onehot`` layout, residual group widths included, at the same
        columns for every node); then output width relative to the original and kernel / 7.
        """
        from torch_geometric.data import Data

        arch = self.coerce(arch)
        values = self._values(arch)
        types = self._type_ids(values)
        n, t = len(types), len(self.node_types)
        x = np.zeros((n, t + self._onehot_len + 2), np.float32)
        x[np.arange(n), types] = 1
        for j, s in enumerate(self._graph_slots, start=1):
            row = np.zeros(self._onehot_len, np.float32)
            self._onehot_slot(self._index[s.name], values[s.name], row)
            group = self._wiring.group_slot(s.name)
            if group is not None and group in self._index:
                self._onehot_slot(self._index[group], values[group], row)
            x[j, t:t + self._onehot_len] = row
            x[j, -2] = self._wiring.rel_width(s.name, values)
            x[j, -1] = values[s.name].get("kernel", 1) / 7 if not values[s.name].get(
                "identity") else 0.0
        edge_index = torch.tensor(self.edges, dtype=torch.long).reshape(-1, 2).t().contiguous()
        return Data(x=torch.from_numpy(x), edge_index=edge_index, num_nodes=n)

    # -- graph edges ----------------------------------------------------------------------------
    def _contract(self, edges: list[tuple[str, str]]) -> list[tuple[int, int]]:
        """Edges between graph nodes (0 input, 1.. slots, last output), through other layers."""
        nodes = ["input"] + [s.name for s in self._graph_slots] + ["output"]
        index = {n: i for i, n in enumerate(nodes)}
        succ: dict[str, list[str]] = {}
        for a, b in edges:
            succ.setdefault(a, []).append(b)
        out: set[tuple[int, int]] = set()
        for start in nodes[:-1]:
            stack, seen = list(succ.get(start, [])), set()
            while stack:
                b = stack.pop()
                if b in seen:
                    continue
                seen.add(b)
                if b in index:
                    out.add((index[start], index[b]))
                else:
                    stack.extend(succ.get(b, []))
        return sorted(out)


# --------------------------------------------------------------------------------------------
# generation
# --------------------------------------------------------------------------------------------
class _Generator:
    """Builds the drafts of a space and runs the generation-time trials."""

    def __init__(self, assembler: Assembler, analysis: Analysis,
                 parsed: Mapping[str, dict | None]):
        self.assembler, self.ana = assembler, analysis
        self.parsed = parsed
        self.ref = shapes_of(analysis.output)
        self.layers = analysis.layers
        self.drafts: list[_Draft] = []
        self.wiring = _Wiring({lay.name: lay for lay in self.layers}, dict(analysis.group_of),
                              {}, {})
        self.channels = self.wiring.channels
        self.group_names = self.wiring.group_names

    # -- drafts ---------------------------------------------------------------------------------
    def make(self) -> None:
        specs = {lay.name: layer_spec(lay, self.parsed) for lay in self.layers}
        members: dict[int, list[Layer]] = {}
        for lay in self.layers:
            if lay.producer:
                members.setdefault(self.ana.group_of[lay.name], []).append(lay)
        units = self._units(specs)
        widths: dict[int, list[float]] = {}
        for g, ls in members.items():
            allowed: set[float] | None = None
            for lay in ls:
                spec = specs[lay.name]
                key = "hidden" if lay.kind == "rnn" else "width"
                mine = set(spec[key]) if spec is not None else {1.0}
                allowed = mine if allowed is None else allowed & mine
            if g in self.ana.pinned:
                allowed = set()
            widths[g] = self._round(g, ls[0].base, units.get(g, 1), sorted_with(allowed, 1.0))
        emitted: set[int] = set()
        for lay in self.layers:
            if lay.producer:
                g = self.ana.group_of[lay.name]
                if len(members[g]) > 1 and g not in emitted:
                    emitted.add(g)
                    name = f"res@{lay.name}"
                    self.group_names[g] = name
                    self.drafts.append(_Draft(name, "group", None, [m.name for m in members[g]],
                                              {"width": widths[g]}, {"width": 1.0}, group=g))
            self.drafts.append(self._layer_draft(lay, specs[lay.name], widths, members))

    def _units(self, specs: Mapping[str, dict | None]) -> dict[int, int]:
        """Per group, the number every width must be a multiple of."""
        units: dict[int, int] = {}
        attention = [lay for lay in self.layers if lay.kind in ("mha", "tel")]
        all_heads = lcm(*(h for lay in attention for h in self._heads(lay, specs[lay.name])))
        for lay in self.layers:
            if lay.producer:
                g = self.ana.group_of[lay.name]
                units[g] = lcm(units.get(g, 1), lay.directions, *self.ana.divisors.get(g, ()))
                if self.ana.mode != "fx":  # unknown data flow: every head count, everywhere
                    units[g] = lcm(units[g], all_heads)
        for lay in attention:
            for g in lay.in_deps or ():
                units[g] = lcm(units.get(g, 1), *self._heads(lay, specs[lay.name]))
        return units

    @staticmethod
    def _embed(lay: Layer) -> int:
        return int(lay.module.embed_dim if lay.kind == "mha" else lay.module.self_attn.embed_dim)

    def _heads(self, lay: Layer, spec: dict | None) -> list[int]:
        orig = int(lay.module.num_heads if lay.kind == "mha" else lay.module.self_attn.num_heads)
        if spec is None:
            return [orig]
        embed = self._embed(lay)
        bad = [h for h in spec["heads"] if embed % h]
        if bad:
            valid = [h for h in range(1, embed + 1) if embed % h == 0]
            raise InvalidParameterError(
                f"Head counts {bad} of layer {lay.name!r} do not divide its embedding width "
                f"{embed}; valid choices: {', '.join(map(str, valid))}")
        return sorted_with(spec["heads"], orig)

    def _round(self, g: int, base: int, unit: int, mults: list[float]) -> list[float]:
        """Widths as multipliers, each a distinct channel count (a multiple of ``unit``)."""
        table: dict[float, int] = {}
        taken: set[int] = set()
        for m in sorted(mults, key=lambda m: (m != 1.0, m)):
            c = base if m == 1.0 else max(unit, int(round(base * m / unit)) * unit)
            if c not in taken:
                taken.add(c)
                table[m] = c
        self.channels[g] = table
        return sorted(table)

    def _layer_draft(self, lay: Layer, spec: dict | None, widths: Mapping[int, list[float]],
                     members: Mapping[int, list[Layer]]) -> _Draft:
        m = lay.module
        dims: dict[str, list] = {}
        orig: dict[str, Any] = {}
        own_width = lay.producer and len(members[self.ana.group_of[lay.name]]) == 1
        if lay.kind == "conv":
            k = int(m.kernel_size[0])
            square = len(set(m.kernel_size)) == 1
            kernels = [k]
            if spec is not None and square and (same_padding(m) or m.padding == "valid"
                                                or m.padding == (0,) * len(m.kernel_size)):
                kernels = sorted_with(spec["kernel"], k)
            dims["kernel"], orig["kernel"] = kernels, k
        if lay.kind == "rnn":
            own = "lstm" if isinstance(m, nn.LSTM) else "gru"
            cells = [own] if spec is None else [c for c in CELLS if c in spec["cell"] or c == own]
            dims["cell"], orig["cell"] = cells, own
        if lay.producer:
            key = "hidden" if lay.kind == "rnn" else "width"
            if own_width:
                dims[key], orig[key] = list(widths[self.ana.group_of[lay.name]]), 1.0
        if lay.kind == "conv":
            sep = (spec is not None and spec["separable"] and m.in_channels > 1
                   and max(dims["kernel"]) > 1)
            dims["sep"], orig["sep"] = ([False, True] if sep else [False]), False
        if lay.kind in ("mha", "tel"):
            heads = self._heads(lay, spec)
            orig["heads"] = int(m.num_heads if lay.kind == "mha" else m.self_attn.num_heads)
            dims["heads"] = heads
        if lay.kind == "tel":
            ffs = [1.0] if spec is None else self._ffn(lay, spec["ffn"])
            dims["ffn"], orig["ffn"] = ffs, 1.0
        identity = bool(
            lay.kind == "conv" and spec is not None and spec["identity"] and own_width
            and self.ana.mode == "fx" and m.in_channels == m.out_channels
            and all(s == 1 for s in m.stride) and same_padding(m)
            and lay.in_deps is not None and len(lay.in_deps) <= 1)
        return _Draft(lay.name, lay.kind, lay, [lay.name], dims, orig, identity,
                      group=self.ana.group_of.get(lay.name))

    @staticmethod
    def _ffn(lay: Layer, mults: list[float]) -> list[float]:
        ff = lay.module.linear1.out_features
        out, seen = [], set()
        for mult in sorted(set(mults) | {1.0}, key=lambda x: (x != 1.0, x)):
            n = max(1, int(round(ff * mult)))
            if n not in seen:
                seen.add(n)
                out.append(mult)
        return sorted(out)

    # -- trials ---------------------------------------------------------------------------------
    def _try(self, changes: Mapping[str, Mapping]) -> str | None:
        """``None`` when the network with ``changes`` (slot -> values) runs and keeps its output
        shapes, else the reason."""
        values = {d.name: dict(d.original) for d in self.drafts}
        for name, change in changes.items():
            values[name] = {**values[name], **change} if not change.get("identity") else change
        plan = self.wiring.plan(values)

        def check(out) -> None:
            if shapes_of(out) != self.ref:
                raise ValueError(f"output shapes {shapes_of(out)} instead of {self.ref}")

        try:
            self.assembler.assemble(plan, init=False, check=check)
        except Exception as exc:  # noqa: BLE001 - any failure means: do not offer this value
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            return f"{type(exc).__name__}: {msg}"[:200]
        return None

    @staticmethod
    def _shape_neutral(d: _Draft, dim: str) -> bool:
        """Whether changing ``dim`` keeps every tensor shape (same-padded kernels, separable,
        cell, heads, feed-forward width): such values are tried together, not one by one."""
        if dim == "kernel":
            return same_padding(d.layer.module)
        return dim in ("sep", "cell", "heads", "ffn")

    def _reject(self, d: _Draft, dim: str, value, why: str) -> None:
        d.dims[dim] = [v for v in d.dims[dim] if v != value]
        d.dropped.append((_fmt(dim, value) or f"{dim}={value}", why))
        log.debug("from_model: not offering %s %s=%s: %s", d.name, dim, value, why)

    def trials(self) -> None:
        """Try every candidate value once on the example input; drop those that fail."""
        # shape-neutral values: round r sets every slot's r-th alternative at once; a failing
        # round is retried value by value
        rounds: dict[int, list[tuple[_Draft, str, Any]]] = {}
        for d in self.drafts:
            for dim, opts in d.dims.items():
                if d.layer is not None and self._shape_neutral(d, dim):
                    alts = [v for v in opts if v != d.original[dim]]
                    for r, v in enumerate(alts):
                        rounds.setdefault(r, []).append((d, dim, v))
        for r in sorted(rounds):
            changes: dict[str, dict] = {}
            for d, dim, v in rounds[r]:
                changes.setdefault(d.name, {})[dim] = v
            if self._try(changes) is None:
                continue
            for d, dim, v in rounds[r]:
                why = self._try({d.name: {dim: v}})
                if why is not None:
                    self._reject(d, dim, v, why)
        # values that change shapes (widths, kernels without 'same' padding): one by one,
        # residual groups first
        by_group = {d.group: d for d in self.drafts if d.kind == "group"}
        for d in sorted(self.drafts, key=lambda d: d.kind != "group"):
            for dim in list(d.dims):
                if d.layer is not None and self._shape_neutral(d, dim):
                    continue
                for v in list(d.dims[dim]):
                    if v != d.original[dim]:
                        why = self._try({d.name: {dim: v}})
                        if why is not None:
                            self._reject(d, dim, v, why)
        # an identity passes its input's width on: tried with each width of that input
        for d in self.drafts:
            if not d.identity:
                continue
            tries: list[dict[str, dict]] = [{d.name: {"identity": True}}]
            for g in d.layer.in_deps or ():  # the input's width now reaches past this layer
                src = by_group.get(g) or next(
                    (x for x in self.drafts if x.group == g and x.kind != "group"), None)
                if src is None:
                    continue
                key = "hidden" if "hidden" in src.dims else "width"
                for v in src.dims.get(key, []):
                    if v != src.original.get(key):
                        tries.append({d.name: {"identity": True}, src.name: {key: v}})
            for change in tries:
                why = self._try(change)
                if why is not None:
                    d.identity = False
                    d.dropped.append(("id", why))
                    break


def _as_example(example_input) -> tuple:
    if isinstance(example_input, torch.Tensor):
        example = (example_input,)
    elif isinstance(example_input, (tuple, list)) and example_input and all(
            isinstance(t, torch.Tensor) for t in example_input):
        example = tuple(example_input)
    else:
        raise InvalidParameterError(
            "The 'example_input' parameter of from_model must be a tensor (or a tuple of the "
            f"model's positional input tensors). Got {type(example_input).__name__} instead.")
    if example[0].dim() < 1 or example[0].shape[0] < 1:
        raise InvalidParameterError(
            f"example_input must have a batch dimension; got shape {tuple(example[0].shape)}")
    return tuple(t[:2].detach().cpu() for t in example)


def from_model(model: nn.Module, example_input, choices: Mapping | None = None) -> ModelSpace:
    """The search space of ``model``'s variants (see the module docstring for the slot kinds).

    Args:
        model: the user's network; it is deep-copied, never modified. Its output must be a
            tensor ``(batch, num_classes, ...)``.
        example_input: a batch of inputs (or a tuple of the positional input tensors); its
            per-example shape is the space's ``input_shape``. Two examples are kept.
        choices: per layer type (``"Conv1d"``, ``"Linear"``, ``"GRU"``, ...) or per layer name
            (``"features.0"``, a name of ``model.named_modules()``), the options to offer
            instead of the defaults, e.g. ``{"Conv1d": {"kernel": [3, 5], "width": [0.5, 1.0]},
            "features.0": {"separable": False}, "classifier.1": None}``. ``None`` keeps a layer
            as it is. Options: ``kernel``, ``width``, ``separable``, ``identity`` (convolutions),
            ``width`` (linear), ``hidden``, ``cell`` (LSTM/GRU), ``heads`` (attention),
            ``heads``, ``ffn`` (transformer layers). A layer name wins over its type.

    Returns:
        A :class:`ModelSpace`, usable wherever a space object is accepted.

    Raises:
        InvalidParameterError: the model does not run on the example input, its output is not
            a tensor, it has no replaceable layer, every parameter is frozen, its forward pass
            depends on the input's values (an ``if`` on a tensor: tracing cannot capture it), or
            ``choices=`` is malformed.
        UnknownNameError: a layer name (or option) in ``choices=`` that does not exist.
    """
    if not isinstance(model, nn.Module):
        raise InvalidParameterError(
            f"The 'model' parameter of from_model must be a torch.nn.Module. Got "
            f"{type(model).__name__} instead.")
    cls = type(model).__name__
    example = _as_example(example_input)
    template = copy.deepcopy(model).cpu()
    params = list(template.parameters())
    if params and not any(p.requires_grad for p in params):
        raise InvalidParameterError(
            f"Every parameter of {cls} is frozen (requires_grad=False), so no variant of it could "
            "be trained; unfreeze the layers to search (a frozen part beside trainable layers is "
            "fine)")
    try:
        ana = analyse(template, example)
    except Exception as exc:  # noqa: BLE001 - the user's forward failing is a user error
        raise InvalidParameterError(
            f"{cls} cannot be run on the example input of shape {tuple(example[0].shape)}, so no "
            f"space can be generated from it: {type(exc).__name__}: {exc}") from exc
    check_static_flow(template, example, cls)  # a forward that branches on values: refused
    if not isinstance(ana.output, torch.Tensor) or ana.output.dim() < 2:
        raise InvalidParameterError(
            f"The output of {cls} must be a tensor of logits (batch, classes, ...); got "
            f"{shapes_of(ana.output)!r}")
    looked_for = ("Conv1d/Conv2d (groups=1), Linear, LSTM/GRU, MultiheadAttention or "
                  "TransformerEncoderLayer modules called in forward()")
    if not ana.layers:
        raise InvalidParameterError(
            f"{cls} has no layer from_model can replace: looked for {looked_for}")
    parsed = parse_choices(choices, template, ana.layers)
    assembler = Assembler(template, example)
    gen = _Generator(assembler, ana, parsed)
    gen.make()
    gen.trials()
    space = ModelSpace(assembler, ana, gen.drafts, gen.wiring)
    if not space.slots:
        why = "; ".join(f"{n}={c}: {r}" for n, c, r in space.dropped[:5])
        raise InvalidParameterError(
            f"{cls} has no layer with a choice left: found "
            f"{', '.join(lay.name for lay in ana.layers)} but every alternative was frozen by "
            f"choices=, fixed by the output shape, or broke the network"
            + (f" ({why})" if why else ""))
    log.info("from_model(%s): %d slots, %d architectures (%s), %d choices not offered", cls,
             len(space.slots), space.size, space.trace_mode, len(space.dropped))
    return space
