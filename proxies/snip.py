"""SNIP: connection sensitivity of the loss."""

from __future__ import annotations

import torch

from proxies._engine import ProxyContext
from proxies._registry import register_proxy

__all__ = ["snip"]


@register_proxy("snip", needs=("grads",))
def snip(ctx: ProxyContext) -> float:
    """SNIP: ``sum_w |theta_w * dL/dtheta_w|`` over the weight tensors, L the batch's cross-entropy.

    The gradient is the sum of the two half-batch gradients of the shared pass. Higher is better.

    Paper: Lee et al., "SNIP: Single-shot network pruning based on connection sensitivity",
    ICLR 2019; as a NAS proxy: Abdelfattah et al., ICLR 2021.
    """
    grads = ctx.shared()["grads"]
    return sum((w.detach() * g).abs().sum() for w, g in zip(ctx.weights, grads)) + torch.zeros(())
