"""MeCo: minimum eigenvalue of feature-map correlation."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

from proxies._engine import ProxyContext, undefined
from proxies._registry import register_proxy

__all__ = ["meco"]


@register_proxy("meco", needs=("features",))
def meco(ctx: ProxyContext) -> float:
    """MeCo: ``sum_modules lambda_min(P(f_m(x)))``.

    ``f_m(x)`` is the feature map of module ``m`` (every module, as in the reference) for one
    example, reshaped to (channels, positions); ``P`` its Pearson correlation matrix between
    channels, with undefined entries (constant channels) set to 0; ``lambda_min`` its smallest
    eigenvalue. Modules with fewer than two positions contribute 0. The example is the first of
    the batch, run inside the first half-batch of the shared forward. Higher is better. Paper:
    Jiang et al., "MeCo: Zero-shot NAS with one data and single forward pass via minimum eigenvalue
    of correlation", NeurIPS 2023.
    """
    feats = ctx.shared()["features"]
    if not feats:
        return undefined("no module produced a feature map with channels and positions")
    groups: dict[tuple[int, int], list[torch.Tensor]] = defaultdict(list)
    for f in feats:
        groups[tuple(f.shape)].append(f)
    total = 0.0
    for fs in groups.values():
        x = torch.stack(fs)
        x = x - x.mean(-1, keepdim=True)
        cov = x @ x.transpose(1, 2)
        d = torch.diagonal(cov, dim1=1, dim2=2).sqrt()
        corr = cov / (d[:, :, None] * d[:, None, :])
        corr = torch.nan_to_num(corr.clamp(-1, 1), nan=0.0, posinf=0.0, neginf=0.0)
        # small symmetric eigenproblems: cheaper in float64 LAPACK than as GPU kernels
        total += float(np.linalg.eigvalsh(corr.double().cpu().numpy())[:, 0].sum())
    return total
