"""Reading the structure of a user's network for :mod:`spaces.from_model`.

:func:`analyse` runs the network once on the example input (execution order of its layers, the
reference output), finds the layers that can become slots, and, when ``torch.fx`` can trace the
network, reads the data flow from the graph:

- **width groups**: every convolution, linear or recurrent layer starts a group (its output width);
  an element-wise ``add``/``mul``/``sub``/``div`` or a ``matmul`` whose operands come from
  different groups of equal width ties the groups into one (a residual connection), and a group
  that reaches the network's output, or meets a fixed-size tensor in such an op, is pinned;
- **constraints**: a ``GroupNorm`` or grouped convolution reading a group needs its width to be a
  multiple of its number of groups; attention layers record the groups they read (their head
  counts must divide the width);
- **edges**: which slot feeds which (through any number of non-slot operations).

Without a graph (data-dependent control flow and the like) it falls back on the module tree: the
layers in execution order, one group each, chained edges; the generation-time trials of
:mod:`spaces.from_model` then drop whatever does not fit.
"""

from __future__ import annotations

import copy
import logging
import operator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx, nn

from spaces._graph_rebuild import ADAPTABLE_TYPES, kind_of, one_thread, run_model

__all__ = ["Layer", "Analysis", "analyse"]

log = logging.getLogger(__name__)

_TIE_FUNCS = {operator.add, operator.sub, operator.mul, operator.truediv, operator.iadd,
              operator.isub, operator.imul, operator.itruediv, operator.matmul, torch.add,
              torch.sub, torch.mul, torch.div, torch.matmul, torch.bmm, torch.maximum,
              torch.minimum}
_TIE_METHODS = {"add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_", "matmul", "bmm"}
_MATMULS = {operator.matmul, torch.matmul, torch.bmm, "matmul", "bmm"}


@dataclass
class Layer:
    """A layer that can become a slot."""

    name: str
    kind: str  # conv | linear | rnn | mha | tel
    module: nn.Module
    order: int
    #: width groups that shape this layer's input; ``None`` when unknown (no graph)
    in_deps: frozenset[int] | None = None

    @property
    def producer(self) -> bool:
        """Whether the layer chooses its own output width."""
        return self.kind in ("conv", "linear", "rnn")

    @property
    def directions(self) -> int:
        return 2 if self.kind == "rnn" and self.module.bidirectional else 1

    @property
    def base(self) -> int:
        """The layer's output width (a recurrent layer's: hidden size x directions)."""
        m = self.module
        if self.kind == "conv":
            return int(m.out_channels)
        if self.kind == "linear":
            return int(m.out_features)
        if self.kind == "rnn":
            return int(m.hidden_size) * self.directions
        return 0


@dataclass
class Analysis:
    mode: str  # "fx" or "modules"
    reason: str | None  # why the graph could not be used
    layers: list[Layer]
    output: Any
    #: producer layer name -> width group (layers tied by a residual share one)
    group_of: dict[str, int] = field(default_factory=dict)
    #: groups whose width the graph fixes (they reach the output, or meet a fixed-size tensor)
    pinned: set[int] = field(default_factory=set)
    #: group -> widths must be multiples of these (GroupNorm / grouped convolutions reading it)
    divisors: dict[int, set[int]] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)


