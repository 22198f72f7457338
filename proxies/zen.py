"""Zen-score: expected Gaussian complexity of the pre-pooling features."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from proxies._engine import _NORMS, _POOLS, ProxyContext, undefined
from proxies._registry import register_proxy

__all__ = ["zen"]

_MIXUP = 1e-2


def _feature_module(model: nn.Module) -> nn.Module | None:
    """The last global pooling layer (its input is the pre-GAP map), else the last linear layer."""
    pools = [m for m in model.modules() if isinstance(m, _POOLS)]
    if pools:
        return pools[-1]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


@register_proxy("zen", order=20, log_space=True)
def zen(ctx: ProxyContext) -> float:
    """Zen-score: ``log E|F(x) - F(x + 0.01 e)| + sum_BN log sqrt(mean(running_var))``.

    Weights are redrawn from N(0, 1) (norm layers: weight 1, bias 0, other biases 0), ``x`` and
    ``e`` are standard Gaussian batches of the input's shape, ``F`` is the input of the last global
    pooling layer (else of the last linear layer), the absolute difference is summed per example
    and averaged, and the batch-norm term reads the running variances after the two train-mode
    forwards. Data- and label-free; a log by definition; higher is better. Undefined (NaN) when
    the features do not move. Paper: Lin et al., "Zen-NAS: A zero-shot NAS for high-performance
    image recognition", ICCV 2021.
    """
    model = ctx.model
    feat_mod = _feature_module(model)
    # drawn on the CPU and moved: the same numbers on every device (a GPU's generator draws
    # other ones from the same seed)
    gen = torch.Generator().manual_seed(int(ctx.seed))
    ctx.restore()
    captured: list[torch.Tensor] = []

    def grab(module, inputs):
        captured.append(inputs[0].detach())

    handle = feat_mod.register_forward_pre_hook(grab) if feat_mod is not None else None
    try:
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, _NORMS):
                    if getattr(m, "weight", None) is not None:
                        m.weight.fill_(1.0)
                    if getattr(m, "bias", None) is not None:
                        m.bias.zero_()
                    if hasattr(m, "reset_running_stats") and m.track_running_stats:
                        m.reset_running_stats()
                    continue
                for p in m.parameters(recurse=False):
                    if p.dim() >= 2:
                        p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype))
                    else:
                        p.zero_()
            model.train()
            shape, dt = ctx.inputs.shape, ctx.inputs.dtype
            x = torch.randn(shape, generator=gen, dtype=dt)
            x2 = (x + _MIXUP * torch.randn(shape, generator=gen, dtype=dt)).to(ctx.device)
            x = x.to(ctx.device)
            out1, out2 = model(x), model(x2)
            if feat_mod is not None and len(captured) >= 2:
                f1, f2 = captured[0], captured[-1]
            else:
                f1, f2 = out1, out2
            parts = [(f1 - f2).abs().reshape(len(f1), -1).sum(1).mean().double()]
            parts += [m.running_var.double().mean() for m in model.modules()
                      if isinstance(m, nn.modules.batchnorm._BatchNorm)
                      and m.running_var is not None]
            vals = torch.stack(parts).cpu().numpy()  # one device sync
            diff = float(vals[0])
            bn_term = float(0.5 * np.log(vals[1:]).sum()) if len(vals) > 1 else 0.0
    finally:
        if handle is not None:
            handle.remove()
        ctx.restore()
    if not (diff > 0.0 and math.isfinite(diff)):
        return undefined(f"the features do not respond to an input perturbation ({diff})")
    return math.log(diff) + bn_term
