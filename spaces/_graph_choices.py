"""What each layer of a user's network offers in :mod:`spaces.from_model`: the default choices
per slot kind and the checking of ``choices=`` (per layer type or per layer name)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from prednas.errors import InvalidParameterError, UnknownNameError
from spaces._graph_trace import Layer

__all__ = ["LAYER_TYPES", "OPTIONS", "WIDTHS", "FFN_WIDTHS", "CELLS", "parse_choices",
           "layer_spec", "frozen_spec", "sorted_with"]

#: ``choices=`` keys that name a layer type, and the slot kind of that type
LAYER_TYPES: dict[str, str] = {
    "Conv1d": "conv", "Conv2d": "conv", "Linear": "linear", "LSTM": "rnn", "GRU": "rnn",
    "MultiheadAttention": "mha", "TransformerEncoderLayer": "tel",
}
#: options each slot kind accepts in ``choices=``
OPTIONS: dict[str, tuple[str, ...]] = {
    "conv": ("kernel", "width", "separable", "identity"),
    "linear": ("width",),
    "rnn": ("hidden", "cell"),
    "mha": ("heads",),
    "tel": ("heads", "ffn"),
}
WIDTHS = (0.5, 0.75, 1.0)
FFN_WIDTHS = (0.5, 1.0, 2.0)
CELLS = ("lstm", "gru")


def _number_list(where: str, v, low: float, high: float) -> list[float]:
    if (not isinstance(v, (list, tuple)) or not v
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
            or not all(low < x <= high for x in v)):
        raise InvalidParameterError(
            f"{where} must be a non-empty list of multipliers in ({low}, {high}]. Got {v!r} "
            "instead.")
    return [float(x) for x in v]


def _check_option(where: str, option: str, v):
    if option in ("width", "hidden", "ffn"):
        return _number_list(where, v, 0.0, 4.0)
    if option == "kernel":
        if (not isinstance(v, (list, tuple)) or not v
                or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 and k % 2
                           for k in v)):
            raise InvalidParameterError(
                f"{where} must be a non-empty list of odd kernel sizes (so 'same' padding is "
                f"kept). Got {v!r} instead.")
        return [int(k) for k in v]
    if option == "heads":
        if (not isinstance(v, (list, tuple)) or not v
                or not all(isinstance(h, int) and not isinstance(h, bool) and h >= 1 for h in v)):
            raise InvalidParameterError(
                f"{where} must be a non-empty list of head counts >= 1. Got {v!r} instead.")
        return [int(h) for h in v]
    if option == "cell":
        if not isinstance(v, (list, tuple)) or not v or not all(c in CELLS for c in v):
            raise InvalidParameterError(
                f"{where} must be a non-empty list of cells; valid choices: {', '.join(CELLS)}. "
                f"Got {v!r} instead.")
        return list(v)
    if not isinstance(v, bool):  # separable / identity
        raise InvalidParameterError(f"{where} must be True or False. Got {v!r} instead.")
    return v


def parse_choices(choices, model: nn.Module, layers: list[Layer]) -> dict[str, dict | None]:
    """``choices=`` checked: key (layer type or layer name) -> options, or ``None`` (frozen)."""
    if choices is None:
        return {}
    cls = type(model).__name__
    if not isinstance(choices, Mapping):
        raise InvalidParameterError(
            "The 'choices' parameter of from_model must be a dict mapping a layer type "
            f"({', '.join(LAYER_TYPES)}) or a layer name to its options. Got "
            f"{type(choices).__name__} instead.")
    by_name = {lay.name: lay for lay in layers}
    modules = dict(model.named_modules())
    out: dict[str, dict | None] = {}
    for key, spec in choices.items():
        if key in LAYER_TYPES:
            kind = LAYER_TYPES[key]
        elif key in by_name:
            kind = by_name[key].kind
        elif key in modules and key:
            raise InvalidParameterError(
                f"Layer {key!r} of {cls} ({type(modules[key]).__name__}) cannot be a slot; "
                f"replaceable layers: {', '.join(by_name) or 'none'}")
        else:
            raise UnknownNameError(f"layer of {cls} in choices=", key, list(by_name))
        if spec is None:
            out[key] = None
            continue
        if not isinstance(spec, Mapping):
            raise InvalidParameterError(
                f"choices[{key!r}] must be a dict of options ({', '.join(OPTIONS[kind])}) or "
                f"None (keep the layer as it is). Got {spec!r} instead.")
        checked = {}
        for option, v in spec.items():
            if option not in OPTIONS[kind]:
                raise UnknownNameError(f"option of {key!r} in choices=", option, OPTIONS[kind])
            checked[option] = _check_option(f"choices[{key!r}][{option!r}]", option, v)
        out[key] = checked
    return out


def _default_kernels(k: int) -> list[int]:
    if k in (3, 5, 7):
        return [3, 5, 7]
    if k % 2 == 1 and k > 7:
        return [k - 2, k, k + 2]
    return [k]


def _default_heads(embed: int) -> list[int]:
    return [h for h in range(1, 17) if embed % h == 0 and embed // h >= 4]


def layer_spec(layer: Layer, parsed: Mapping[str, dict | None]) -> dict | None:
    """Defaults, then the layer type's ``choices=`` entry, then the layer name's (``None``
    freezes: for a type, only the original values remain until the name's entry adds some)."""
    m, kind = layer.module, layer.kind
    spec: dict[str, Any]
    if kind == "conv":
        spec = {"kernel": _default_kernels(m.kernel_size[0]), "width": list(WIDTHS),
                "separable": True, "identity": True}
    elif kind == "linear":
        spec = {"width": list(WIDTHS)}
    elif kind == "rnn":
        spec = {"hidden": list(WIDTHS), "cell": list(CELLS)}
    else:
        attn = m if kind == "mha" else m.self_attn
        spec = {"heads": _default_heads(attn.embed_dim)}
        if kind == "tel":
            spec["ffn"] = list(FFN_WIDTHS)
    type_name = type(m).__name__
    if type_name in parsed:
        if parsed[type_name] is None:
            spec = frozen_spec(layer)
        else:
            spec.update(parsed[type_name])
    if layer.name in parsed:
        if parsed[layer.name] is None:
            return None
        spec.update(parsed[layer.name])
    return spec


def frozen_spec(layer: Layer) -> dict[str, Any]:
    m = layer.module
    if layer.kind == "conv":
        return {"kernel": [m.kernel_size[0]], "width": [1.0], "separable": False,
                "identity": False}
    if layer.kind == "linear":
        return {"width": [1.0]}
    if layer.kind == "rnn":
        return {"hidden": [1.0], "cell": ["lstm" if isinstance(m, nn.LSTM) else "gru"]}
    attn = m if layer.kind == "mha" else m.self_attn
    return {"heads": [attn.num_heads], **({"ffn": [1.0]} if layer.kind == "tel" else {})}


def sorted_with(values, original) -> list:
    return sorted(set(values) | {original})
