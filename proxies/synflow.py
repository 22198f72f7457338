"""SynFlow: synaptic flow of the weights on an all-ones input (data-free)."""

from __future__ import annotations

import math

import torch

from proxies._engine import ProxyContext, undefined
from proxies._registry import register_proxy

__all__ = ["synflow"]


@register_proxy("synflow", order=10, log_space=True, own_backward=True)
def synflow(ctx: ProxyContext) -> float:
    """SynFlow, returned as a natural log: ``log sum_w |theta_w * dR/dtheta_w|``.

    ``R = 1^T f_{|theta|}(1)``: every parameter and buffer is replaced by its absolute value, the
    network runs in float64 in eval mode (batch-norm with its fresh statistics is an identity, as
    in the reference's BN-free copy) on one all-ones input, and ``R`` is the sum of the logits.
    The sum runs over weight tensors (conv, linear, recurrent matrices). Raw values span 1e30-1e60
    on NB201, hence the log. Higher is better.

    Paper: Tanaka et al., "Pruning neural networks without any data by iteratively conserving
    synaptic flow", NeurIPS 2020; as a NAS proxy: Abdelfattah et al., "Zero-Cost Proxies for
    Lightweight NAS", ICLR 2021. Undefined (NaN) when every saliency is zero.
    """
    model = ctx.model
    ctx.restore()
    try:
        model.double()
        model.eval()
        with torch.no_grad():
            for t in model.state_dict().values():
                if t.is_floating_point():
                    t.abs_()
        x = torch.ones((1, *ctx.inputs.shape[1:]), dtype=torch.float64, device=ctx.device)
        weights = ctx.weights
        # cuDNN refuses RNN backward in eval mode; its native kernels do not.
        with torch.enable_grad(), torch.backends.cudnn.flags(enabled=False):
            out = model(x)
            grads = torch.autograd.grad(out.sum(), weights, allow_unused=True)
        total = sum((w.detach() * g).abs().sum() for w, g in zip(weights, grads) if g is not None)
        total = float(total) if isinstance(total, torch.Tensor) else 0.0
    finally:
        ctx.restore()
    if not math.isfinite(total):
        return undefined(f"synaptic flow overflowed float64 ({total})")
    if total <= 0.0:
        return undefined("every synaptic saliency is zero (the output ignores the weights)")
    return math.log(total)
