"""Gradient norm of the loss."""

from __future__ import annotations

import torch

from proxies._engine import ProxyContext
from proxies._registry import register_proxy

__all__ = ["grad_norm"]


@register_proxy("grad_norm", needs=("grads",))
def grad_norm(ctx: ProxyContext) -> float:
    """Gradient norm: ``sum_layers ||dL/dW_l||_2`` (Euclidean norm per weight tensor, summed).

    Higher is better. Paper: Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS",
    ICLR 2021 (the ``grad_norm`` baseline).
    """
    grads = ctx.shared()["grads"]
    return sum(g.norm() for g in grads) + torch.zeros(())
