"""ZiCo: zero-shot inverse coefficient of variation of the gradients."""

from __future__ import annotations

import torch

from proxies._engine import ProxyContext, undefined
from proxies._registry import register_proxy

__all__ = ["zico"]


@register_proxy("zico", needs=("grads",), log_space=True)
def zico(ctx: ProxyContext) -> float:
    """ZiCo: ``sum_layers log( sum_{w: sigma_w > 0} E[|g_w|] / sigma_w )``.

    ``g_w`` is the loss gradient of weight ``w`` on each of the two half-batches of the shared
    pass; ``E`` and ``sigma`` are their mean and (population) standard deviation. Layers whose sum
    is zero are skipped, as in the reference. Already a log; higher is better. Undefined (NaN)
    when no layer has a varying gradient. Paper: Li et al., "ZiCo: Zero-shot NAS via inverse
    coefficient of variation on gradients", ICLR 2023.
    """
    halves = ctx.shared()["half_grads"]
    if len(halves) < 2:
        return undefined("ZiCo needs at least two examples (two half-batches)")
    sums = []
    for i in range(len(halves[0])):
        g = torch.stack([h[i].reshape(-1) for h in halves]).double()
        std = g.std(0, unbiased=False)
        ratio = torch.where(std > 0, g.abs().mean(0) / std, torch.zeros_like(std))
        sums.append(ratio.sum())
    s = torch.stack(sums).cpu()  # one device sync for all layers
    s = s[torch.isfinite(s) & (s > 0)]
    if len(s) == 0:
        return undefined("no weight's gradient varies between the half-batches")
    return float(torch.log(s).sum())
