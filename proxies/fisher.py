"""Fisher: activation saliency from the empirical Fisher information."""

from __future__ import annotations

from proxies._engine import ProxyContext, undefined
from proxies._registry import register_proxy

__all__ = ["fisher"]


@register_proxy("fisher", needs=("fisher",))
def fisher(ctx: ProxyContext) -> float:
    """Fisher: fan-in-weighted channel saliency, summed over channels, layers and half-batches.

    ``fisher = sum_h sum_l sum_c F_l * 1/2 * mean_{n in h} (sum_p a_{n,c,p} dL_h/da_{n,c,p})^2``

    ``a`` is the output of every conv / linear / recurrent layer ``l``, ``c`` one of its output
    channels (units) and ``p`` a position (pixel, time step); ``h`` runs over the shared pass's
    two half-batches and ``L_h`` is the mean loss of half ``h``; the activation gradients come
    from hooks on that loss backward.
    ``1/2 * mean_n (...)^2`` is the per-channel Fisher saliency of the paper; ``F_l``, the fan-in
    of one output unit, is the number of weights feeding it: ``C_in / groups * prod(kernel)`` for
    a conv (``weight.shape[1:]``), ``in_features`` for a linear layer. This is what the
    zero-cost-proxy reference computes: it broadcasts each channel's saliency to every weight of
    that channel and sums over the weights. Summing the halves' per-half means matches the
    reference run with ``split_data=2`` (one backward per half, saliencies added up).

    Recurrent layers (which the reference does not score): only the module's output sequence is
    observed, i.e. the last layer's units, so ``F_l`` is the number of weight-matrix entries of
    the last layer (both directions; input-hidden, hidden-hidden and LSTM projection) divided by
    the output features: ``4 * (input_size + hidden_size)`` per unit of an LSTM, ``3 * (...)`` for
    a GRU, ``input_size + hidden_size`` for an Elman RNN. Like a conv's fan-in it counts the
    weights that directly feed a unit (all gates of that unit), and dividing the total spreads
    the projection matrix of an LSTM evenly over its outputs.

    Higher is better. Papers: Theis et al., "Faster gaze prediction with dense networks and
    Fisher pruning", 2018; Turner et al., "BlockSwap", ICLR 2020; as a NAS proxy: Abdelfattah et
    al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021.
    """
    value = ctx.shared()["fisher"]
    if value is None:
        return undefined("the model has no conv, linear or recurrent layer on the loss path")
    return value
