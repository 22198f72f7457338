"""Parameter count."""

from __future__ import annotations

from proxies._engine import ProxyContext
from proxies._registry import register_proxy

__all__ = ["params"]


@register_proxy("params")
def params(ctx: ProxyContext) -> float:
    """Number of trainable parameters, ``sum numel(theta)`` (bigger networks score higher).

    Higher is better. Baseline in Ning et al., "Evaluating efficient performance estimators of
    neural architectures", NeurIPS 2021, and NAS-Bench-Suite-Zero (Krishnakumar et al., 2022).
    """
    return float(sum(p.numel() for p in ctx.model.parameters()))
