"""The proxy registry: ``@register_proxy(name)`` and the :class:`Proxy` record it stores."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from prednas.registry import Registry

__all__ = ["Proxy", "register_proxy", "get", "list_proxies", "REGISTRY", "NEEDS"]

#: shared computations a proxy can ask the engine for (see :mod:`proxies._engine`)
NEEDS: frozenset[str] = frozenset({
    "grads",      # per-half loss gradients of the weight tensors (one backward per half-batch)
    "fisher",     # per-sample activation x activation-gradient sums (hooks on that backward)
    "hvp",        # Hessian-gradient product of the loss (GraSP; a double backward)
    "jacobian",   # d sum(logits) / d input, one input-gradient backward per half-batch
    "codes",      # binary activation codes of the batch (forward hooks)
    "features",   # per-module feature maps of the first example (forward hooks)
    "flops",      # multiply-accumulates of conv / linear layers (forward hooks)
})
_BACKWARD_NEEDS = frozenset({"grads", "fisher", "hvp", "jacobian"})


@dataclass(frozen=True)
class Proxy:
    """A registered proxy.

    Attributes:
        name: Registry name.
        fn: ``fn(ctx) -> float`` computing the score from a :class:`proxies._engine.ProxyContext`.
        needs: Shared passes the proxy reads (subset of :data:`NEEDS`).
        order: Proxies run by increasing ``order``; those that rewrite the weights run last.
        log_space: Whether the score is returned as a natural logarithm.
    """

    name: str
    fn: Callable
    needs: frozenset[str]
    order: int = 0
    log_space: bool = False
    own_backward: bool = False

    @property
    def cheap(self) -> bool:
        """True when the proxy needs no backward pass (shared or its own)."""
        return not (self.needs & _BACKWARD_NEEDS) and not self.own_backward

    @property
    def doc(self) -> str:
        return (self.fn.__doc__ or "").strip()

    def __call__(self, ctx) -> float:
        return self.fn(ctx)


REGISTRY: Registry[Proxy] = Registry("proxy")


def register_proxy(name: str, needs: tuple[str, ...] = (), order: int = 0,
                   log_space: bool = False, own_backward: bool = False) -> Callable:
    """Decorator registering ``fn(ctx) -> float`` as the proxy ``name``.

    Args:
        name: Registry name (a duplicate raises).
        needs: Shared passes the proxy reads (see :data:`NEEDS`).
        order: Run order within one :func:`proxies.score` call.
        log_space: The returned value is a natural log.
        own_backward: The proxy runs a backward pass of its own (so it is not cheap).
    """
    unknown = set(needs) - NEEDS
    if unknown:
        raise ValueError(f"unknown proxy needs {sorted(unknown)}; valid: {sorted(NEEDS)}")

    def deco(fn: Callable) -> Callable:
        REGISTRY.add(name, Proxy(name, fn, frozenset(needs), order, log_space, own_backward))
        fn.proxy_name = name
        return fn

    return deco


def get(name: str) -> Proxy:
    """The :class:`Proxy` registered as ``name`` (unknown -> ``UnknownNameError``)."""
    return REGISTRY.get(name)


def list_proxies() -> list[str]:
    """Every registered proxy name, sorted."""
    return REGISTRY.names()
