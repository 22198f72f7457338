"""L2 norm of the initial weights."""

from __future__ import annotations

import torch

from proxies._engine import ProxyContext
from proxies._registry import register_proxy

__all__ = ["l2_norm"]


@register_proxy("l2_norm")
def l2_norm(ctx: ProxyContext) -> float:
    """L2 norm: ``sum_layers ||W_l||_2`` over the weight tensors at initialisation (data-free).

    Higher is better. As a NAS proxy: Abdelfattah et al., ICLR 2021; Krishnakumar et al.,
    "NAS-Bench-Suite-Zero", NeurIPS 2022 Datasets and Benchmarks.
    """
    return sum(w.double().norm() for w in ctx.init_weights()) + torch.zeros((), dtype=torch.float64)
