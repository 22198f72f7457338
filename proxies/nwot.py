"""NASWOT: log-determinant of the activation-code kernel."""

from __future__ import annotations

import torch

from proxies._engine import ProxyContext, undefined
from proxies._registry import register_proxy

__all__ = ["nwot"]


@register_proxy("nwot", needs=("codes",))
def nwot(ctx: ProxyContext) -> float:
    """NASWOT: ``log |det K|`` with ``K_ij = N_A - d_H(c_i, c_j)``.

    ``c_n`` is the binary code of example ``n`` (1 where a unit is active) over every ReLU-family
    activation of the network, ``N_A`` the number of units and ``d_H`` the Hamming distance, i.e.
    ``K = C C^T + (1 - C)(1 - C)^T``. Recurrent layers, whose nonlinearities are internal,
    contribute the sign pattern of their outputs; transformer layers with a functional ReLU the
    sign of their first FFN projection. Inputs more separable score higher; higher is better.
    Paper: Mellor et al., "Neural Architecture Search without Training", ICML 2021.
    """
    shared = ctx.shared()
    if shared.get("codes_error"):
        return undefined(shared["codes_error"])
    k = shared["codes_kernel"]
    if k is None:
        return undefined("the model has no activation units to code")
    sign, logdet = torch.linalg.slogdet(k)
    if float(sign) == 0.0:
        return undefined("the code kernel is singular (two examples share one activation code)")
    return logdet
