"""Jacobian covariance (the first NASWOT score)."""

from __future__ import annotations

import numpy as np

from proxies._engine import ProxyContext, undefined
from proxies._registry import register_proxy

__all__ = ["jacov", "jacobian_correlation"]

_K = 1e-5


def jacobian_correlation(jac: np.ndarray) -> np.ndarray:
    """Pearson correlation between the rows of ``jac`` (NaN where a row is constant)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.corrcoef(jac)


@register_proxy("jacov", needs=("jacobian",))
def jacov(ctx: ProxyContext) -> float:
    """Jacobian covariance: ``-sum_i [log(v_i + k) + 1 / (v_i + k)]``, ``k = 1e-5``.

    ``v`` are the eigenvalues of the correlation matrix between the examples' input gradients
    ``J_n = d sum(f(x_n)) / d x_n`` (one input-gradient backward, shared with epe_nas). Networks
    whose Jacobians decorrelate across inputs score higher; higher is better. Undefined (NaN) when
    some example's Jacobian is constant. Paper: Mellor et al., "Neural Architecture Search without
    Training", arXiv v1 2020 / ICML 2021.
    """
    jac = ctx.shared()["jacobian"].double().cpu().numpy()
    corr = jacobian_correlation(jac)
    if not np.all(np.isfinite(corr)):
        return undefined("an example's input Jacobian is constant, so its correlation is undefined")
    v = np.linalg.eigvalsh(corr)
    return float(-np.sum(np.log(v + _K) + 1.0 / (v + _K)))
