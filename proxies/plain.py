"""Plain: first-order Taylor saliency of the weights."""

from __future__ import annotations

import torch

from proxies._engine import ProxyContext
from proxies._registry import register_proxy

__all__ = ["plain"]


@register_proxy("plain", needs=("grads",))
def plain(ctx: ProxyContext) -> float:
    """Plain: ``sum_w theta_w * dL/dtheta_w`` (signed, no absolute value) over the weight tensors.

    Returned as defined: higher is better by the proxy's own convention, yet it correlates
    *negatively* with accuracy on NB201 (Suite-Zero reports rho about -0.26), which is a property
    of the proxy, not a flipped sign. Paper: Mozer & Smolensky, "Skeletonization", NeurIPS 1989;
    as a NAS proxy: Abdelfattah et al., ICLR 2021.
    """
    grads = ctx.shared()["grads"]
    return sum((w.detach() * g).sum() for w, g in zip(ctx.weights, grads)) + torch.zeros(())
