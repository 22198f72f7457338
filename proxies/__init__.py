"""Zero-cost proxies (see issue: the proxy suite)."""
