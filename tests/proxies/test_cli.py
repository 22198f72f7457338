from __future__ import annotations

import proxies
from prednas.cli import main


def test_cli_lists_proxies(capsys):
    assert main(["proxies", "list"]) == 0
    out = capsys.readouterr().out
    for n in proxies.list_proxies():
        assert n in out


def test_cli_scores_an_arch(capsys):
    rc = main(["proxies", "score", "--space", "blocks1d", "--arch", "conv3:16|gru:16",
               "--task", "synthetic", "--proxies", "params,nwot", "--batch-size", "16"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "params" in out and "nwot" in out


def test_cli_unknown_proxy_is_one_line_error(capsys):
    rc = main(["proxies", "score", "--task", "synthetic", "--proxies", "bogus"])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert "bogus" in err and "snip" in err and len(err.splitlines()) == 1
