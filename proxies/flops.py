"""FLOPs of one forward pass."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from proxies._engine import ProxyContext
from proxies._registry import register_proxy

__all__ = ["flops"]


@register_proxy("flops")
def flops(ctx: ProxyContext) -> float:
    """FLOPs of one forward pass for a single example (2 per multiply-accumulate).

    Counted by ``torch.utils.flop_counter`` in eval mode (cuDNN RNN kernels are switched off so
    recurrent layers decompose into counted matmuls). Higher is better. Baseline in Ning et al.,
    NeurIPS 2021, and NAS-Bench-Suite-Zero (Krishnakumar et al., 2022).
    """
    model = ctx.model
    was_training = model.training
    model.eval()
    try:
        rnn = any(isinstance(m, nn.RNNBase) for m in model.modules())
        with torch.no_grad(), torch.backends.cudnn.flags(enabled=not rnn and
                                                         torch.backends.cudnn.enabled), \
                FlopCounterMode(display=False) as counter:
            model(ctx.inputs[:1])
        return float(counter.get_total_flops())
    finally:
        model.train(was_training)