class _Tracer(fx.Tracer):
    """Keeps every layer the rebuild knows as one graph node (even user subclasses are traced
    into)."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return type(m) in ADAPTABLE_TYPES or super().is_leaf_module(m, qualname)


def _execution(model: nn.Module, example: tuple) -> tuple[Any, dict[int, int]]:
    """The output, and the order in which each module (by id) is first called."""
    order: dict[int, int] = {}

    def hook(mod, _inputs):
        order.setdefault(id(mod), len(order))

    handles = [m.register_forward_pre_hook(hook) for m in model.modules()]
    try:
        out = run_model(model, example)
    finally:
        for h in handles:
            h.remove()
    return out, order


def _find_layers(model: nn.Module, order: dict[int, int]) -> list[Layer]:
    found: list[Layer] = []
    seen: set[int] = set()

    def walk(parent: nn.Module, prefix: str) -> None:
        for attr, child in parent._modules.items():
            if child is None or id(child) in seen:
                continue
            seen.add(id(child))
            name = f"{prefix}{attr}"
            kind = kind_of(child)
            if kind is not None:
                if id(child) in order:
                    found.append(Layer(name, kind, child, order[id(child)]))
            elif type(child) not in ADAPTABLE_TYPES:
                walk(child, f"{name}.")

    walk(model, "")
    return sorted(found, key=lambda lay: lay.order)


def analyse(model: nn.Module, example: tuple) -> Analysis:
    """Analyse ``model`` (a private copy is used; the argument is left untouched)."""
    model = copy.deepcopy(model)
    with one_thread():
        out, order = _execution(model, example)
    layers = _find_layers(model, order)
    try:
        with one_thread():
            return _analyse_graph(model, example, layers, out)
    except Exception as exc:  # noqa: BLE001 - any tracing failure means: use the module tree
        reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
        log.info("torch.fx cannot trace %s (%s); using the module tree", type(model).__name__,
                 reason)
    ana = Analysis("modules", reason, layers, out)
    for i, layer in enumerate(layers):
        if layer.producer:
            ana.group_of[layer.name] = i
    chain = ["input"] + [lay.name for lay in layers] + ["output"]
    ana.edges = list(zip(chain[:-1], chain[1:]))
    return ana


def _tensors(arg, nodes: list) -> list:
    """Every graph node in a (nested) argument."""
    if isinstance(arg, fx.Node):
        nodes.append(arg)
    elif isinstance(arg, (list, tuple)):
        for a in arg:
            _tensors(a, nodes)
    elif isinstance(arg, dict):
        for a in arg.values():
            _tensors(a, nodes)
    return nodes


def _shape(node: fx.Node):
    meta = node.meta.get("tensor_meta")
    return tuple(meta.shape) if hasattr(meta, "shape") else None


def _analyse_graph(model: nn.Module, example: tuple, layers: list[Layer], out) -> Analysis:
    from torch.fx.passes.shape_prop import ShapeProp

    tracer = _Tracer()
    graph = tracer.trace(model)
    gm = fx.GraphModule(tracer.root, graph)
    gm.eval()
    with torch.no_grad():
        ShapeProp(gm).propagate(*example)

    by_id = {id(lay.module): lay for lay in layers}
    ana = Analysis("fx", None, layers, out)
    parent: dict[int, int] = {}
    base: dict[int, int] = {}
    for i, layer in enumerate(layers):
        if layer.producer:
            parent[i] = i
            base[i] = layer.base
            ana.group_of[layer.name] = i
    gid = {layer.name: i for i, layer in enumerate(layers)}

    def find(g: int) -> int:
        while parent[g] != g:
            parent[g] = parent[parent[g]]
            g = parent[g]
        return g

    def canon(gs) -> frozenset[int]:
        return frozenset(find(g) for g in gs)

    deps: dict[fx.Node, frozenset[int]] = {}
    src: dict[fx.Node, frozenset[str]] = {}
    edges: list[tuple[str, str]] = []
    pinned: set[int] = set()
    divisors: dict[int, set[int]] = {}
    contained: dict[str, list[str]] = {}  # leaf containers (e.g. TransformerEncoder) -> layers

    def add_edge(a: str, b: str) -> None:
        if (a, b) not in edges:
            edges.append((a, b))

    for node in graph.nodes:
        args = _tensors((node.args, node.kwargs), [])
        in_deps = canon(g for a in args for g in deps.get(a, ()))
        in_src = frozenset(s for a in args for s in src.get(a, ()))
        if node.op == "placeholder":
            deps[node], src[node] = frozenset(), frozenset({"input"})
            continue
        if node.op == "get_attr":
            deps[node], src[node] = frozenset(), frozenset()
            continue
        if node.op == "output":
            pinned.update(in_deps)
            for s in in_src:
                add_edge(s, "output")
            continue
        deps[node], src[node] = in_deps, in_src
        if node.op == "call_module":
            mod = gm.get_submodule(node.target)
            first = canon(deps.get(args[0], ())) if args else frozenset()
            layer = by_id.get(id(mod))
            if layer is not None:
                if layer.in_deps is None:
                    layer.in_deps = first
                for s in in_src:
                    add_edge(s, layer.name)
                src[node] = frozenset({layer.name})
                if layer.producer:
                    deps[node] = frozenset({find(gid[layer.name])})
                continue
            if isinstance(mod, nn.GroupNorm):
                for g in first:
                    divisors.setdefault(g, set()).add(int(mod.num_groups))
            elif isinstance(mod, nn.modules.conv._ConvNd) and mod.groups != 1:
                for g in first:
                    divisors.setdefault(g, set()).add(int(mod.groups))
                if mod.groups != mod.in_channels:  # grouped, not depthwise: fixed output width
                    deps[node] = frozenset()
            inner = contained.setdefault(node.target, sorted(
                (lay for lay in layers if any(lay.module is m for m in mod.modules())),
                key=lambda lay: lay.order))
            if inner:
                for lay in inner:
                    if lay.in_deps is None:
                        lay.in_deps = first
                for s in in_src:
                    add_edge(s, inner[0].name)
                for a, b in zip(inner[:-1], inner[1:]):
                    add_edge(a.name, b.name)
                src[node] = frozenset({inner[-1].name})
            continue
        # call_function / call_method: a residual-style op ties the widths of its operands
        target = node.target
        tie = target in _TIE_FUNCS if node.op == "call_function" else target in _TIE_METHODS
        operands = [a for a in node.args[:2] if isinstance(a, fx.Node)]
        if not tie or len(operands) != 2:
            continue
        da, db = (canon(deps.get(a, ())) for a in operands)
        if len(da) == 1 and len(db) == 1 and da != db:
            ga, gb = next(iter(da)), next(iter(db))
            if base[ga] == base[gb]:
                parent[gb] = ga
        elif target not in _MATMULS and {len(da), len(db)} == {0, 1}:
            sa, sb = (_shape(a) for a in operands)
            if sa is not None and sa == sb:  # a fixed-size tensor of the same shape
                pinned.update(da | db)
        deps[node] = canon(in_deps)

    ana.group_of = {name: find(g) for name, g in ana.group_of.items()}
    for layer in layers:
        if layer.in_deps is not None:
            layer.in_deps = canon(layer.in_deps)
    ana.pinned = {find(g) for g in pinned}
    for g, ds in divisors.items():
        ana.divisors.setdefault(find(g), set()).update(ds)
    ana.edges = edges
    return ana
