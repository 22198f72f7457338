"""Refusing networks whose forward pass depends on the values of their inputs.

:func:`spaces.from_model` reads a network by running and tracing it once. A ``forward`` that
branches on tensor values (``if h.mean() > 0.1: h = self.c2(h)``) runs other layers for other
inputs, and for the variants of the network, whose activations differ: what one run saw is not the
network, and candidates built from it fail at random. :func:`check_static_flow` finds such
networks two ways, and refuses them in one line naming the layer:

- **conversions**: the forward pass runs under a :class:`torch.overrides.TorchFunctionMode` that
  follows which tensors are computed from the input (and from which layer's output); converting
  one of them to a Python value in the user's own code (``bool()`` of an ``if``, ``.item()``,
  ``float()``, ``int()``, ``.tolist()``, ``torch.equal`` ...) is a decision that tracing cannot
  capture. Conversions inside PyTorch's own layers, and of tensors that do not depend on the
  input (a constant buffer), are not decisions about the input;
- **paths**: the network is run on several inputs of the example's shape (the example, zeros,
  scaled, negated, random) and the sequence of layers called is compared: a difference names the
  first layer where the paths part.
"""

from __future__ import annotations

import contextlib
import linecache
import os
import sys
import weakref
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from prednas.errors import InvalidParameterError
from spaces._graph_rebuild import one_thread, run_model

__all__ = ["check_static_flow"]

#: tensor -> Python conversions through which a forward pass can decide on tensor values
_TO_PYTHON = frozenset({"__bool__", "item", "__float__", "__int__", "__index__", "__complex__",
                        "tolist", "numpy", "equal", "allclose", "is_nonzero"})
_LIBRARY_DIRS = (os.path.dirname(torch.__file__) + os.sep,)
#: PyTorch's dispatch wrappers (``Tensor.__float__`` and the like): not a decision of the library
_DISPATCH = tuple(os.path.join(os.path.dirname(torch.__file__), f) for f in
                  ("_tensor.py", "overrides.py", os.path.join("utils", "_device.py")))
_OWN_DIRS = tuple(os.path.dirname(os.path.abspath(f)) + os.sep for f in
                  (__file__, sys.modules["prednas.errors"].__file__))
_HOW = ("make the branch fixed (decide it in __init__, not from tensor values) or write it with "
        "tensor operations (torch.where)")


