"""The real-training benchmark's records: merging two machines' rows, and its report."""

import json

import pytest

from tests.conftest import load_script

BASE = "conv5:64|conv5:64|conv5:64"


@pytest.fixture()
def bench(tmp_path, monkeypatch):
    mod = load_script("benchmark_search_mnist1d")
    monkeypatch.setattr(mod, "LOG", tmp_path / "main.jsonl")
    return mod


def _finals(arch, accs):
    return [{"type": "final", "arch": arch, "seed": 1000 + i, "status": "ok", "test_acc": a,
             "val_acc": a, "params": 1} for i, a in enumerate(accs)]


def _search(method, seed, pick, machine="A"):
    return {"type": "search", "method": method, "seed": seed, "minutes": 6.0, "pick": pick,
            "pick_val": 98.0, "evaluations": 10, "trainings": 10, "incumbents": [],
            "machine": machine}


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_merge_appends_only_the_rows_the_record_lacks(bench, tmp_path):
    start = [{"type": "baseline", "arch": BASE}, *_finals(BASE, [98.0] * 5)]
    _write(bench.LOG, [*start, _search("prednas", 0, "a")])
    other = tmp_path / "device.jsonl"
    _write(other, [*start, _search("prednas", 0, "b"), _search("prednas", 4, "c"),
                   *_finals("c", [98.5] * 5)])
    bench._merge([other, other])
    rows = bench._rows()
    assert len(rows) == 1 + 5 + 1 + 1 + 5  # the baseline's rows and seed 0's search once each
    assert [r["pick"] for r in rows if r["type"] == "search"] == ["a", "c"]


def test_report_pairs_by_seed_and_names_each_seeds_machines(bench):
    rows = [{"type": "baseline", "arch": BASE}, *_finals(BASE, [98.0] * 5),
            *_finals("p", [98.6] * 5), *_finals("q", [98.2] * 5), *_finals("r", [98.4] * 5),
            _search("prednas", 0, "p"), _search("random", 0, "q"),
            _search("prednas", 1, "p", machine="B"), _search("random", 1, "r", machine="B"),
            _search("prednas", 2, "p")]  # random's seed 2 not searched yet
    text = bench.report(rows, 6.0, 3, ["prednas", "random"], "", ref_name="prednas")
    assert "| random | 2 | 10.0 | 98.30 ± 0.10 | +0.30" in text
    assert "(n=2)" in text
    assert "| 0 | 98.60 | 98.20 | A |" in text
    assert "| 1 | 98.60 | 98.40 | B |" in text
    assert "| 2 | 98.60 | · | A |" in text
    assert "Baseline `conv5:64|conv5:64|conv5:64` on the same protocol: 98.00." in text


def test_an_engine_peers_winner_is_named_again_by_the_loss_reading_estimate(bench, tmp_path):
    # ten trainings: the best accuracy ("lucky") has a poor loss; "steady" reads best by loss
    recs = [{"arch": f"x{i}", "canonical": f"x{i}", "kind": "candidate", "round": i, "slot": 0,
             "status": "ok", "objective": 97.0 + 0.1 * i, "val_loss": 0.10 - 0.005 * i}
            for i in range(8)]
    recs += [{**recs[0], "arch": "lucky", "canonical": "lucky", "objective": 98.9,
              "val_loss": 0.09},
             {**recs[0], "arch": "steady", "canonical": "steady", "objective": 98.6,
              "val_loss": 0.03}]
    run = tmp_path / "runs" / "6min" / "random-s0"
    run.mkdir(parents=True)
    _write(run / "evaluations.jsonl", recs)
    assert bench.repick(run) == "steady"
    rows = [{"type": "baseline", "arch": BASE}, *_finals(BASE, [98.0] * 5),
            _search("prednas", 0, "p"), {**_search("random", 0, "lucky")},
            *_finals("p", [98.6] * 5), *_finals("steady", [98.5] * 5)]
    _write(bench.LOG, rows)
    done = {(r["arch"], r["seed"]) for r in rows if r["type"] == "final"}
    bench.repick_peers(["prednas", "random"], 6.0, tmp_path / "runs" / "6min", done)
    got = [r for r in bench._rows() if r["type"] == "repick"]
    assert [(r["method"], r["pick"], r["was"]) for r in got] == [("random", "steady", "lucky")]
    text = bench.report(bench._rows(), 6.0, 1, ["prednas", "random"], "", ref_name="prednas")
    assert "| random | 1 | 1/1 | 98.50 ± 0.00 | +0.10" in text


def test_the_default_configuration_is_what_prednas_search_runs_by_default(bench, tmp_path):
    from prednas.cli import build_parser
    from prednas.commands.search import _build

    def built(flags):
        argv = ["search", "--task", "synthetic", "--task-opt", "n=64", "--workers", "1",
                "--space", "blocks1d", "--out", str(tmp_path / "cli"), *flags]
        search = _build(build_parser().parse_args(argv))
        return search.mutator.get_params(), search.filter.get_params()

    assert built(bench.CLI[bench.DEFAULT]) == built([])
    assert built(bench.CLI["prednas"]) != built([])  # the earlier default, pinned by its flags


def test_the_confirmation_table_holds_only_the_seeds_the_default_was_not_chosen_on(bench):
    ref, peer = bench.DEFAULT, "random"
    chosen, fresh = min(bench.CHOSEN_ON), max(bench.CHOSEN_ON) + 1
    rows = [{"type": "baseline", "arch": BASE}, *_finals(BASE, [98.0] * 5),
            *_finals("p", [98.6] * 5), *_finals("q", [98.2] * 5), *_finals("r", [98.5] * 5),
            _search(ref, chosen, "p"), _search(peer, chosen, "q"),  # chosen on: +0.40
            _search(ref, fresh, "p"), _search(peer, fresh, "r"),  # fresh: +0.10
            {"type": "match", "method": ref, "seed": chosen, "minutes": 6.0, "arch": "p",
             "minutes_to_match": 1.0},
            {"type": "match", "method": ref, "seed": fresh, "minutes": 6.0, "arch": None,
             "minutes_to_match": None}]
    text = bench.report(rows, 6.0, fresh + 1, [ref, peer, "tpe"], "")  # tpe: no run yet
    assert "| tpe | 0 |" not in text
    whole, confirm = text.split("## Confirmation on fresh search seeds")
    assert f"| {peer} | 2 | 10.0 | 98.35 ± 0.15 | +0.25" in whole
    assert f"| {peer} | 1 | 10.0 | 98.50 ± 0.00 | +0.10" in confirm.split("## By search")[0]
    assert f"| {ref} | 2 | inf | 1/2 | inf | 0/1 |" in text
    # no confirmation table while every seed is one the default was chosen on
    assert "Confirmation" not in bench.report(rows[:-4], 6.0, 1, [ref, peer], "")
