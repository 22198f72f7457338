"""``prednas search`` on the command line."""

from __future__ import annotations

import json

import pytest

from prednas.cli import main


def test_cli_bench_search_and_resume(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["search", "--bench", "nb201", "--budget", "6", "--out", str(out),
                 "--seed", "1"]) == 0
    text = capsys.readouterr().out
    assert str(out) in text and "best:" in text
    best = json.loads((out / "best.json").read_text())
    assert "|" in best["arch"]
    assert main(["search", "--resume", str(out)]) == 0  # finished: nothing more to do
    assert len((out / "evaluations.jsonl").read_text().splitlines()) == 6


@pytest.mark.parametrize("argv", [
    ["search", "--space", "nope", "--bench", "nb201"],
    ["search", "--bench", "nb2011"],
    ["search", "--bench", "nb201", "--budget", "0"],
    ["search", "--bench", "nb201", "--budget", "100000"],
    ["search", "--bench", "nb201", "--strategy", "bayes"],
    ["search", "--task", "mnist1dd"],
    ["search", "--bench", "nb201", "--task", "mnist1d"],
    ["search", "--scheduler", "asha", "--rungs", "5,x"],
    ["search", "--scheduler", "asha", "--rungs", "50,100,200"],
    ["search", "--scheduler", "asha", "--reduction-factor", "1"],
    ["search", "--rungs", "50,100,300"],
    ["search", "--bench", "nb201", "--scheduler", "asha"],
    ["search", "--race", "1.5"],
    ["search", "--bench", "nb201", "--race", "0.2"],
])
def test_cli_errors_exit_2(argv, tmp_path, capsys):
    assert main(argv + ["--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.strip() and "Traceback" not in err
    assert not (tmp_path / "r").exists()  # refused before the run directory exists


def test_cli_resume_not_a_run_dir(tmp_path, capsys):
    (tmp_path / "x.txt").write_text("hello")
    before = (tmp_path / "x.txt").read_bytes()
    assert main(["search", "--resume", str(tmp_path)]) == 2
    assert "not a prednas search run directory" in capsys.readouterr().err
    assert (tmp_path / "x.txt").read_bytes() == before


def test_default_live_proxies_follow_the_measurements():
    """The default 1-D search computes no live proxies (they did not help its predictor on
    blocks1d-mnist1d); spaces without that measurement keep the fast ones."""
    import spaces
    from prednas.search.defaults import live_proxies as _live_proxies

    assert _live_proxies(spaces.get("blocks1d")) == ()
    assert _live_proxies(spaces.get("nb201")) == ("params", "synflow", "snip")


def test_cli_task_beside_bench_feeds_the_filter(tmp_path, capsys):
    """--task beside --bench: lookups answer, the task feeds live proxies and the warm-up."""
    out = tmp_path / "run"
    assert main(["search", "--bench", "nb201", "--budget", "6", "--per-round", "3",
                 "--task", "synthetic", "--task-opt", "n=64", "--task-opt", "image=true",
                 "--task-opt", "channels=3", "--warmup-seconds", "3", "--out", str(out)]) == 0
    state = json.loads((out / "state.json").read_text())
    assert '"synthetic"' in json.dumps(state) and '"auto"' in json.dumps(state)
    report = (out / "report.md").read_text()
    assert "live proxies" in report and "warm-up" in report
    assert (out / "supernet" / "warmup.pt").is_file()
    # a task whose inputs the space cannot take is one line, before any work
    assert main(["search", "--bench", "nb201", "--task", "mnist1d", "--out",
                 str(tmp_path / "bad")]) == 2
    assert "does not fit the nb201 space" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_default_training_search_starts_from_the_shrunk_baseline(tmp_path):
    """As Model Search starts (and as measured better in benchmarks/search-mnist1d.md): the
    first candidate is the baseline with its widths shrunk to fit the parameter cap."""
    from prednas.cli import build_parser
    from prednas.commands.search import _build

    parser = build_parser()
    argv = ["search", "--task", "synthetic", "--workers", "1", "--out", str(tmp_path / "r")]
    search = _build(parser.parse_args(argv))
    assert search.mutator.start == ("conv5:32|conv5:32|conv5:32",)
    assert _build(parser.parse_args([*argv, "--no-start"])).mutator.start == ()
    given = _build(parser.parse_args([*argv, "--start", "conv3:16"]))
    assert given.mutator.start == ("conv3:16",)
    # no cap, nothing to shrink to
    assert _build(parser.parse_args([*argv, "--param-cap", "0"])).mutator.start == ()


def test_cli_asha_search_trains_partially_and_resumes(tmp_path, capsys):
    """``--scheduler asha`` as a user calls it: partial records, a fully trained pick, and a
    finished run that ``--resume`` leaves as it is."""
    out = tmp_path / "asha"
    argv = ["search", "--task", "synthetic", "--task-opt", "n=64", "--steps", "6",
            "--scheduler", "asha", "--rungs", "2,4,6", "--reduction-factor", "2",
            "--budget", "2", "--replicas", "0", "--param-cap", "0", "--executor", "inprocess",
            "--no-start", "--out", str(out)]
    assert main(argv) == 0
    recs = [json.loads(x) for x in (out / "evaluations.jsonl").read_text().splitlines()]
    assert {r["kind"] for r in recs} == {"baseline", "partial", "candidate"}
    assert json.loads((out / "best.json").read_text())["fidelity"] == 6
    state = json.loads((out / "state.json").read_text())
    assert state["config"]["strategies"]["scheduler"]["params"]["rungs"] == [2, 4, 6]
    assert main(["search", "--resume", str(out)]) == 0
    assert len((out / "evaluations.jsonl").read_text().splitlines()) == len(recs)
    assert "best:" in capsys.readouterr().out