def _tensors(obj: Any) -> Iterator[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _tensors(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _tensors(o)


class _Provenance:
    """Which live tensors depend on the input, each with the last layer it came out of."""

    def __init__(self):
        self._of: dict[int, tuple[weakref.ref, str]] = {}

    def get(self, t: torch.Tensor) -> str | None:
        entry = self._of.get(id(t))
        return entry[1] if entry is not None and entry[0]() is t else None

    def set(self, t: torch.Tensor, source: str) -> None:
        key = id(t)
        try:
            ref = weakref.ref(t, lambda _, k=key, of=self._of: of.pop(k, None))
        except TypeError:  # pragma: no cover - every torch tensor is weak-referenceable
            return
        self._of[key] = (ref, source)

    def of_any(self, obj: Any) -> str | None:
        for t in _tensors(obj):
            src = self.get(t)
            if src is not None:
                return src
        return None


class _Watch(TorchFunctionMode):
    """Follows input-dependent tensors through every torch call; records conversions of them to
    Python values made by code outside PyTorch and prednas."""

    def __init__(self, prov: _Provenance):
        super().__init__()
        self.prov = prov
        self.hits: list[tuple[str, str, str]] = []  # (conversion, source layer, where)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        source = self.prov.of_any((args, kwargs))
        name = getattr(func, "__name__", "")
        if source is not None and name in _TO_PYTHON:
            where = _user_frame()
            if where is not None:
                self.hits.append((name, source, where))
        out = func(*args, **kwargs)
        if source is not None:
            for t in _tensors(out):
                if self.prov.get(t) is None:
                    self.prov.set(t, source)
        return out


def _user_frame() -> str | None:
    """``file:line: `code``` of the code that made the conversion when it is the user's;
    ``None`` when PyTorch or prednas made it."""
    frame = sys._getframe(2)
    while frame is not None:
        path = os.path.abspath(frame.f_code.co_filename)
        if path.startswith(_DISPATCH) or frame.f_code.co_filename.startswith("<"):
            frame = frame.f_back
            continue
        if path.startswith(_LIBRARY_DIRS + _OWN_DIRS):
            return None
        code = linecache.getline(path, frame.f_lineno).strip()
        return f"{os.path.basename(path)}:{frame.f_lineno}" + (f": `{code}`" if code else "")
    return None


@contextlib.contextmanager
def _layer_hooks(model: nn.Module, prov: _Provenance | None, calls: list[str]):
    """Record each submodule call (by name) and mark its outputs as coming out of it."""
    handles = []
    for name, mod in model.named_modules():
        if not name:
            continue

        def pre(_m, _inputs, name=name):
            calls.append(name)

        def post(_m, _inputs, output, name=name):
            if prov is not None:
                for t in _tensors(output):
                    prov.set(t, name)

        handles.append(mod.register_forward_pre_hook(pre))
        handles.append(mod.register_forward_hook(post))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _probes(example: tuple) -> list[tuple[str, tuple]]:
    """Inputs of the example's shape that a value-dependent branch would likely tell apart."""
    x = example[0]
    rest = example[1:]
    if not x.is_floating_point():  # indices (tokens): reorder the batch, keep the values valid
        return [("the example with its batch reversed", (x.flip(0), *rest))]
    g = torch.Generator().manual_seed(0)
    return [("zeros", (torch.zeros_like(x), *rest)),
            ("the example x 10", (x * 10, *rest)),
            ("the example x 0.1", (x * 0.1, *rest)),
            ("the negated example", (-x, *rest)),
            ("random normal values", (torch.randn(x.shape, generator=g, dtype=x.dtype), *rest)),
            ("random values in [0, 1)", (torch.rand(x.shape, generator=g, dtype=x.dtype), *rest))]


def _first_difference(a: list[str], b: list[str]) -> tuple[str, str, str]:
    """``(last layer both ran, next layer of a, next layer of b)``."""
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    before = a[i - 1] if i else "the input"
    return (before, a[i] if i < len(a) else "the output", b[i] if i < len(b) else "the output")


def check_static_flow(model: nn.Module, example: tuple, cls: str) -> None:
    """Raise :class:`InvalidParameterError` when ``model``'s forward pass depends on the values
    of its input (see the module docstring). ``model`` is run, never modified."""
    prov = _Provenance()
    watch = _Watch(prov)
    calls: list[str] = []
    for t in example:
        prov.set(t, "the input")
    with one_thread(), _layer_hooks(model, prov, calls), watch:
        run_model(model, example)
    if watch.hits:
        conv, source, where = watch.hits[0]
        what = "converts to a Python value" if conv not in ("__bool__", "is_nonzero") else \
            "branches on"
        raise InvalidParameterError(
            f"{cls}'s forward {what} a tensor computed from "
            f"{'the input' if source == 'the input' else f'layer {source!r}'} ({where}): "
            f"input-dependent control flow, which tracing cannot capture (other inputs and the "
            f"variants of the network would run other layers); {_HOW}")
    reference = list(calls)
    for label, probe in _probes(example):
        calls.clear()
        try:
            with one_thread(), _layer_hooks(model, None, calls):
                run_model(model, probe)
        except Exception:  # noqa: BLE001 - a probe the network rejects says nothing of its flow
            continue
        if calls != reference:
            before, ours, theirs = _first_difference(reference, calls)
            raise InvalidParameterError(
                f"{cls}'s forward runs other layers for other inputs: after {before!r}, the "
                f"example input runs {ours!r} and {label} run {theirs!r}; input-dependent "
                f"control flow, which tracing cannot capture; {_HOW}")
