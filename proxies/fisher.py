"""Fisher: activation saliency from the empirical Fisher information."""

from __future__ import annotations

from proxies._engine import ProxyContext, undefined
from proxies._registry import register_proxy

__all__ = ["fisher"]


@register_proxy("fisher", needs=("fisher",))
def fisher(ctx: ProxyContext) -> float:
    """Fisher: ``sum_layers sum_c 1/2 * mean_n (sum_pos a_{n,c,pos} * dL/da_{n,c,pos})^2``.

    ``a`` is the output of every conv / linear / recurrent layer; the activation gradients come
    from hooks on the shared loss backward. Higher is better. Paper: Theis et al., "Faster gaze
    prediction with dense networks and Fisher pruning", 2018; Turner et al., "BlockSwap", ICLR
    2020; as a NAS proxy: Abdelfattah et al., ICLR 2021.
    """
    value = ctx.shared()["fisher"]
    if value is None:
        return undefined("the model has no conv, linear or recurrent layer on the loss path")
    return value
