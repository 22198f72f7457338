"""EPE-NAS: per-class Jacobian correlation spread."""

from __future__ import annotations

import numpy as np

from proxies._engine import ProxyContext, undefined
from proxies._registry import register_proxy
from proxies.jacov import jacobian_correlation

__all__ = ["epe_nas"]

_K = 1e-5


@register_proxy("epe_nas", needs=("jacobian",))
def epe_nas(ctx: ProxyContext) -> float:
    """EPE-NAS: ``sum_{c,c'} |s_c - s_c'| / C`` with ``s_c = sum log(|R_c| + k)``, ``k = 1e-5``.

    ``R_c`` is the correlation matrix of the input Jacobians (as in jacov) of the batch's examples
    of class ``c``; ``C`` the number of classes present (the ``/ C`` and sum over ordered pairs
    follow the reference). A network whose per-class Jacobian structures differ scores higher;
    higher is better. Undefined (NaN) when an example's Jacobian is constant. Paper: Lopes et
    al., "EPE-NAS: Efficient performance estimation without training for NAS", ICANN 2021.
    """
    jac = ctx.shared()["jacobian"].double().cpu().numpy()
    labels = ctx.targets[: len(jac)].detach().cpu().numpy()
    scores = []
    for c in np.unique(labels):
        rows = jac[labels == c]
        corr = np.atleast_2d(jacobian_correlation(rows))
        if not np.all(np.isfinite(corr)):
            return undefined(f"a Jacobian of class {c} is constant: its correlation is undefined")
        scores.append(np.sum(np.log(np.abs(corr) + _K)))
    s = np.asarray(scores)
    return float(np.abs(s[:, None] - s[None, :]).sum() / len(s))
