from __future__ import annotations

import math

import numpy as np
import pytest

import proxies
import spaces
from prednas.errors import DataNotFoundError, UnknownNameError
from proxies import ProxyTable

A1 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|"
A2 = "|none~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|"


def _table() -> ProxyTable:
    return ProxyTable.from_records([(A1, "snip", 1.5, 0.1), (A1, "nwot", 300.0, 0.2),
                                    (A2, "snip", float("nan"), 0.1), (A2, "snip", 2.5, 0.1)])


def test_from_records_later_row_wins_and_lookup():
    t = _table()
    assert t.names == ["nwot", "snip"] and len(t) == 2
    got = t.lookup([A1, spaces.get("nb201").parse(A2), "|nor_conv_3x3~0|+|none~0|none~1|+|"
                    "none~0|none~1|none~2|"], ["snip", "nwot"])
    assert got.shape == (3, 2)
    assert got[0].tolist() == [1.5, 300.0]
    assert got[1, 0] == 2.5 and math.isnan(got[1, 1])
    assert np.isnan(got[2]).all()
    assert A1 in t and spaces.get("nb201").parse(A1) in t and "nope" not in t


def test_lookup_unknown_proxy_lists_names():
    with pytest.raises(UnknownNameError, match="snip"):
        _table().lookup([A1], ["synflow"])


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_csv_round_trip(tmp_path, suffix):
    t = _table()
    path = tmp_path / f"t{suffix}"
    t.to_csv(path)
    back = ProxyTable.from_csv(path)
    assert back.names == t.names and back.arch_strings == t.arch_strings
    np.testing.assert_array_equal(np.isnan(back.values), np.isnan(t.values))
    np.testing.assert_allclose(np.nan_to_num(back.values), np.nan_to_num(t.values))
    if suffix.endswith(".gz"):
        assert path.read_bytes()[:2] == b"\x1f\x8b"


def test_missing_file_raises(tmp_path):
    with pytest.raises(DataNotFoundError):
        ProxyTable.from_csv(tmp_path / "none.csv")
    with pytest.raises(DataNotFoundError, match="shipped"):
        proxies.load_table("nb201", "imagenet")


def test_shipped_nb201_table():
    t = proxies.load_table("nb201", "cifar10")
    assert len(t) >= 1000
    assert set(proxies.list_proxies()) <= set(t.names)
    assert t.values.shape == (len(t), len(t.names))
    assert np.isfinite(t.values).mean() > 0.95
    row = t.lookup([t.arch_strings[0]])
    assert row.shape == (1, len(t.names))
