from __future__ import annotations

import importlib
import pkgutil

import pytest

import proxies
from prednas.errors import UnknownNameError

SUITE_ZERO = ("synflow", "snip", "grasp", "fisher", "grad_norm", "jacov", "nwot", "zen", "epe_nas",
              "l2_norm", "plain", "params", "flops")


def test_registry_holds_suite_zero_and_newer_proxies():
    names = proxies.list_proxies()
    for n in SUITE_ZERO + ("zico", "meco"):
        assert n in names
    assert names == sorted(names)


def test_unknown_name_lists_valid_names():
    with pytest.raises(UnknownNameError) as err:
        proxies.get("synflo")
    msg = str(err.value)
    assert "synflow" in msg and "nwot" in msg


def test_score_rejects_unknown_name(image_batch):
    from tests.proxies.conftest import build

    x, y = image_batch
    with pytest.raises(UnknownNameError, match="valid"):
        proxies.score(build("nb201", None, C=4, N=1), x, y, names=["nope"])


def test_every_module_registers_a_proxy():
    registered = {proxies.get(n).fn.__module__ for n in proxies.list_proxies()}
    for info in pkgutil.iter_modules(proxies.__path__):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"proxies.{info.name}")
        assert mod.__name__ in registered, f"{mod.__name__} registers no proxy"


def test_docstrings_state_paper_and_sign():
    for n in proxies.list_proxies():
        doc = proxies.get(n).doc.lower()
        assert "higher is better" in doc, n
        assert any(w in doc for w in ("paper", "et al.", "baseline")), n
        if proxies.get(n).log_space:
            assert "log" in doc, n


def test_cheap_proxies_need_no_backward():
    assert set(proxies.CHEAP) >= {"params", "flops", "l2_norm", "nwot", "meco", "zen"}
    for n in ("snip", "grasp", "synflow", "jacov", "zico"):
        assert n not in proxies.CHEAP


def test_duplicate_registration_raises():
    from prednas.errors import PredNASError

    with pytest.raises(PredNASError):
        proxies.register_proxy("snip")(lambda ctx: 0.0)
