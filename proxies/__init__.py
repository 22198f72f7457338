"""Zero-cost proxies: one module per proxy, a shared-pass engine and a cached NB201 table.

>>> import proxies
>>> proxies.list_proxies()[:3]
['epe_nas', 'fisher', 'flops']
>>> scores = proxies.score(model, x, y)                     # every proxy, passes shared
>>> scores = proxies.score_arch("nb201", arch, x, y, names=["synflow", "nwot"])
>>> table = proxies.load_table("nb201", "cifar10")          # >= 3,000 precomputed archs

Every score is higher-is-better; scores that overflow are returned as natural logs (their
docstrings say so); a numerically bad model gives NaN with a logged warning.
"""

from __future__ import annotations

# importing a proxy module registers it
from proxies import (  # noqa: E402,F401
                             epe_nas,
                             fisher,
                             flops,
                             grad_norm,
                             grasp,
                             jacov,
                             l2_norm,
                             meco,
                             nwot,
                             params,
                             plain,
                             snip,
                             synflow,
                             zen,
                             zico,
)
from proxies._engine import ProxyContext, forward_backward_seconds, score, score_arch, score_separately
from proxies._registry import Proxy, get, list_proxies, register_proxy
from proxies._table import ProxyTable, load_table

#: proxies that need no backward pass (for cheap staged filtering)
CHEAP: tuple[str, ...] = tuple(n for n in list_proxies() if get(n).cheap)

__all__ = ["CHEAP", "Proxy", "ProxyContext", "ProxyTable", "forward_backward_seconds", "get",
           "list_proxies", "load_table", "register_proxy", "score", "score_arch",
           "score_separately"]
