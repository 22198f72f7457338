"""FLOPs of one forward pass."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from proxies._engine import ProxyContext
from proxies._registry import register_proxy

__all__ = ["flops"]

_COUNTED = (nn.modules.conv._ConvNd, nn.Linear)


def _only_conv_linear(model: nn.Module) -> bool:
    """True when every weight tensor belongs to a conv or linear layer (hooks count them all)."""
    for m in model.modules():
        if isinstance(m, _COUNTED):
            continue
        if any(p.dim() >= 2 for p in m.parameters(recurse=False)):
            return False
    return True


@register_proxy("flops", needs=("flops",))
def flops(ctx: ProxyContext) -> float:
    """FLOPs of one forward pass for a single example (2 per multiply-accumulate).

    Conv and linear layers are counted by forward hooks on the shared forward pass (output
    positions x fan-in); a model with other weight layers (recurrent, attention) is instead run
    once on one example under ``torch.utils.flop_counter`` in eval mode (cuDNN RNN kernels off so
    recurrent layers decompose into counted matmuls).
    Bigger networks score higher; higher is better. Baseline in Ning et al., NeurIPS 2021,
    and NAS-Bench-Suite-Zero (Krishnakumar et al., NeurIPS 2022 Datasets and Benchmarks).
    """
    if _only_conv_linear(ctx.model):
        return float(ctx.shared()["flops"])
    # counted on a CPU copy: a GPU runs recurrent layers as fused kernels that the counter
    # counts otherwise (an LSTM counted 1.7 times its CPU count on an H200), and a network's
    # FLOPs do not depend on where it runs
    model = copy.deepcopy(ctx.model).cpu() if ctx.device.type != "cpu" else ctx.model
    was_training = model.training
    model.eval()
    try:
        rnn = any(isinstance(m, nn.RNNBase) for m in model.modules())
        with torch.no_grad(), torch.backends.cudnn.flags(enabled=not rnn and
                                                         torch.backends.cudnn.enabled), \
                FlopCounterMode(display=False) as counter:
            model(ctx.inputs[:1].to("cpu", ctx.dtype))
        return float(counter.get_total_flops())
    finally:
        model.train(was_training)
