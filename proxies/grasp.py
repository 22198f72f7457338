"""GraSP: gradient signal preservation."""

from __future__ import annotations

import torch

from proxies._engine import ProxyContext
from proxies._registry import register_proxy

__all__ = ["grasp"]


@register_proxy("grasp", needs=("grads", "hvp"))
def grasp(ctx: ProxyContext) -> float:
    """GraSP: ``sum_w -theta_w * (H g)_w`` with ``g = dL/dtheta`` and ``H`` the loss Hessian.

    ``H g`` is one double backward of ``g^T stop_grad(g)`` through the shared loss gradients
    (built with ``create_graph``). Summed over weight tensors; the sign follows the
    zero-cost-proxy reference (higher is better). Paper: Wang et al., "Picking winning tickets
    before training by preserving gradient flow", ICLR 2020; as a NAS proxy: Abdelfattah et al.,
    ICLR 2021.
    """
    hg = ctx.shared()["hvp"]
    return sum((-w.detach() * h).sum() for w, h in zip(ctx.weights, hg)) + torch.zeros(())
